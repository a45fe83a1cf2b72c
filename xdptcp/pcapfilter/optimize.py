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

The walk follows every path, so it is bounded: ``BUDGET`` steps, or ``STEPS_PER_DECISION`` for
each comparison of a long filter (a chain of thousands of ``or`` takes about 5 a comparison; a
filter whose paths multiply takes more than any bound). A filter too large for it is compiled
unoptimized, exactly as written — never wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from xdptcp.pcapfilter import ir

BUDGET = 50_000
STEPS_PER_DECISION = 8


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


def decision_graph(root: ir.Bool, t: Node = True, f: Node = False) -> Node:
    """The boolean tree as a graph of comparisons (short-circuit order, as the code runs).

    ``a and b`` is ``a`` leading to ``b`` when it holds, to ``f`` when not; so an ``and`` or an
    ``or`` is built from its last part back to its first. The walk keeps its own stack of the
    nodes under way, so that a tree of any depth is no Python recursion."""
    under_way: list[list] = []  # [node, its t, its f, index of the part being built]
    node = root
    while True:
        while isinstance(node, (ir.Never, ir.Tag, ir.Not)):
            node, t, f = (node.a, f, t) if isinstance(node, ir.Not) else (node.code, t, f)
        if isinstance(node, (ir.And, ir.Or)):
            last = len(node.parts) - 1
            under_way.append([node, t, f, last])
            node = node.parts[last]
            continue
        if isinstance(node, ir.Const):
            built: Node = t if node.value else f
        else:
            built = Decision(node, t, f)
        while under_way:  # hand what was built to the node it is a part of
            frame = under_way[-1]
            owner, ot, of, i = frame
            if i == 0:  # its first part: the whole node is built
                under_way.pop()
                continue
            frame[3] = i - 1
            node = owner.parts[i - 1]
            t, f = (built, of) if isinstance(owner, ir.And) else (ot, built)
            break
        else:
            return built


def optimize(node: ir.Bool) -> Optional[Node]:
    """The simplified decision graph, or None when it is too large to simplify."""
    graph = decision_graph(node)
    walker = _Walker(max(BUDGET, STEPS_PER_DECISION * len(topological(graph))))
    try:
        return walker.simplify(graph)
    except _OutOfBudget:
        return None


class _Walker:
    """Follows every path of a decision graph, knowing the outcomes of the comparisons made
    on the way (``facts``, and ``values``: what a comparison ``a == N`` that held says ``a``
    is). Depth-first, with its own stack, and the facts added on the way down taken back on
    the way up: a path of 50,000 comparisons is no recursion and no copying."""

    def __init__(self, budget: int) -> None:
        self.steps = 0
        self.budget = budget
        self.shared: dict[tuple, Decision] = {}  # one object per distinct decision
        self.facts: dict[ir.Cmp, bool] = {}
        self.values: dict[ir.Arith, int] = {}

    def simplify(self, node: Node) -> Node:
        above: list[list] = []  # [decision, its t side simplified or None (not yet)]
        while True:
            while True:  # down: follow the t side until an end
                self.steps += 1
                if self.steps > self.budget:
                    raise _OutOfBudget
                if isinstance(node, bool):
                    done: Node = node
                    break
                known = decide(node.cmp, self.facts, self.values)
                if known is not None:
                    node = node.t if known else node.f
                    continue
                above.append([node, None])
                self.assume(node.cmp, True)
                node = node.t
            while above:  # up: the f side next, or both sides done
                frame = above[-1]
                d = frame[0]
                self.forget(d.cmp)
                if frame[1] is None:
                    frame[1] = (done,)
                    self.assume(d.cmp, False)
                    node = d.f
                    break
                above.pop()
                done = self.join(d.cmp, frame[1][0], done)
            else:
                return done

    def join(self, cmp: ir.Cmp, t: Node, f: Node) -> Node:
        if t is f:
            return t
        key = (cmp, _key(t), _key(f))
        if key not in self.shared:
            self.shared[key] = Decision(cmp, t, f)
        return self.shared[key]

    def assume(self, cmp: ir.Cmp, held: bool) -> None:
        self.facts[cmp] = held
        if held and cmp.op == "eq" and isinstance(cmp.b, ir.Num):
            # never one there already: a second `a == M` on this path is decided by it
            self.values[cmp.a] = cmp.b.value

    def forget(self, cmp: ir.Cmp) -> None:
        if self.facts.pop(cmp) and cmp.op == "eq" and isinstance(cmp.b, ir.Num):
            del self.values[cmp.a]


def _key(node: Node) -> object:
    return node if isinstance(node, bool) else id(node)


def topological(root: Node) -> list[Decision]:
    """The decisions reachable from ``root``, each before every decision it leads to (so that
    code laid out in this order only jumps forward): a depth-first walk, the f side first,
    each decision listed after all it leads to, then the list reversed."""
    order: list[Decision] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            order.append(node)
            continue
        if isinstance(node, bool) or id(node) in seen:
            continue
        seen.add(id(node))
        stack += [(node, True), (node.t, False), (node.f, False)]
    return order[::-1]


def decide(cmp: ir.Cmp, facts: dict, values: dict) -> Optional[bool]:
    """The outcome of ``cmp`` if the facts (earlier outcomes on this path) settle it."""
    if cmp in facts:
        return facts[cmp]
    if isinstance(cmp.a, ir.Num) and isinstance(cmp.b, ir.Num):
        return _holds(cmp.op, cmp.a.value, cmp.b.value)
    if not isinstance(cmp.b, ir.Num) or cmp.a not in values:
        return None
    return _holds(cmp.op, values[cmp.a], cmp.b.value)  # a value known from an equality that held


def _holds(op: str, a: int, b: int) -> bool:
    a, b = a & 0xFFFFFFFF, b & 0xFFFFFFFF
    return {"eq": a == b, "gt": a > b, "ge": a >= b, "set": bool(a & b)}[op]
