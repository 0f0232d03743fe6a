"""Medians with min-max, ratios to the baseline and to the pgbench ceiling: table, JSON, PNG."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.compare.config import Sizes


@dataclasses.dataclass(frozen=True)
class Metric:
    key: str
    label: str
    fmt: str  # "rate" | "ms" | "x"
    higher_is_better: bool
    vs_ceiling: bool = False  # jobs run per second: compared with the pgbench ceiling


METRICS: dict[str, list[Metric]] = {
    "enqueue_single": [Metric("jobs_per_s", "jobs/s", "rate", True)],
    "enqueue_batch": [Metric("jobs_per_s", "jobs/s", "rate", True)],
    "drain": [Metric("jobs_per_s", "jobs/s", "rate", True, vs_ceiling=True)],
    "latency": [
        Metric("p50_ms", "p50 ms", "ms", False),
        Metric("p95_ms", "p95 ms", "ms", False),
        Metric("p99_ms", "p99 ms", "ms", False),
    ],
    "steady": [
        Metric("achieved_per_s", "achieved jobs/s", "rate", True),
        Metric("p99_ms", "p99 ms", "ms", False),
    ],
    "backlog": [
        Metric("big_per_s", "jobs/s, big backlog", "rate", True, vs_ceiling=True),
        Metric("small_per_s", "jobs/s, small backlog", "rate", True, vs_ceiling=True),
        Metric("big_vs_small", "big / small", "x", True),
    ],
    "cpu": [Metric("speedup", "speed-up vs 1 process", "x", True)],
}

#: The metric the "vs baseline" column and the chart title use.
PRIMARY = {
    "enqueue_single": "jobs_per_s",
    "enqueue_batch": "jobs_per_s",
    "drain": "jobs_per_s",
    "latency": "p99_ms",
    "steady": "achieved_per_s",
    "backlog": "big_per_s",
    "cpu": "speedup",
}

#: What the chart draws per workload (one bar group per workload, a bar per system).
CHART = {
    "latency": ["p50_ms", "p95_ms", "p99_ms"],
    "backlog": ["small_per_s", "big_per_s"],
}

COLORS = {
    "baseline": "#7f7f7f",
    "taskrunner": "#1f77b4",
    "pgqueuer": "#ff7f0e",
    "procrastinate": "#2ca02c",
}


def describe(workload: str, s: Sizes) -> str:
    c = s.concurrency
    return {
        "enqueue_single": f"enqueue single: {s.enqueue_single_jobs:,} jobs, one call per job, "
        f"{c} concurrent coroutines",
        "enqueue_batch": f"enqueue batch: {s.enqueue_batch_jobs:,} jobs in chunks of "
        f"{s.enqueue_batch_chunk:,}",
        "drain": f"drain: {s.drain_jobs:,} pre-enqueued no-op async jobs, one worker process, "
        f"concurrency {c} (first handler start -> worker returned)",
        "latency": f"latency: idle worker, one job every {s.latency_interval_s * 1e3:g} ms for "
        f"{s.latency_jobs:,} jobs, enqueue -> handler start",
        "steady": f"steady: offered {s.steady_rate:,.0f} jobs/s for {s.steady_seconds:g} s "
        "(single enqueues; latency from the scheduled time)",
        "backlog": f"backlog: drain rate of {s.backlog_measured:,} jobs with "
        f"{s.backlog_big:,} queued (big) vs {s.backlog_small:,} queued (small)",
        "cpu": f"cpu: {s.cpu_jobs} CPU-bound jobs of ~{s.cpu_job_ms:g} ms on the process "
        "executor, speed-up over running them one after the other in one process",
    }[workload]


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def summarize(
    runs: dict[str, dict[str, list[dict[str, Any]]]],
    ceiling: list[dict[str, Any]],
) -> dict[str, Any]:
    """runs[workload][system] = one dict per repetition (metrics, or {"error": ...})."""
    ceiling_ok = [c["jobs_per_s"] for c in ceiling if "jobs_per_s" in c]
    ceiling_median = statistics.median(ceiling_ok) if ceiling_ok else None
    out: dict[str, Any] = {
        "pgbench_ceiling": _stats(ceiling_ok) if ceiling_ok else None,
        "workloads": {},
    }
    for workload, per_system in runs.items():
        wl: dict[str, Any] = {}
        for system, reps in per_system.items():
            ok = [r for r in reps if "error" not in r]
            entry: dict[str, Any] = {
                "reps_ok": len(ok),
                "reps_failed": len(reps) - len(ok),
                "errors": [r["error"] for r in reps if "error" in r],
                "metrics": {},
            }
            for m in METRICS[workload]:
                vals = [float(r[m.key]) for r in ok if m.key in r and _finite(r[m.key])]
                if vals:
                    entry["metrics"][m.key] = _stats(vals)
            wl[system] = entry
        base = wl.get("baseline", {}).get("metrics", {})
        for entry in wl.values():
            entry["vs_baseline"] = {
                k: v["median"] / base[k]["median"]
                for k, v in entry["metrics"].items()
                if k in base and base[k]["median"]
            }
            entry["of_ceiling"] = (
                {
                    m.key: entry["metrics"][m.key]["median"] / ceiling_median
                    for m in METRICS[workload]
                    if m.vs_ceiling and m.key in entry["metrics"]
                }
                if ceiling_median
                else {}
            )
        out["workloads"][workload] = wl
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _alpha(index: int, count: int) -> float:
    """Shade of the index-th of count metrics drawn side by side (the last one solid)."""
    return 1.0 if index == count - 1 else 0.35 + 0.3 * index


def fmt_value(value: float, kind: str) -> str:
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "ms":
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:.2f}"


def _cell(stats: dict[str, Any] | None, kind: str) -> str:
    if not stats:
        return "-"
    med, lo, hi = stats["median"], stats["min"], stats["max"]
    return f"{fmt_value(med, kind)} [{fmt_value(lo, kind)}-{fmt_value(hi, kind)}]"


def format_table(
    summary: dict[str, Any], systems: list[str], workloads: list[str], sizes: Sizes
) -> str:
    lines: list[str] = []
    ceiling = summary.get("pgbench_ceiling")
    if ceiling:
        lines.append(
            f"pgbench ceiling (claim 10 + delete per transaction, {sizes.pgbench_clients} "
            f"clients): {_cell(ceiling, 'rate')} jobs/s"
        )
        lines.append("")
    for workload in workloads:
        wl = summary["workloads"].get(workload)
        if not wl:
            continue
        metrics = METRICS[workload]
        primary = PRIMARY[workload]
        primary_label = next(m.label for m in metrics if m.key == primary)
        has_ceiling = any(m.vs_ceiling for m in metrics)
        header = ["system", *[f"{m.label}: median [min-max]" for m in metrics]]
        header.append(f"vs baseline ({primary_label})")
        if has_ceiling:
            header.append(f"of ceiling ({primary_label})")
        rows = [header]
        for system in systems:
            entry = wl.get(system)
            if entry is None:
                continue
            row = [system]
            if not entry["metrics"]:
                row += ["FAILED"] + [""] * (len(header) - 2)
                rows.append(row)
                continue
            row += [_cell(entry["metrics"].get(m.key), m.fmt) for m in metrics]
            ratio = entry["vs_baseline"].get(primary)
            row.append(f"{ratio:.2f}x" if ratio is not None else "-")
            if has_ceiling:
                frac = entry["of_ceiling"].get(primary)
                row.append(f"{frac:.1%}" if frac is not None else "-")
            if entry["reps_failed"]:
                row[0] += f" ({entry['reps_failed']} failed)"
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines.append(f"== {describe(workload, sizes)}")
        for i, r in enumerate(rows):
            lines.append(
                "  ".join(
                    c.ljust(w) if j == 0 else c.rjust(w)
                    for j, (c, w) in enumerate(zip(r, widths, strict=True))
                ).rstrip()
            )
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        errors = [
            (system, err) for system in systems for err in wl.get(system, {}).get("errors", [])
        ]
        for system, err in errors:
            first = err.strip().splitlines()[0] if err.strip() else "error"
            lines.append(f"   ! {system}: {first}")
        lines.append("")
    return "\n".join(lines)


def format_settings(settings: dict[str, dict[str, Any]]) -> str:
    lines = ["Settings"]
    for system, items in settings.items():
        lines.append(f"  {system}:")
        for key, value in items.items():
            lines.append(f"    {key}: {value}")
    return "\n".join(lines)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


def write_png(
    path: Path,
    summary: dict[str, Any],
    systems: list[str],
    workloads: list[str],
    sizes: Sizes,
    title: str,
    notes: list[str] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    shown = [w for w in workloads if w in summary["workloads"]]
    if not shown:
        return
    cols = min(4, len(shown))
    nrows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 4.2 * nrows), squeeze=False)
    ceiling = summary.get("pgbench_ceiling")
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    if notes and len(shown) < nrows * cols:
        axes.flat[len(shown)].text(
            0.0,
            1.0,
            "\n".join(notes),
            va="top",
            ha="left",
            fontsize=8,
            family="monospace",
            transform=axes.flat[len(shown)].transAxes,
            wrap=True,
        )
    for ax, workload in zip(axes.flat, shown, strict=False):
        wl = summary["workloads"][workload]
        metrics = {m.key: m for m in METRICS[workload]}
        keys = CHART.get(workload, [PRIMARY[workload]])
        present = [s for s in systems if s in wl]
        width = 0.8 / len(keys)
        for k_i, key in enumerate(keys):
            m = metrics[key]
            for s_i, system in enumerate(present):
                stats = wl[system]["metrics"].get(key)
                x = s_i + (k_i - (len(keys) - 1) / 2) * width
                if not stats:
                    ax.text(x, 0, "failed", rotation=90, ha="center", va="bottom", fontsize=8)
                    continue
                med = stats["median"]
                ax.bar(
                    x,
                    med,
                    width * 0.95,
                    color=COLORS.get(system, "#999999"),
                    alpha=_alpha(k_i, len(keys)),
                    yerr=[[med - stats["min"]], [stats["max"] - med]],
                    capsize=2,
                    edgecolor="black",
                    linewidth=0.4,
                )
                ax.text(x, med, fmt_value(med, m.fmt), ha="center", va="bottom", fontsize=7)
        if ceiling and any(metrics[k].vs_ceiling for k in keys):
            ax.axhline(ceiling["median"], color="red", linestyle="--", linewidth=1)
            ax.set_ylim(0, max(ax.get_ylim()[1], ceiling["median"]) * 1.2)
            ax.text(
                len(present) - 0.5,
                ceiling["median"],
                "pgbench ceiling",
                color="red",
                ha="right",
                va="bottom",
                fontsize=7,
            )
        if len(keys) > 1:
            ax.legend(
                handles=[
                    Patch(facecolor="#555555", alpha=_alpha(i, len(keys)), label=metrics[k].label)
                    for i, k in enumerate(keys)
                ],
                fontsize=7,
                loc="upper left",
            )
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels(present, fontsize=8)
        unit = " / ".join(metrics[k].label for k in keys)
        better = "higher" if metrics[keys[-1]].higher_is_better else "lower"
        ax.set_title(f"{workload}\n{unit} ({better} is better)", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
