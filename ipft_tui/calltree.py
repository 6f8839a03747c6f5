"""Call trees from a packet's samples (function_graph). Pure: no bcc, no Textual."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Sample


@dataclass
class CallNode:
    function: str
    entry: Sample | None = None  # None: the call began before tracing (or its entry was lost)
    exit: Sample | None = None  # None: no return seen (lost, or still running)
    children: list[CallNode] = field(default_factory=list)
    depth: int = 0

    @property
    def duration(self) -> int | None:
        if self.entry is None or self.exit is None:
            return None
        return self.exit.timestamp - self.entry.timestamp

    @property
    def self_time(self) -> int | None:
        total = self.duration
        if total is None:
            return None
        return total - sum(c.duration or 0 for c in self.children)

    @property
    def timestamp(self) -> int:
        return (self.entry or self.exit).timestamp


def build_call_tree(samples: list[Sample], returning: set[str] | None = None) -> list[CallNode]:
    """Nest entries and returns into calls, one stack per CPU.

    Only functions in `returning` (by default: those with a return sample among
    `samples`) open a call; any other sample is a leaf event, like a tracepoint
    with no exit partner. A return closes the innermost open call of the same
    function on its CPU (calls above it lost their returns); a return with no
    open call becomes a call without entry at the current level.
    """
    if returning is None:
        returning = {s.function for s in samples if s.is_return}
    roots: list[CallNode] = []
    stacks: dict[int, list[CallNode]] = {}
    for sample in sorted(samples, key=lambda s: s.timestamp):
        stack = stacks.setdefault(sample.processor_id, [])
        if not sample.is_return:
            node = CallNode(sample.function, entry=sample, depth=len(stack))
            (stack[-1].children if stack else roots).append(node)
            if sample.function in returning:
                stack.append(node)
            continue
        for i in range(len(stack) - 1, -1, -1):
            if stack[i].function == sample.function:
                stack[i].exit = sample
                del stack[i:]
                break
        else:
            node = CallNode(sample.function, exit=sample, depth=len(stack))
            (stack[-1].children if stack else roots).append(node)
    return roots


def flatten(roots: list[CallNode]) -> list[CallNode]:
    out: list[CallNode] = []
    todo = list(reversed(roots))
    while todo:
        node = todo.pop()
        out.append(node)
        todo.extend(reversed(node.children))
    return out
