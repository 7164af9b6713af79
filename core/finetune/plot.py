"""The loss plot a run folder keeps (loss.png): training loss per step and eval loss where measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_loss(rows: list[dict[str, Any]], path: Path, *, title: str) -> Path:
    """Draw training loss (line) and eval loss (dots) against the step and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows if "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, [r["loss"] for r in rows if "loss" in r], label="train loss")
    evals = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    if evals:
        ax.plot(*zip(*evals, strict=True), "o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
