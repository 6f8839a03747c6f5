#!/usr/bin/env bash
# Idempotent set-up: Debian packages, then a venv from the distro's Python with
# the pinned Python packages. Safe to run again; does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

arch=$(dpkg --print-architecture)
release=$(uname -r)
packages=(python3-bpfcc python3-venv python3-pip iproute2 iptables nftables bpftool
          iputils-ping procps kmod tmux libpcap0.8 tshark)

need_install=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_install+=("$p")
done
# Headers: the running kernel's own when it has them, else the distro's generic
# ones (ipft-tui reads sk_buff offsets from BTF, so another version is fine).
if [ ! -d "/lib/modules/$release/build" ] && ! ls -d /usr/src/linux-headers-* >/dev/null 2>&1; then
  need_install+=(HEADERS)
fi

if [ "${#need_install[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_install[*]}" >&2
  $SUDO apt-get update -qq
  headers="linux-headers-$arch"
  if apt-cache show "linux-headers-$release" >/dev/null 2>&1; then headers="linux-headers-$release"; fi
  pkgs=()
  for p in "${need_install[@]}"; do
    if [ "$p" = HEADERS ]; then pkgs+=("$headers"); else pkgs+=("$p"); fi
  done
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
fi

venv=.venv
stamp=$venv/.ipft-tui-installed
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "setup: installing Python packages into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -c requirements.lock -e '.[test]'
  touch "$stamp"
fi
"$venv/bin/python" -c "import bcc, textual, lupa, dpkt, orjson" || {
  echo "setup: bcc/textual/lupa/dpkt/orjson do not import in $venv" >&2; exit 1; }

# `sudo ipft-tui` from any directory: a launcher on root's PATH that runs this
# checkout's venv ('make clean' removes it). IPFT_LAUNCHER: another place (tests).
launcher=${IPFT_LAUNCHER:-/usr/local/bin/ipft-tui}
target="$(pwd)/$venv/bin/ipft-tui"
script="#!/bin/sh
# ipft-tui launcher written by $(pwd)/scripts/setup.sh; 'make clean' there removes it.
exec \"$target\" \"\$@\""
if [ -L "$launcher" ] || [ ! -f "$launcher" ] || [ "$(cat "$launcher")" != "$script" ]; then
  tmp=$(mktemp)
  printf '%s\n' "$script" > "$tmp"
  # install replaces the file (never writes through a symlink), root-owned, 0755
  $SUDO install -m 0755 "$tmp" "$launcher" && echo "setup: $launcher -> $target" >&2
  rm -f "$tmp"
fi
