"""The canvas: `task.s()`, `task.si()`, `chain`, `group` and `chord`, and how a canvas
becomes the steps and edges of a workflow.

A canvas is plain data until it is enqueued. `compile_canvas` numbers its steps in the
order they are written and gives each one its parents (the steps whose results it
waits for, in input order) and what it receives from them:

    chain(a.s(1), group(b.s(), c.s()), d.s())

        a ──┬── b ──┬── d        b and c receive a's result; d receives [b's, c's]
            └── c ──┘

A group's result is the list of its members' results (a member that is itself a group
gives a list inside it), so a step's input is described as positions into its parents:
"one" (the single parent's result), "list" (all of them in order) or nested lists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from taskrunner.errors import InvalidArguments

if TYPE_CHECKING:
    from taskrunner.runner.tasks import Task


@dataclass(frozen=True, eq=False)
class Step:
    """One call of a task in a workflow. `immutable` (made by `task.si`) receives nothing
    from the steps before it; otherwise, after another step, the previous result is its
    first positional argument."""

    task: Task[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    immutable: bool = False

    def __repr__(self) -> str:
        mark = "si" if self.immutable else "s"
        return f"{self.task.name}.{mark}(...)"


@dataclass(frozen=True, eq=False)
class Chain:
    """Steps one after another, each receiving the previous one's result."""

    items: tuple[Canvas, ...]


@dataclass(frozen=True, eq=False)
class Group:
    """Steps side by side; the group's result is the list of theirs, in order."""

    items: tuple[Canvas, ...]


@dataclass(frozen=True, eq=False)
class Chord:
    """A group followed by `body`, which receives the list of the group's results."""

    header: Group
    body: Canvas


Canvas: TypeAlias = Step | Chain | Group | Chord


def _items(kind: str, items: tuple[Any, ...]) -> tuple[Canvas, ...]:
    if len(items) == 1 and not isinstance(items[0], Step | Chain | Group | Chord):
        with contextlib.suppress(TypeError):
            items = tuple(items[0])  # chain([a, b]) as well as chain(a, b)
    if not items:
        raise InvalidArguments(None, f"{kind}() needs at least one step", field=kind)
    for index, item in enumerate(items):
        if not isinstance(item, Step | Chain | Group | Chord):
            raise InvalidArguments(
                None,
                f"{kind}() takes steps (task.s(...), task.si(...)), chains, groups and "
                f"chords; item #{index} is {type(item).__name__}",
                field=kind,
            )
    return items


def chain(*steps: Canvas | Iterable[Canvas]) -> Chain:
    """`chain(a, b, c)`: b receives a's result, c receives b's."""
    return Chain(_items("chain", steps))


def group(*steps: Canvas | Iterable[Canvas]) -> Group:
    """`group(a, b)`: a and b run in parallel; the result is [a's, b's]."""
    return Group(_items("group", steps))


def chord(header: Group | Iterable[Canvas], body: Canvas) -> Chord:
    """`chord([a, b], c)`: c receives [a's, b's] once both succeeded."""
    members = header if isinstance(header, Group) else group(*_items("chord", (header,)))
    (checked,) = _items("chord", (body,))
    return Chord(members, checked)


# ---- compiling -------------------------------------------------------------------------

Shape: TypeAlias = int | list[Any]  # positions into a list of parents, nested


@dataclass
class CompiledStep:
    step: Step
    parents: list[int]
    input: Any  # None, "one", "list" or a nested Shape


@dataclass
class Compiled:
    steps: list[CompiledStep]
    outputs: list[int]  # the steps whose results make the workflow's result
    output: Any  # "one", "list" or a nested Shape over outputs
    shape: Any  # the canvas with step numbers, for display


def _input(shape: Shape) -> Any:
    """How a step receives its parents' results: 'one', 'list' (flat) or the nesting."""
    if isinstance(shape, int):
        return "one"
    if shape == list(range(len(shape))):
        return "list"
    return shape


def _shifted(shape: Shape, by: int) -> Shape:
    if isinstance(shape, int):
        return shape + by
    return [_shifted(s, by) for s in shape]


MAX_STEPS = 100_000


def compile_canvas(canvas: Canvas) -> Compiled:
    """The steps of `canvas` in the order they are written, with their parents."""
    steps: list[CompiledStep] = []

    def build(
        node: Canvas, parents: list[int], shape: Shape | None
    ) -> tuple[list[int], Shape, Any]:
        if isinstance(node, Step):
            if len(steps) >= MAX_STEPS:
                raise InvalidArguments(
                    None, f"a workflow has at most {MAX_STEPS} steps", field="canvas"
                )
            given = None if node.immutable or shape is None else _input(shape)
            steps.append(CompiledStep(node, list(parents), given))
            return [len(steps) - 1], 0, len(steps) - 1
        if isinstance(node, Chain):
            shown = []
            for item in node.items:
                parents, shape, drawn = build(item, parents, shape)
                shown.append(drawn)
            assert shape is not None
            return parents, shape, {"chain": shown}
        if isinstance(node, Group):
            ends: list[int] = []
            nested: list[Any] = []
            shown = []
            for item in node.items:
                item_ends, item_shape, drawn = build(item, parents, shape)
                nested.append(_shifted(item_shape, len(ends)))
                ends.extend(item_ends)
                shown.append(drawn)
            return ends, nested, {"group": shown}
        if isinstance(node, Chord):
            header_ends, header_shape, header = build(node.header, parents, shape)
            ends_, final, body = build(node.body, header_ends, header_shape)
            return ends_, final, {"chord": [header, body]}
        raise InvalidArguments(
            None, f"not a step, chain, group or chord: {type(node).__name__}", field="canvas"
        )

    if not isinstance(canvas, Step | Chain | Group | Chord):
        raise InvalidArguments(
            None,
            "enqueue_workflow takes a canvas (task.s(...), chain, group or chord), not "
            f"{type(canvas).__name__}",
            field="canvas",
        )
    ends, final, shown = build(canvas, [], None)
    return Compiled(steps=steps, outputs=ends, output=_input(final), shape=shown)


def assemble(output: Any, results: list[Any]) -> Any:
    """The workflow's result from its last steps' results (see `_input`)."""
    if output == "one":
        return results[0] if results else None
    if output == "list":
        return list(results)
    if isinstance(output, int):
        return results[output]
    return [assemble(part, results) for part in output]
