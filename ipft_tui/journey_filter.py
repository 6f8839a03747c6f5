"""Filter expressions over recorded journeys (the TUI's `\\` filter): pure, no Textual.

    drop == NO_SOCKET and dport == 7777
    fn ~ nf_hook and duration > 50us
    dev == veth0 or not (netns == 4026531840)
    path == "ip_output > dev_queue_xmit > kfree_skb"

A comparison is `field op value`; `and` binds tighter than `or`; `not` and
parentheses as usual. Operators: == != < <= > >= ~ (regex search) !~. Fields that
hold several values per journey (fn, cpu, dev, ifindex, netns, headers) match when any
value does; their `!=` and `!~` mean that none does. Header fields (proto, saddr,
daddr, sport, dport, len) hold every value seen along the journey, so a packet
is found by its ports before and after NAT. Values are words or quoted
strings; durations take a unit (ns, us, µs, ms, s; bare numbers are ns); numbers
may be hex (0x...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import reduce
from dataclasses import dataclass

from .model import L4_NAMES, Packet, packet_id_text
from .paths import outcome

Predicate = Callable[[Packet], bool]
PATH_JOIN = " > "  # `path == "ip_rcv > udp_rcv > consume_skb"`: the paths view's Enter


class FilterError(ValueError):
    """A malformed expression; `column` is 1-based."""

    def __init__(self, message: str, column: int):
        super().__init__(f"{message} (column {column})")
        self.column = column


def _along(attr: str):
    """Every value a header field took along the journey (NAT changes ports/addresses)."""
    return lambda p: {getattr(m, attr) for m in p.metas() if m.saddr}


def _fields_text(fields) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items()) if fields else ""


def _protos(packet: Packet) -> set[str]:
    return {L4_NAMES.get(m.l4_proto, str(m.l4_proto)) for m in packet.metas() if m.saddr}


# name -> (getter, holds several values per journey, numeric)
FIELDS: dict[str, tuple[Callable[[Packet], object], bool, bool]] = {
    "id": (lambda p: packet_id_text(p.packet_id), False, False),
    "key": (lambda p: p.key, False, True),  # the packet list's '#'
    # An extension's fields, as the packet list shows them: `fields ~ "gso_segs=[2-9]"`
    "fields": (lambda p: _fields_text(p.last.fields), False, False),
    "samples": (len, False, True),
    "duration": (lambda p: p.duration, False, True),
    "drop": (lambda p: p.drop_reason or "", False, False),
    "ends": (outcome, False, False),
    "first": (lambda p: p.first.function, False, False),
    "last": (lambda p: p.last.function, False, False),
    "fn": (lambda p: p.functions, True, False),
    "path": (lambda p: PATH_JOIN.join(p.path()[0]), False, False),
    "cpu": (lambda p: p.cpus, True, True),
    "dev": (lambda p: {m.ifname for m in p.metas() if m.ifname}, True, False),
    "ifindex": (lambda p: {m.ifindex for m in p.metas() if m.ifindex}, True, True),
    "netns": (lambda p: {m.netns for m in p.metas() if m.netns}, True, True),
    "proto": (_protos, True, False),
    "saddr": (_along("saddr"), True, False),
    "daddr": (_along("daddr"), True, False),
    "sport": (_along("sport"), True, True),
    "dport": (_along("dport"), True, True),
    "len": (_along("length"), True, True),
}
ALIASES = {"#": "key", "function": "fn", "reason": "drop", "ifname": "dev", "src": "saddr", "dst": "daddr",
           "duration_ns": "duration"}

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_TOKEN = re.compile(r"""\s*(?:(?P<op>==|!=|<=|>=|!~|[<>~()])|(?P<str>"[^"]*"|'[^']*')|(?P<word>[^\s()<>=!~"']+))""")
_OPS = {"==", "!=", "<", "<=", ">", ">=", "~", "!~"}


@dataclass
class _Token:
    kind: str  # op, str, word, end
    text: str
    column: int


def _tokens(text: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            start = len(text) - len(text[pos:].lstrip())  # the culprit, not the space before
            culprit = text[start]
            hint = " (comparisons: == != < <= > >= ~ !~)" if culprit in "=!" else ""
            raise FilterError(f"unexpected {culprit!r}{hint}", start + 1)
        kind = m.lastgroup
        value = m.group(kind)
        column = m.start(kind) + 1
        if kind == "str":
            value = value[1:-1]
        out.append(_Token(kind, value, column))
        pos = m.end()
    out.append(_Token("end", "", len(text) + 1))
    return out


def _number(text: str, column: int, duration: bool) -> int:
    if duration:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)?", text)
        if m:
            return int(float(m.group(1)) * _UNITS[m.group(2) or "ns"])
        raise FilterError(f"not a duration: {text!r} (e.g. 50us, 2ms)", column)
    try:
        return int(text, 0)
    except ValueError:
        raise FilterError(f"not a number: {text!r}", column) from None


def _function_match(test: Callable[[object], bool], negate: bool) -> Predicate:
    """fn: the names matching are found once per name table, then each journey is a
    bit test (its functions are a bit mask over the same table)."""
    cache: list = [None, 0]  # (table, its length), the mask of the names matching

    def predicate(packet: Packet) -> bool:
        bits, names = packet.function_bits()
        if cache[0] != (id(names), len(names)):
            cache[1] = sum(1 << i for i, name in enumerate(names) if test(name))
            cache[0] = (id(names), len(names))
        return bool(bits & cache[1]) != negate
    return predicate


def _comparison(name: str, op: str, value: str, column: int) -> Predicate:
    getter, several, numeric = FIELDS[name]
    if op in ("~", "!~"):
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise FilterError(f"bad regex {value!r}: {exc}", column) from None
        test = lambda v: v is not None and pattern.search(str(v)) is not None  # noqa: E731
    elif numeric:
        target = _number(value, column, name == "duration")
        test = {"==": lambda v: v == target, "!=": lambda v: v == target,
                "<": lambda v: v is not None and v < target,
                "<=": lambda v: v is not None and v <= target,
                ">": lambda v: v is not None and v > target,
                ">=": lambda v: v is not None and v >= target}[op]
    else:
        if op not in ("==", "!="):
            raise FilterError(f"{name} is text: use ==, != or ~", column)
        test = lambda v: v is not None and str(v) == value  # noqa: E731
    negate = op in ("!=", "!~")
    if name == "fn":
        return _function_match(test, negate)
    if several and op in ("==", "!="):
        # Sets of values: a membership test (text fields hold text, numeric ones ints).
        wanted = value if not numeric else _number(value, column, False)
        if negate:
            return lambda p: wanted not in getter(p)
        return lambda p: wanted in getter(p)
    if several:
        if negate:
            return lambda p: not any(test(v) for v in getter(p))
        return lambda p: any(test(v) for v in getter(p))
    if negate:
        return lambda p: not test(getter(p))
    return lambda p: test(getter(p))


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text.lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.either()
        token = self.peek()
        if token.kind != "end":
            raise FilterError(f"expected 'and', 'or' or the end, got {token.text!r}",
                              token.column)
        return predicate

    def either(self) -> Predicate:
        parts = [self.both()]
        while self.keyword("or"):
            parts.append(self.both())
        return reduce(lambda left, right: lambda p: left(p) or right(p), parts)

    def both(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return reduce(lambda left, right: lambda p: left(p) and right(p), parts)

    def unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.unary()
            return lambda p: not inner(p)
        token = self.peek()
        if token.kind == "op" and token.text == "(":
            self.take()
            inner = self.either()
            close = self.take()
            if close.text != ")":
                raise FilterError("expected ')'", close.column)
            return inner
        return self.compare()

    def compare(self) -> Predicate:
        field = self.take()
        if field.kind != "word":
            raise FilterError("expected a field name" + (f", got {field.text!r}" if field.text
                                                         else ""), field.column)
        name = ALIASES.get(field.text.lower(), field.text.lower())
        if name not in FIELDS:
            raise FilterError(f"unknown field {field.text!r}; fields: "
                              + ", ".join(sorted(FIELDS)), field.column)
        op = self.take()
        if op.kind != "op" or op.text not in _OPS:
            raise FilterError(f"expected an operator ({' '.join(sorted(_OPS))}) after "
                              f"{field.text}", op.column)
        value = self.take()
        if value.kind not in ("word", "str"):
            raise FilterError(f"expected a value after {field.text} {op.text}", value.column)
        return _comparison(name, op.text, value.text, value.column)


def compile_filter(text: str) -> Predicate | None:
    """A predicate over packets, or None for an empty expression (everything)."""
    if not text.strip():
        return None
    return _Parser(text).parse()


def path_expression(functions: tuple[str, ...]) -> str:
    """The filter that keeps the journeys taking exactly this path."""
    return f'path == "{PATH_JOIN.join(functions)}"'
