"""`taskrunner workflow show|cancel|retry ID`: a workflow's steps as a tree with their
statuses, and the two verbs on a whole workflow. Exit codes as every command's
(cli/common.py): 1 when no workflow has that id or nothing could be done."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from taskrunner.cli.common import EXIT_ERROR, EXIT_OK, RunnerFrom, binder, run
from taskrunner.cli.jobs import print_json
from taskrunner.runner import TaskRunner, WorkflowTree

ACTIONS = ("show", "cancel", "retry")


def _step_line(tree: WorkflowTree, index: int) -> str:
    job_id = tree.workflow.job_ids[index]
    job = tree.steps[index]
    if job is None:
        return f"#{job_id} (removed)"
    line = f"#{job_id} {job.task} [{job.status}]"
    if job.last_error and str(job.status) in ("failed", "cancelled"):
        line += f" {job.last_error.splitlines()[0][:100]}"
    return line


def tree_lines(tree: WorkflowTree, node: Any, prefix: str = "") -> list[str]:
    """The canvas below `node` as indented lines, one per chain, group, chord or step."""
    if isinstance(node, int):
        return [prefix + _step_line(tree, node)]
    ((kind, children),) = node.items()
    labels = ["header: ", "body: "] if kind == "chord" else [""] * len(children)
    lines = [prefix + kind]
    for position, (label, child) in enumerate(zip(labels, children, strict=True)):
        last = position == len(children) - 1
        branch, below = ("└─ ", "   ") if last else ("├─ ", "│  ")
        first, *rest = tree_lines(tree, child)
        lines.append(prefix + branch + label + first)
        lines.extend(prefix + below + line for line in rest)
    return lines


def format_tree(tree: WorkflowTree) -> str:
    wf = tree.workflow
    finished = wf.finished_at.isoformat(sep=" ", timespec="seconds") if wf.finished_at else "-"
    head = (
        f"workflow {wf.id} [{wf.status}] request_id={wf.request_id} "
        f"created={wf.created_at.isoformat(sep=' ', timespec='seconds')} finished={finished}"
    )
    return "\n".join([head, *tree_lines(tree, tree.shape)])


def cmd_workflow(args: argparse.Namespace, runner: TaskRunner) -> int:
    async def act() -> Any:
        async with runner:
            if args.action == "show":
                return await runner.workflow_tree(args.workflow_id)
            if await runner.get_workflow(args.workflow_id) is None:
                return None
            return await getattr(runner, f"{args.action}_workflow")(args.workflow_id)

    outcome = run(act())
    if outcome is None:
        print(f"no workflow with id {args.workflow_id}", file=sys.stderr)
        return EXIT_ERROR
    if args.action == "show":
        if args.json:
            wf = outcome.workflow
            print_json(
                {
                    **{name: getattr(wf, name) for name in wf.__struct_fields__},
                    "shape": outcome.shape,
                    "steps": [
                        {"id": i, "task": j.task, "status": str(j.status)} if j else {"id": i}
                        for i, j in zip(wf.job_ids, outcome.steps, strict=True)
                    ],
                }
            )
        else:
            print(format_tree(outcome))
        return EXIT_OK
    done = "cancelled or asked to stop" if args.action == "cancel" else "queued again"
    if args.json:
        print_json({"workflow_id": args.workflow_id, "action": args.action, "steps": outcome})
    elif outcome:
        print(f"workflow {args.workflow_id}: {outcome} steps {done}")
    if outcome:
        return EXIT_OK
    print(
        f"workflow {args.workflow_id}: nothing to {args.action} (its steps' statuses do not "
        "allow it)",
        file=sys.stderr,
    )
    return EXIT_ERROR


def add_workflow_commands(
    commands: Any,  # argparse's private _SubParsersAction
    add_connection_options: Callable[[argparse.ArgumentParser], None],
    runner_from: RunnerFrom,
) -> None:
    """Add `workflow show|cancel|retry ID` to the CLI's subcommands."""
    handler = binder(runner_from)
    workflow = commands.add_parser(
        "workflow", help="show a workflow's steps as a tree, cancel or retry it"
    )
    workflow.add_argument("action", choices=ACTIONS)
    workflow.add_argument("workflow_id", type=int, metavar="ID")
    add_connection_options(workflow)
    workflow.add_argument("--json", action="store_true", help="print JSON")
    workflow.set_defaults(handler=handler(cmd_workflow))
