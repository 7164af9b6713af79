"""Render a quantization report: the seed-style markdown table and the accuracy / speed / size chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The comparison table: one row per precision, figures and their ratios to fp32."""
    metric = report["metric"]
    lines = [
        f"| precision | {metric} | drop (pts) | size MB (% fp32) | peak mem MB | TTFT ms | decode tok/s b1 (x fp32) "
        "| decode tok/s b8 (x fp32) | perplexity |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, row in report["precisions"].items():
        if "skipped" in row:
            lines.append(f"| {label} | skipped: {row['skipped']} |" + " |" * 7)
            continue
        lines.append(
            f"| {label} | {row['task_metric']:.3f} | {row['task_drop_pts']:+.1f} | {_fmt(row['size_mb'])} "
            f"({row['size_pct_of_fp32']:.0f}%) | {_fmt(row['peak_mem_mb'], 0)} | {_fmt(row['ttft_ms'])} "
            f"| {_fmt(row['decode_tps_b1'])} ({row['speedup_b1']:.2f}x) | {_fmt(row['decode_tps_b8'])} "
            f"({row['speedup_b8']:.2f}x) | {_fmt(row['perplexity'], 3)} |"
        )
    return "\n".join(lines)


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """report.md: what was measured, on what, and the table."""
    text = (
        f"# Quantization report: {report['source']}\n\n"
        f"Base model {report['model']}, method {report['method']}, execution provider {report['execution_provider']}; "
        f"task metric {report['metric']} on {report['n_eval']} records of {report['eval']}; drops are percentage "
        "points against fp32 of the same run. Perplexity on held-out text; peak memory is the serving process's "
        "peak RSS (runtime included); decode speed is greedy tokens/s after the first token.\n\n"
        f"{markdown_table(report)}\n"
    )
    Path(path).write_text(text)


def write_chart(report: dict[str, Any], path: Path) -> None:
    """report.png: task metric against decode speed at batch 1, marker area proportional to size on disk."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: v for k, v in report["precisions"].items() if "skipped" not in v}
    biggest = max(r["size_mb"] for r in rows.values())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, row in rows.items():
        ax.scatter(row["decode_tps_b1"], row["task_metric"], s=60 + 1200 * row["size_mb"] / biggest, alpha=0.5)
        ax.annotate(
            f"{label}\n{row['size_mb']:.0f} MB",
            (row["decode_tps_b1"], row["task_metric"]),
            textcoords="offset points",
            xytext=(8, 4),
            fontsize=8,
        )
    ax.set_xlabel("decode tokens/s, batch 1")
    ax.set_ylabel(report["metric"])
    ax.set_title("accuracy vs speed (marker area = size on disk)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
