"""The packet itself in the TUI: decoded headers (or hex) for the detail pane, marks for the
journey tree where the packet changed.

Decoding happens here only for the one sample shown and the journey's labels, never per event.
"""

from __future__ import annotations

from rich.text import Text

from ..model import Capture, Packet, Sample
from ..packet import changed_fields, changes, decode, hexdump

CHANGE_STYLE = "bold yellow"


def previous_capture(packet: Packet | None, sample: Sample) -> Capture | None:
    """The bytes of the journey's last sample with bytes before `sample` (None: first)."""
    if packet is None or sample.capture is None:
        return None
    samples = packet.samples
    for i, other in enumerate(samples):
        if other == sample:
            return next((s.capture for s in reversed(samples[:i]) if s.capture is not None), None)
    return None


def mark_changes(label: Text, before: Capture | None, after: Capture | None) -> Text:
    """A journey tree label with a leading Δ where the packet changed since the previous
    bytes (two blanks where not, to keep the column), and what changed at its end."""
    found = changes(before, after)
    if not found:
        return Text.assemble("  ", label)
    # Say the telling ones first: addresses/ports (NAT), layers (tunnels), then the rest.
    telling = [c for c in found if c.key in ("src", "dst", "sport", "dport") or not c.key]
    shown = (telling or found)[:3]
    text = Text.assemble(("Δ ", CHANGE_STYLE), label)
    text.append("  " + ", ".join(c.text() for c in shown), style="yellow")
    if len(found) > len(shown):
        text.append(f" (+{len(found) - len(shown)})", style="dim yellow")
    return text


def packet_text(sample: Sample, before: Capture | None, hex_view: bool = False) -> Text:
    """The detail pane's packet section: headers like Wireshark's packet details with the
    fields that differ from the previous sample highlighted, or a hex/ASCII dump."""
    text = Text()
    capture = sample.capture
    if capture is None:
        return text
    kind = "from the MAC header" if capture.offset == "l2" else "from the network header"
    text.append(f"packet ({len(capture.data)} of {capture.length} bytes, {kind})"
                f"  [H: {'headers' if hex_view else 'hex'}]\n", style="bold underline")
    if hex_view:
        for line in hexdump(capture.data):
            text.append(f"  {line}\n")
        return text
    highlight = changed_fields(before, capture)
    found = changes(before, capture)
    for layer in decode(capture):
        text.append(f"  {layer.summary}\n", style="bold")
        for field in layer.fields:
            changed = (layer.key, field.key) in highlight
            text.append(f"    {field.label}: ", style="cyan")
            text.append(field.value, style=CHANGE_STYLE if changed else "")
            if changed:
                was = next((c.before for c in found if (c.layer, c.key) == (layer.key, field.key)), "")
                text.append(f"  (was {was})", style="yellow")
            text.append("\n")
    other = [c for c in found if not (c.layer and c.key)]
    if other:
        text.append("  changed since the previous sample: ", style="yellow")
        text.append(", ".join(c.text() for c in other) + "\n", style=CHANGE_STYLE)
    return text
