"""`-o json`: one object per sample per line, keys in ipftrace2's order."""

from __future__ import annotations

import json

from ..model import Sample, packet_id_text


def format_sample(sample: Sample) -> str:
    line = (f'{{"packet_id":"{packet_id_text(sample.packet_id)}","timestamp":{sample.timestamp},'
            f'"processor_id":{sample.processor_id},"function":{json.dumps(sample.function)},'
            f'"is_return":{"true" if sample.is_return else "false"}')
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
    except KeyError as exc:
        raise ValueError(f"missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad value: {exc}") from None
    fields = {str(k): v if isinstance(v, (str, int)) else json.dumps(v) for k, v in obj.items()}
    return Sample(packet, timestamp, cpu, function, is_return, fields or None)


class JsonOutput:
    """Streams each batch of samples to a text file, flushing per batch."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, samples: list[Sample]) -> None:
        if samples:
            self.stream.write("".join(format_sample(s) + "\n" for s in samples))
            self.stream.flush()

    def finish(self) -> None:
        self.stream.flush()
