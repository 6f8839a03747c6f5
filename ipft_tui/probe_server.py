"""The readiness port (--enable-probe-server): connections succeed once every probe is
attached; each is accepted and closed at once."""

from __future__ import annotations

import socket
import threading

from .errors import IpftError


class ProbeServer:
    """Bound when made, so that a wrong address or a port in use fails before anything is
    compiled or attached; listening only from `start()`, once tracing is ready (before,
    connections are refused)."""

    def __init__(self, address: str, port: int):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((address, port))
        except OSError as exc:
            self.sock.close()
            raise IpftError(f"cannot open the probe server on {address} port {port}: "
                            f"{exc.strerror}") from None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ipft-probe-server", daemon=True)

    def start(self) -> None:
        self.sock.listen()
        self.sock.settimeout(0.2)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                conn.close()
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1)
        self.sock.close()
