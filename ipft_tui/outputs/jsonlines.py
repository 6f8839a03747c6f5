"""`-o json`: one object per sample per line, keys in ipftrace2's order."""

from __future__ import annotations

import json

from ..model import Capture, Meta, Sample, packet_id_text
from ..tracing.decode import json_lines


def format_sample(sample: Sample, with_tuple: bool = False) -> str:
    line = (f'{{"packet_id":"{packet_id_text(sample.packet_id)}","timestamp":{sample.timestamp},'
            f'"processor_id":{sample.processor_id},"function":{json.dumps(sample.function)},'
            f'"is_return":{"true" if sample.is_return else "false"}')
    if sample.drop_reason is not None:
        line += f',"drop_reason":{json.dumps(sample.drop_reason)}'
    if with_tuple and sample.meta is not None:
        m = sample.meta
        line += (f',"ifindex":{m.ifindex},"ifname":{json.dumps(m.ifname)},"netns":{m.netns},'
                 f'"len":{m.length},"l3_proto":{m.l3_proto},"l4_proto":{m.l4_proto},'
                 f'"saddr":"{m.saddr}","daddr":"{m.daddr}","sport":{m.sport},"dport":{m.dport},'
                 f'"icmp_type":{m.icmp_type}')
    if sample.skb:
        line += f',"skb":"{packet_id_text(sample.skb)}"'
        if sample.journey_end:
            line += ',"journey_end":true'
    if sample.stack is not None:
        line += f',"stack":{json.dumps(list(sample.stack), separators=(",", ":"))}'
    if sample.capture is not None:
        c = sample.capture
        line += f',"packet":"{c.data.hex()}","packet_offset":"{c.offset}","packet_len":{c.length}'
    if sample.fields:
        # Script fields are strings in ipftrace2's JSON, whatever their Lua type.
        line += "".join(f",{json.dumps(k)}:{json.dumps(str(v))}" for k, v in sample.fields.items())
    return line + "}"


def parse_line(line: str) -> Sample:
    """Read one line of ours or ipftrace2's JSON output back into a Sample."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    try:
        packet_id = obj.pop("packet_id")
        packet = int(packet_id, 16) if isinstance(packet_id, str) else int(packet_id)
        timestamp = int(obj.pop("timestamp"))
        cpu = int(obj.pop("processor_id"))
        function = str(obj.pop("function"))
        is_return = bool(obj.pop("is_return", False))
        drop_reason = obj.pop("drop_reason", None)
        meta = _meta_from(obj) if "ifindex" in obj else None
        skb = int(obj.pop("skb", "0"), 16)
        journey_end = bool(obj.pop("journey_end", False)) if skb else None
        stack = obj.pop("stack", None)
        if stack is not None:
            if not isinstance(stack, list):
                raise ValueError("stack is not a list")
            stack = tuple(str(frame) for frame in stack)
        capture = _capture_from(obj) if "packet" in obj else None
    except KeyError as exc:
        raise ValueError(f"missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad value: {exc}") from None
    fields = {str(k): v if isinstance(v, (str, int)) else json.dumps(v) for k, v in obj.items()}
    return Sample(packet, timestamp, cpu, function, is_return, fields or None,
                  str(drop_reason) if drop_reason is not None else None, meta, None, skb, stack,
                  journey_end, capture)


def _capture_from(obj: dict) -> Capture:
    data = bytes.fromhex(str(obj.pop("packet")))
    offset = obj.pop("packet_offset", "l2")
    if offset not in ("l2", "l3"):
        raise ValueError(f"packet_offset {offset!r} is neither l2 nor l3")
    return Capture(data, offset, int(obj.pop("packet_len", len(data))))


_META_KEYS = ("ifindex", "ifname", "netns", "len", "l3_proto", "l4_proto", "saddr", "daddr",
              "sport", "dport", "icmp_type")


def _meta_from(obj: dict) -> Meta:
    values = [obj.pop(k, 0) for k in _META_KEYS]
    return Meta(int(values[0]), str(values[1]), *(int(v) for v in values[2:6]),
                str(values[6]), str(values[7]), *(int(v) for v in values[8:]))


class JsonOutput:
    """Streams each batch of samples to a text file, flushing per batch."""

    def __init__(self, stream, with_tuple: bool = False):
        self.stream = stream
        self.with_tuple = with_tuple

    def write(self, samples: list[Sample]) -> None:
        if samples:
            self.stream.write("".join(format_sample(s, self.with_tuple) + "\n" for s in samples))
            self.stream.flush()

    def write_batches(self, batches: list, decorate=None) -> None:
        """Collector batches: formatted straight from their records when nothing
        needs decoding (no extension, no tuple fields), else via Samples."""
        for batch in batches:
            text = None if (decorate or self.with_tuple) else json_lines(batch)
            if text is None:
                samples = batch.samples()
                self.write(decorate(samples) if decorate else samples)
            elif text:
                self.stream.write(text)
        self.stream.flush()

    def finish(self) -> None:
        self.stream.flush()
