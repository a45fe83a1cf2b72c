"""libpcap's optimizer, as far as it changes what a filter selects.

tcpdump compiles filters optimized, and optimizing changes the meaning in one way that shows:
a comparison whose two outcomes lead to the same place is removed, and its loads with it, so a
load that would have gone past the end of the frame (and rejected it) is never made. In
``tcp[20:2] <= 64 or tcp`` the comparison decides nothing — a frame that passed its checks is
TCP anyway — so libpcap keeps only ``tcp``, and a TCP frame without payload is accepted.

The same reasoning is done here, on a decision graph of the filter's comparisons: along each
path the outcomes of earlier comparisons are known (``ldh [12] == 0x800`` makes a later
``ldh [12] == 0x86dd`` false), a comparison with a known outcome is bypassed, and one whose
two branches end up identical is dropped. When nothing is left but "reject", libpcap refuses
the filter ("expression rejects all packets"), and so does xdptcp.

The walk follows every path, so it is bounded (``BUDGET`` steps); a filter too large for it is
compiled unoptimized, exactly as written — never wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from xdptcp.pcapfilter import ir

BUDGET = 50_000


@dataclass(frozen=True, eq=False)
class Decision:
    """Test ``cmp``; continue at ``t`` when it holds, at ``f`` otherwise. Compared by identity:
    the walk makes one object per distinct decision, so equal graphs are the same object."""

    cmp: ir.Cmp
    t: Node
    f: Node


Node = Union[Decision, bool]


class _OutOfBudget(Exception):
    pass


def decision_graph(node: ir.Bool, t: Node = True, f: Node = False) -> Node:
    """The boolean tree as a graph of comparisons (short-circuit order, as the code runs)."""
    if isinstance(node, ir.Never):
        return decision_graph(node.code, t, f)
    if isinstance(node, ir.Not):
        return decision_graph(node.a, f, t)
    if isinstance(node, ir.Const):
        return t if node.value else f
    if isinstance(node, ir.And):
        return decision_graph(node.a, decision_graph(node.b, t, f), f)
    if isinstance(node, ir.Or):
        return decision_graph(node.a, t, decision_graph(node.b, t, f))
    return Decision(node, t, f)


def optimize(node: ir.Bool) -> Optional[Node]:
    """The simplified decision graph, or None when it is too large to simplify."""
    walker = _Walker()
    try:
        return walker.simplify(decision_graph(node), {})
    except _OutOfBudget:
        return None


class _Walker:
    def __init__(self) -> None:
        self.steps = 0
        self.shared: dict[tuple, Decision] = {}  # one object per distinct decision

    def simplify(self, node: Node, facts: dict) -> Node:
        self.steps += 1
        if self.steps > BUDGET:
            raise _OutOfBudget
        if isinstance(node, bool):
            return node
        known = decide(node.cmp, facts)
        if known is not None:
            return self.simplify(node.t if known else node.f, facts)
        t = self.simplify(node.t, {**facts, node.cmp: True})
        f = self.simplify(node.f, {**facts, node.cmp: False})
        if t is f:
            return t
        key = (node.cmp, _key(t), _key(f))
        if key not in self.shared:
            self.shared[key] = Decision(node.cmp, t, f)
        return self.shared[key]


def _key(node: Node) -> object:
    return node if isinstance(node, bool) else id(node)


def topological(root: Node) -> list[Decision]:
    """The decisions reachable from ``root``, each before every decision it leads to (so that
    code laid out in this order only jumps forward)."""
    order: list[Decision] = []
    seen: set[int] = set()

    def visit(node: Node) -> None:
        if isinstance(node, bool) or id(node) in seen:
            return
        seen.add(id(node))
        visit(node.f)
        visit(node.t)
        order.append(node)

    visit(root)
    return order[::-1]


def decide(cmp: ir.Cmp, facts: dict) -> Optional[bool]:
    """The outcome of ``cmp`` if the facts (earlier outcomes on this path) settle it."""
    if cmp in facts:
        return facts[cmp]
    if isinstance(cmp.a, ir.Num) and isinstance(cmp.b, ir.Num):
        return _holds(cmp.op, cmp.a.value, cmp.b.value)
    if not isinstance(cmp.b, ir.Num):
        return None
    for fact, held in facts.items():  # a value known from an equality that held
        if held and fact.op == "eq" and fact.a == cmp.a and isinstance(fact.b, ir.Num):
            return _holds(cmp.op, fact.b.value, cmp.b.value)
    return None


def _holds(op: str, a: int, b: int) -> bool:
    a, b = a & 0xFFFFFFFF, b & 0xFFFFFFFF
    return {"eq": a == b, "gt": a > b, "ge": a >= b, "set": bool(a & b)}[op]
