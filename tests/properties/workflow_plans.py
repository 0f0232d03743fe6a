"""Random canvases for the workflow properties, and the small model of their outcome.

A plan is a tree of `Leaf`, `Chain`, `Group` and `Chord` nodes; its leaves are numbered
(`label`) in the order they are written, which is also the order of the workflow's
`job_ids`. `expected(plan, cancelled)` evaluates the tree by API.md's rules alone, with
no reference to how taskrunner compiles a canvas:

- a chain hands each item the previous item's value: a step's result, or a group's list
  of its members' values; the first item gets nothing, and so does a `si` step;
- a step runs once everything it follows succeeded; it then fails (PermanentFailure)
  or succeeds (at once, or after one failed attempt) with its label as its result;
- a step that failed for good, or was cancelled, makes every step after it `cancelled`
  (naming one of the steps that broke the line); the others go on; the workflow ends
  `failed` when any step did not succeed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

from hypothesis import strategies as st

from taskrunner import chain, chord, group

OK, TRANSIENT, PERMANENT = "ok", "transient", "permanent"


@dataclasses.dataclass
class Leaf:
    behaviour: str
    immutable: bool
    pause_ms: int
    label: int = -1


@dataclasses.dataclass
class Chain:
    items: list[Plan]


@dataclasses.dataclass
class Group:
    items: list[Plan]


@dataclasses.dataclass
class Chord:
    header: list[Plan]
    body: Plan


Plan: TypeAlias = Leaf | Chain | Group | Chord


def leaves(max_pause_ms: int) -> st.SearchStrategy[Leaf]:
    return st.builds(
        Leaf,
        behaviour=st.sampled_from([OK, OK, OK, OK, TRANSIENT, PERMANENT]),
        immutable=st.sampled_from([False, False, False, True]),
        pause_ms=st.integers(min_value=0, max_value=max_pause_ms),
    )


def _nodes(children: st.SearchStrategy[Plan]) -> st.SearchStrategy[Plan]:
    items = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        items.map(Chain),
        items.map(Group),
        st.builds(Chord, header=items, body=children),
    )


def plans(max_pause_ms: int = 30) -> st.SearchStrategy[Plan]:
    """Canvases of up to 12 steps, each pausing up to `max_pause_ms` while it runs."""
    return st.recursive(leaves(max_pause_ms), _nodes, max_leaves=12)


def numbered(plan: Plan) -> list[Leaf]:
    """Label the leaves in written order (a chord: its header, then its body)."""
    found: list[Leaf] = []

    def visit(node: Plan) -> None:
        if isinstance(node, Leaf):
            node.label = len(found)
            found.append(node)
        elif isinstance(node, Chain | Group):
            for item in node.items:
                visit(item)
        else:
            for item in node.header:
                visit(item)
            visit(node.body)

    visit(plan)
    return found


def canvas(plan: Plan, task: Any, history: str) -> Any:
    """The taskrunner canvas of a numbered plan, every step a call of `task`."""
    if isinstance(plan, Leaf):
        make = task.si if plan.immutable else task.s
        return make(
            label=plan.label, behaviour=plan.behaviour, pause_ms=plan.pause_ms, history=history
        )
    if isinstance(plan, Chain):
        return chain(*(canvas(i, task, history) for i in plan.items))
    if isinstance(plan, Group):
        return group(*(canvas(i, task, history) for i in plan.items))
    return chord([canvas(i, task, history) for i in plan.header], canvas(plan.body, task, history))


# ---- the model -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Done:
    """What flows along a chain: a value made by the steps `by` (all succeeded), or,
    with `broken`, the steps whose failure or cancel stops everything after."""

    value: Any = None
    by: frozenset[int] = frozenset()
    broken: frozenset[int] = frozenset()
    given: bool = False  # False: the start of the workflow, nothing to hand on


@dataclasses.dataclass
class StepOutcome:
    status: str  # succeeded, failed or cancelled
    parents: frozenset[int]  # the steps that must succeed before it starts
    received: Any = None  # what it is called with, when it runs
    culprits: frozenset[int] = frozenset()  # cancelled: a step that broke its line


@dataclasses.dataclass
class Expected:
    steps: dict[int, StepOutcome]
    status: str  # the workflow's
    result: Any  # the workflow's, when it succeeded
    cancelled: frozenset[int]  # steps cancelled by hand before any worker started


def expected(plan: Plan, cancelled: frozenset[int] = frozenset()) -> Expected:
    """The outcome of a numbered plan whose steps `cancelled` were cancelled before any
    worker started."""
    steps: dict[int, StepOutcome] = {}

    def run(node: Plan, before: Done) -> Done:
        if isinstance(node, Leaf):
            return run_step(node, before)
        if isinstance(node, Chain):
            for item in node.items:
                before = run(item, before)
            return before
        if isinstance(node, Group):
            return joined([run(item, before) for item in node.items])
        return run(node.body, joined([run(item, before) for item in node.header]))

    def joined(members: list[Done]) -> Done:
        broken = frozenset().union(*(m.broken for m in members))
        if broken:
            return Done(broken=broken, given=True)
        return Done(
            value=[m.value for m in members],
            by=frozenset().union(*(m.by for m in members)),
            given=True,
        )

    def run_step(leaf: Leaf, before: Done) -> Done:
        parents = before.by
        if leaf.label in cancelled:
            steps[leaf.label] = StepOutcome("cancelled", parents, culprits=before.broken)
            return Done(broken=before.broken | {leaf.label}, given=True)
        if before.broken:
            steps[leaf.label] = StepOutcome("cancelled", parents, culprits=before.broken)
            return Done(broken=before.broken, given=True)
        received = before.value if before.given and not leaf.immutable else None
        if leaf.behaviour == PERMANENT:
            steps[leaf.label] = StepOutcome("failed", parents, received)
            return Done(broken=frozenset({leaf.label}), given=True)
        steps[leaf.label] = StepOutcome("succeeded", parents, received)
        return Done(value=leaf.label, by=frozenset({leaf.label}), given=True)

    last = run(plan, Done())
    ok = all(s.status == "succeeded" for s in steps.values())
    return Expected(steps, "succeeded" if ok else "failed", last.value if ok else None, cancelled)
