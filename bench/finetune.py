"""Benchmark of the fine-tuning methods: same data and steps on the default base model and on the tiny model.

Prints one table per model (trainable parameters and share, median step time, tokens/sec, peak memory, final
eval loss) plus the LoRA/full ratios, and writes bench/results/finetune.json (default model figures, in the
shape issue #3 asks for) and bench/results/finetune.md (both tables and the command).

Each (model, method) pair runs in its own subprocess so that "peak memory" (process peak RSS on CPU, CUDA max
allocated on GPU) belongs to that run alone.

    PYTHONPATH=. python bench/finetune.py [--steps 6] [--max-length 96] [--models default,tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "assets" / "finetune" / "records.jsonl"
RESULTS = REPO / "bench" / "results"
METHODS = ("lora", "adapter", "prompt_tuning", "full")
# Usual learning rates per method (soft prompts need a far larger one than weight updates).
LR = {"lora": 2e-4, "adapter": 2e-4, "prompt_tuning": 3e-2, "full": 2e-5}


def run_one(base: str, method: str, steps: int, max_length: int, out: Path) -> dict:
    """Train one method and summarise its metrics (runs inside the child process)."""
    from core.finetune.config import config_from_dict
    from core.finetune.run import run_training

    config = config_from_dict(
        {
            "model": {"base": base},
            "method": {"name": method},
            "dataset": {"path": str(DATA), "max_length": max_length, "eval_fraction": 0.1},
            "train": {"seed": 42, "max_steps": steps, "batch_size": 4, "lr": LR[method], "save_steps": 10_000},
            "output": {"dir": str(out), "name": method},
        }
    )
    run = run_training(config, show_progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps_rows = [r for r in rows if "loss" in r][1:]  # the first step includes one-off warm-up costs
    report = json.loads((run / "eval.json").read_text())
    return {
        "trainable_params": report["trainable_params"],
        "total_params": report["total_params"],
        "trainable_share": report["trainable_share"],
        "step_time_s": statistics.median(r["step_time_s"] for r in steps_rows),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steps_rows),
        "peak_mem_mb": max(r["peak_mem_mb"] for r in rows if "peak_mem_mb" in r),
        "eval_loss": report["eval_loss"],
        "first_train_loss": report["first_train_loss"],
        "last_train_loss": report["last_train_loss"],
    }


def child(base: str, method: str, steps: int, max_length: int, out: Path) -> dict:
    """Run `run_one` in a fresh Python process and return its figures."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "FINMED_DATA_DIR": str(out / "var")}
    code = (
        "import json,sys; from pathlib import Path; sys.path.insert(0, 'bench'); import finetune as b; "
        f"print('RESULT' + json.dumps(b.run_one({base!r}, {method!r}, {steps}, {max_length}, Path({str(out)!r}))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{method} on {base} failed:\n{proc.stderr[-2000:]}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def table(title: str, figures: dict[str, dict]) -> str:
    """A markdown table, one row per method, then the LoRA/full ratios."""
    lines = [
        f"### {title}",
        "",
        "| method | trainable params | share | median step (s) | tokens/s | peak mem (MB) "
        "| train loss first -> last | eval loss |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, f in figures.items():
        lines.append(
            f"| {name} | {f['trainable_params']:,} | {100 * f['trainable_share']:.3f}% | {f['step_time_s']:.3f} | "
            f"{f['tokens_per_s']:.0f} | {f['peak_mem_mb']:.0f} | {f['first_train_loss']:.3f} -> "
            f"{f['last_train_loss']:.3f} | {f['eval_loss']:.4f} |"
        )
    lora, full = figures["lora"], figures["full"]
    lines += [
        "",
        f"LoRA/full: trainable params {lora['trainable_params'] / full['trainable_params']:.4f}, "
        f"step time {lora['step_time_s'] / full['step_time_s']:.3f}, "
        f"tokens/s {lora['tokens_per_s'] / full['tokens_per_s']:.2f}, "
        f"peak memory {lora['peak_mem_mb'] / full['peak_mem_mb']:.3f}",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per method (batch 4)")
    parser.add_argument("--max-length", type=int, default=96, help="token limit per example")
    parser.add_argument("--models", default="default,tiny", help="comma list of 'default' and/or 'tiny'")
    args = parser.parse_args()
    started = time.time()
    all_figures: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        from core.models.default import pull_default
        from core.models.tiny import save_tiny_model

        bases = {
            "default": str(pull_default(REPO / "var" / "models")),
            "tiny": str(save_tiny_model(Path(tmp) / "tiny")),
        }
        for model in args.models.split(","):
            all_figures[model] = {}
            for method in METHODS:
                out = Path(tmp) / model / method
                all_figures[model][method] = child(bases[model], method, args.steps, args.max_length, out)
                print(f"{model} {method}: {all_figures[model][method]}", flush=True)
    command = (
        f"PYTHONPATH=. python bench/finetune.py --steps {args.steps} --max-length {args.max_length} "
        f"--models {args.models}"
    )
    titles = {"default": "default base model (SmolLM2-135M-Instruct)", "tiny": "tiny model (2-layer Llama, hidden 64)"}
    body = "\n".join(table(titles[m], f) for m, f in all_figures.items())
    print(body)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if "default" in all_figures:
        keys = ("trainable_share", "step_time_s", "tokens_per_s", "peak_mem_mb", "eval_loss")
        payload = {
            "model": "smollm2-135m-instruct",
            "methods": {m: {k: f[k] for k in keys} for m, f in all_figures["default"].items()},
        }
        (RESULTS / "finetune.json").write_text(json.dumps(payload, indent=2) + "\n")
    header = (
        "# Fine-tuning benchmark\n\n"
        f"Command: `{command}` (wall time {time.time() - started:.0f} s).\n\n"
        f"Same data (tests/assets/finetune/records.jsonl, 43 train / 5 eval records), {args.steps} optimizer steps "
        f"of batch 4, max_length {args.max_length}, seed 42, fp32 on CPU; learning rates {LR}. Median step time and "
        "tokens/s skip the first step. Peak memory is the process peak RSS (each method in its own process).\n\n"
        "Kept short on purpose (few steps, short sequences) because the machine is shared: 2 CPU cores used by "
        "several other jobs at the same time, so times are noisy and slower than on a quiet machine; eval losses "
        "after so few steps say little about final quality.\n\n"
    )
    (RESULTS / "finetune.md").write_text(header + body)


if __name__ == "__main__":
    main()
