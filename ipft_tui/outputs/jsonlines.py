"""`-o json`: one object per sample per line, keys in ipftrace2's order."""

from __future__ import annotations

import json
from itertools import chain

from ..model import Capture, Meta, Sample, packet_id_text
from ..tracing.decode import BASE, RecordBatch, WordPieces, per_layout, plain_columns


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
    """Read one line of ours or ipftrace2's JSON output back into a Sample.

    Strict about types (a replay file may come from anywhere): any problem is a
    ValueError saying what is wrong with the line."""
    obj = _load_object(line)
    try:
        packet = _hex_or_int(obj.pop("packet_id"), "packet_id")
        timestamp = _uint(obj.pop("timestamp"), "timestamp", 64)
        cpu = _uint(obj.pop("processor_id"), "processor_id", 32)
        function = obj.pop("function")
        if not isinstance(function, str) or not function:
            raise ValueError("function is not a name")
        is_return = _bool(obj.pop("is_return", False), "is_return")
        drop_reason = obj.pop("drop_reason", None)
        if drop_reason is not None and not isinstance(drop_reason, str):
            raise ValueError("drop_reason is not a string")
        meta = _meta_from(obj) if "ifindex" in obj else None
        skb = _hex_or_int(obj.pop("skb", "0"), "skb")
        journey_end = _bool(obj.pop("journey_end", False), "journey_end") if skb else None
        stack = obj.pop("stack", None)
        if stack is not None:
            if not isinstance(stack, list) or not all(isinstance(f, str) for f in stack):
                raise ValueError("stack is not a list of strings")
            stack = tuple(stack)
        capture = _capture_from(obj) if "packet" in obj else None
    except KeyError as exc:
        raise ValueError(f"missing key {exc.args[0]!r}") from None
    except ValueError as exc:
        raise ValueError(f"bad value: {exc}") from None
    fields = {str(k): v if isinstance(v, (str, int)) and not isinstance(v, bool)
              else json.dumps(v) for k, v in obj.items()}
    return Sample(packet_id=packet, timestamp=timestamp, processor_id=cpu, function=function,
                  is_return=is_return, fields=fields or None, drop_reason=drop_reason, meta=meta,
                  skb=skb, stack=stack, journey_end=journey_end, capture=capture)


MAX_NESTING = 32  # a sample line nests one level (stack); deeper is not ours


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:  # more than 64 bits
        raise ValueError(f"integer of {len(text)} digits")
    return int(text)


def _load_object(line: str) -> dict:
    depth = 0
    brackets = line.count("[") + line.count("{")
    for char in line if brackets > MAX_NESTING else "":  # before the recursive decoder
        if char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise ValueError(f"nested more than {MAX_NESTING} levels deep")
        elif char in "]}":
            depth -= 1
    try:
        obj = json.loads(line, parse_constant=_reject_constant, parse_int=_bounded_int)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def _uint(value, name: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} is not an unsigned {bits}-bit integer: {_short(value)}")
    return value


def _hex_or_int(value, name: str) -> int:
    """Addresses: "0x..." text (ipftrace2) or a number."""
    if isinstance(value, str):
        try:
            value = int(value, 16)
        except ValueError:
            raise ValueError(f"{name} is not a hex address: {_short(value)}") from None
    return _uint(value, name, 64)


def _bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} is not true or false: {_short(value)}")
    return value


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


MAX_PACKET_HEX = 2 * 65535  # a captured packet is at most 64 KiB


def _capture_from(obj: dict) -> Capture:
    text = obj.pop("packet")
    if not isinstance(text, str) or len(text) > MAX_PACKET_HEX:
        raise ValueError("packet is not a hex string of at most 64 KiB")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise ValueError("packet is not hex") from None
    offset = obj.pop("packet_offset", "l2")
    if offset not in ("l2", "l3"):
        raise ValueError(f"packet_offset {_short(offset)} is neither l2 nor l3")
    return Capture(data, offset, _uint(obj.pop("packet_len", len(data)), "packet_len", 32))


_META_KEYS = ("ifindex", "ifname", "netns", "len", "l3_proto", "l4_proto", "saddr", "daddr",
              "sport", "dport", "icmp_type")


def _meta_from(obj: dict) -> Meta:
    text_keys = ("ifname", "saddr", "daddr")
    values = {k: obj.pop(k, "" if k in text_keys else 0) for k in _META_KEYS}
    for key in text_keys:
        if not isinstance(values[key], str):
            raise ValueError(f"{key} is not a string: {_short(values[key])}")
    return Meta(*(values[k] if k in text_keys else _uint(values[k], k, 64)
                  for k in _META_KEYS))


def format_records(batch: RecordBatch) -> str | None:
    """The lines format_sample() writes for a batch's samples, straight from its
    records without building Samples (the fast path of headless JSON).

    None when the batch needs the full path (meta, extension data, skb, stacks)."""
    layout = batch.layout
    if not layout.plain:
        return None
    if batch.raw is not None:
        return per_layout(layout, _PlainJson).format(batch.raw)
    quoted = [json.dumps(n) for n in layout.names]
    plain = '{"packet_id":"0x%x","timestamp":%d,"processor_id":%d,"function":%s,"is_return":%s}\n'
    dropped = ('{"packet_id":"0x%x","timestamp":%d,"processor_id":%d,"function":%s,'
               '"is_return":%s,"drop_reason":%s}\n')
    lines = []
    for pid, ts, cpu, probe, ret, reason in map(layout.fields(*BASE), batch.records):
        if reason:
            lines.append(dropped % (pid, ts, cpu, quoted[probe], "true" if ret else "false",
                                    json.dumps(layout.reason_name(reason))))
        else:
            lines.append(plain % (pid, ts, cpu, quoted[probe], "true" if ret else "false"))
    return "".join(lines)


class _PlainJson:
    """JSON lines of plain records by columns (decode.plain_columns), one `%` per batch:
    the text of the probe/CPU word and of the return/reason word is made once per
    distinct value."""

    LINE = '{"packet_id":"0x%x","timestamp":%d,"processor_id":%s%s}\n'

    def __init__(self, layout):
        names = [json.dumps(n) for n in layout.names]
        self.probe_cpu = WordPieces(lambda w: f'{w >> 32},"function":{names[w & 0xFFFFFFFF]}')
        self.return_reason = WordPieces(
            lambda w: f',"is_return":{"true" if w & 0xFF else "false"}' + (
                f',"drop_reason":{json.dumps(layout.reason_name(w >> 32))}' if w >> 32 else ""))

    def format(self, raw: bytes) -> str:
        pids, timestamps, probe_cpu, return_reason = plain_columns(raw)
        args = tuple(chain.from_iterable(zip(
            pids, timestamps, map(self.probe_cpu.__getitem__, probe_cpu),
            map(self.return_reason.__getitem__, return_reason))))
        return (self.LINE * len(pids)) % args


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
            text = None if (decorate or self.with_tuple) else format_records(batch)
            if text is None:
                samples = batch.samples()
                self.write(decorate(samples) if decorate else samples)
            elif text:
                self.stream.write(text)
        self.stream.flush()

    def finish(self) -> None:
        self.stream.flush()
