"""Benchmark: the quantization report on the default base model with a briefly fine-tuned LoRA adapter.

A seeded synthetic fraud-risk task ("Risk level: N", N = number of risk signals in a transaction) gives the task
metric meaning; core.finetune's recipe (what `finmed train` runs) fine-tunes LoRA on SmolLM2-135M-Instruct in a child
process (its peak memory, VmHWM, is reported), then core.quantize.report exports through `finmed export`'s code and
measures fp32, fp16, int8 (both schemes), int4 RTN (accuracy-level and block-size knobs) and GPTQ in one run, every
measurement on the serving engine (core.serving.engine) in a fresh process per model (peak memory = its VmHWM).

    PYTHONPATH=$PWD .venv/bin/python bench/quantize.py [--steps 600] [--n-eval 200] [--work /tmp/finmed-bench-quantize]

Prints the comparison table and writes bench/results/quantize.json and bench/results/quantize.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import portable, require_quiet

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "var" / "models" / "smollm2-135m-instruct"
SYSTEM = "Score fraud risk 0-5."
COUNTRIES = ["US", "DE", "FR", "GB", "NL", "ES", "IT", "BR", "NG", "CN"]


def synthetic_record(rng: random.Random) -> dict[str, Any]:
    """One chat record; the risk level counts five signals spelled out in the transaction text."""
    home = rng.choice(COUNTRIES)
    amount = round(rng.choice([rng.uniform(5, 400), rng.uniform(400, 3000), rng.uniform(3000, 20000)]), 2)
    hour = rng.randrange(24)
    country = home if rng.random() < 0.55 else rng.choice(COUNTRIES)
    last_hour = rng.choice([0, 1, 2, rng.randrange(3, 15)])
    new_device = rng.random() < 0.3
    level = (amount > 1000) + (hour < 6) + (country != home) + (last_hour >= 5) + new_device
    text = (
        f"Amount {amount:.2f} USD at {hour:02d}:{rng.randrange(60):02d}; card home country {home}, "
        f"merchant country {country}; {last_hour} transactions in the last hour; "
        f"{'new' if new_device else 'known'} device."
    )
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": text},
            {"role": "assistant", "content": f"Risk level: {level}"},
        ]
    }


def write_split(path: Path, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = [synthetic_record(rng) for _ in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


TRAIN_CHILD = """
import json, sys
from core.finetune.config import config_from_dict
from core.finetune.run import run_training
run = run_training(config_from_dict(json.loads(open(sys.argv[1]).read())), show_progress=False)
peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))
print(json.dumps({"run": str(run), "peak_mem_mb": peak / 1024}))
"""


def fine_tune(
    base: Path, train_path: Path, work: Path, *, steps: int, batch: int, lr: float, top_layers: int
) -> dict[str, Any]:
    """LoRA through core.finetune's recipe (`finmed train`'s code) in a child process, so its peak memory (VmHWM) is
    the training's own. LoRA on the top layers only: backward then stops there, which keeps a CPU run to minutes.

    Returns:
        {"run": run folder, "peak_mem_mb": the training process's peak resident memory}.
    """
    import subprocess
    import sys

    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(str(base)).num_hidden_layers
    with train_path.open() as fh:
        rows = sum(1 for _ in fh)
    config = {
        "model": {"base": str(base)},
        "method": {
            "name": "lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
            "lora_target": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            "lora_layers": list(range(layers - top_layers, layers)),
        },
        "dataset": {"path": str(train_path), "max_length": 160, "eval_fraction": 0.02},
        # epochs enough for max_steps to be what stops the run (one epoch of 1,200 records is ~294 steps)
        "train": {"seed": 0, "max_steps": steps, "epochs": 1 + steps * batch // max(1, rows),
                  "batch_size": batch, "lr": lr, "warmup_steps": 10, "save_steps": max(steps, 1)},
        "output": {"dir": str(work / "runs"), "name": "bench-lora", "overwrite": True},
    }  # fmt: skip
    config_path = work / "train.json"
    config_path.write_text(json.dumps(config))
    env = os.environ | {"PYTHONPATH": str(REPO), "FINMED_DATA_DIR": str(work / "var")}
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_CHILD, str(config_path)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"training failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def variants() -> list[Any]:
    from core.quantize.precisions import ExportOptions

    return [
        "fp32",
        "fp16",
        ExportOptions("int8"),
        ExportOptions("int8", int8_scheme="dynamic"),
        ExportOptions("int4"),
        ExportOptions("int4", accuracy_level=1),
        ExportOptions("int4", block_size=64),
        ExportOptions("int4", block_size=128),
        ExportOptions("gptq"),
    ]


PLAIN = (
    "size_mb",
    "task_metric",
    "task_drop_pts",
    "perplexity",
    "peak_mem_mb",
    "ttft_ms",
    "decode_tps_b1",
    "decode_tps_b8",
)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """quantize.json as the issue specifies: the five precisions, plus every measured variant under "variants"."""
    rows = report["precisions"]
    int8 = max(("int8", "int8 (dynamic)"), key=lambda k: rows[k]["decode_tps_b1"] if k in rows else -1)
    pick = {"fp32": "fp32", "fp16": "fp16", "int8": int8, "int4": "int4", "gptq": "gptq"}
    out: dict[str, Any] = {"model": portable(report["model"]), "precisions": {}}
    for name, label in pick.items():
        row = rows[label]
        if "skipped" in row:
            out["precisions"][name] = {"skipped": row["skipped"]}
        else:
            out["precisions"][name] = {k: round(float(row[k]), 3) for k in PLAIN} | {"variant": label}
    out["variants"] = {
        label: (
            {"skipped": row["skipped"]}
            if "skipped" in row
            else {k: round(float(row[k]), 3) for k in PLAIN}
            | {"speedup_b1": row["speedup_b1"], "size_pct_of_fp32": row["size_pct_of_fp32"]}
        )
        for label, row in rows.items()
    }
    out["metric"] = report["metric"]
    out["n_eval"] = report["n_eval"]
    return out


def goals(report: dict[str, Any]) -> list[str]:
    """The issue's goals, each with the measured value and met / missed."""
    rows = report["precisions"]
    fp32, int4, gptq = rows["fp32"], rows["int4"], rows["gptq"]
    learned = fp32["task_metric"] >= 0.70
    best = min(
        (r for k, r in rows.items() if k.startswith("int4") and "skipped" not in r), key=lambda r: r["task_drop_pts"]
    )
    checks = [
        ("int4 size <= 30% of fp32", int4["size_pct_of_fp32"] <= 30, f"{int4['size_pct_of_fp32']:.1f}%"),
        ("int4 decode tok/s >= 4x fp32 at batch 1", int4["speedup_b1"] >= 4, f"{int4['speedup_b1']:.2f}x"),
        ("int4 task accuracy drop <= 1 point", int4["task_drop_pts"] <= 1, f"{int4['task_drop_pts']:+.2f} pts"),
        ("best int4 knob setting drop <= 1 point", best["task_drop_pts"] <= 1, f"{best['task_drop_pts']:+.2f} pts"),
        (
            "the adapter has learned the task: fp32 accuracy >= 70% (below it, a point of drop is noise)",
            learned,
            f"{100 * fp32['task_metric']:.1f}%",
        ),
        (
            "GPTQ drop smaller than int4 RTN, on the learned task",
            learned and gptq["task_drop_pts"] < int4["task_drop_pts"],
            f"gptq {gptq['task_drop_pts']:+.2f} vs int4 {int4['task_drop_pts']:+.2f} pts"
            + ("" if learned else " (the task is not learned: not a verdict on GPTQ)"),
        ),
    ]
    return [f"- {name}: {value} — {'met' if ok else 'MISSED'}" for name, ok, value in checks]


def trained_steps(run_dir: Path) -> int | None:
    """The last optimizer step the run's metrics.jsonl records (what the table was measured on, not --steps)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    steps = [json.loads(line).get("step") for line in path.read_text().splitlines() if line.strip()]
    return max((s for s in steps if isinstance(s, int)), default=None)


def results_markdown(report: dict[str, Any], result: dict[str, Any], table: str, args: argparse.Namespace) -> str:
    seconds = result["seconds"]
    return (
        "# Quantization benchmark\n\n"
        "Command (from the repository root):\n\n"
        f"    PYTHONPATH=$PWD .venv/bin/python {' '.join(['bench/quantize.py', *sys.argv[1:]])}\n\n"
        f"Machine: {args.machine}. Training peak memory (VmHWM of the training process): "
        f"{result.get('train_peak_mem_mb') or float('nan'):.0f} MB.\n\n"
        f"Model {portable(report['model'])} with a LoRA adapter fine-tuned for {result['train_steps']} steps "
        f"(batch {args.batch}, "
        f"LoRA r=16 on the top {args.top_layers} layers{', run reused' if args.reuse_run else ''}) on a seeded "
        "synthetic risk-level task; "
        f"{report['n_eval']} held-out eval records, metric {report['metric']} (drops in percentage points vs fp32 "
        f"of the same run); GPTQ calibrated on {args.n_calib} separate records. Fine-tune {seconds['fine_tune']} s, "
        f"report {seconds['report']} s. Ratios come from the same run.\n\n"
        f"{table}\n\n## Goals\n\n" + "\n".join(goals(report)) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--work", type=Path, default=Path("/tmp/finmed-bench-quantize"))
    parser.add_argument("--steps", type=int, default=600, help="Fine-tune steps (600: two epochs of --n-train).")
    parser.add_argument("--top-layers", type=int, default=10, help="Layers (from the top) that get LoRA.")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--n-eval", type=int, default=150)
    parser.add_argument("--n-calib", type=int, default=32)
    parser.add_argument("--reuse-run", action="store_true", help="Keep an already fine-tuned run folder.")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--allow-busy", action="store_true", help="Run even when the load average is >= 1.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.machine = require_quiet(allow_busy=args.allow_busy)

    from core.quantize.report import quant_report
    from core.quantize.report_render import markdown_table

    args.work.mkdir(parents=True, exist_ok=True)
    train = write_split(args.work / "train.jsonl", args.n_train, seed=11)
    write_split(args.work / "eval.jsonl", args.n_eval, seed=22)
    write_split(args.work / "calib.jsonl", args.n_calib, seed=33)
    del train
    run_dir = args.work / "runs" / "bench-lora"
    started = time.perf_counter()
    training: dict[str, Any] = {"run": str(run_dir), "peak_mem_mb": None}
    if not (args.reuse_run and (run_dir / "config.yaml").is_file()):
        shutil.rmtree(run_dir, ignore_errors=True)
        training = fine_tune(
            args.model, args.work / "train.jsonl", args.work,
            steps=args.steps, batch=args.batch, lr=args.lr, top_layers=args.top_layers,
        )  # fmt: skip
        run_dir = Path(training["run"])
    trained = time.perf_counter()
    report = quant_report(
        eval_path=args.work / "eval.jsonl",
        out_dir=args.work / "report",
        run_dir=run_dir,
        base=str(args.model),
        precisions=variants(),
        calib=args.work / "calib.jsonl",
        overwrite=True,
        progress=lambda msg: print(f"[{time.perf_counter() - started:6.0f} s] {msg}", flush=True),
    )
    table = markdown_table(report)
    print(table)
    result = summary(report)
    result["seconds"] = {"fine_tune": round(trained - started), "report": round(time.perf_counter() - trained)}
    result["train_peak_mem_mb"] = training["peak_mem_mb"]
    result["train_steps"] = trained_steps(run_dir)
    result["machine"] = args.machine
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "quantize.json").write_text(json.dumps(portable(result), indent=2))
    (args.results / "quantize.md").write_text(results_markdown(report, result, table, args))
    print(f"wrote {args.results / 'quantize.json'}")


if __name__ == "__main__":
    main()
