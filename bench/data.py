"""Benchmark of the data filter and augmentation: throughput per tier, memory on large files, and the ablation.

1. Throughput: 100k synthetic finance training records with seeded defects at stated rates (exact and near
   duplicates, contradictions between answer and features, unknown currency codes, mojibake, truncated JSON lines)
   go through `finmed data filter`'s code; records/s per tier, and what each tier caught against what was injected.
2. Memory: peak RSS of a fresh process filtering files of increasing size (unique records), so the growth per
   record (the duplicate index) is measured, not assumed.
3. Ablation (the reference's claim that cleaning pays): the same LoRA fine-tune (same seed, equal steps) on raw,
   filtered and filtered+augmented (kg-substitute) records, evaluated on held-out accounts: level accuracy and
   accuracy within one level. The medical ablation (term accuracy, finding F1) needs the medical domain's synthetic
   reports and labeler; it is reported as not run until they are present.

    PYTHONPATH=. python bench/data.py [--records 100000] [--memory-sizes 100000,1000000] [--model default]
        [--train-records 400] [--steps 60] [--eval-records 200] [--out bench/results]

Writes OUT/data.md and OUT/data.json. Run on quiet cores (`require_quiet`); `--allow-busy` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import portable, require_quiet  # noqa: E402

# Stated defect rates of the raw set (share of records, drawn independently, at most one defect per record).
DEFECTS = {
    "exact_duplicate": 0.05,
    "near_duplicate": 0.03,
    "contradiction": 0.05,
    "wrong_currency": 0.03,
    "mojibake": 0.03,
    "truncated_json": 0.01,
}
CAUGHT_BY = {
    "exact_duplicate": {"exact_duplicate", "near_duplicate"},
    "near_duplicate": {"near_duplicate", "exact_duplicate"},
    "contradiction": {"reason_unsupported", "level_without_risk_feature"},
    "wrong_currency": {"unknown_currency"},
    "truncated_json": {"bad_json"},
}


def clean_records(n: int, seed: int) -> list[dict]:
    """At least `n` finance training records from seeded synthetic histories (60 days, ~40 rows per account)."""
    from domains.finance.synthetic import generate
    from domains.finance.training import training_records

    frame = generate(max(4, n // 38 + 1), seed=seed, days=60)
    return training_records(frame, frame["is_fraud"].to_numpy())[:n]


def inject(records: list[dict], seed: int) -> tuple[list[bytes], dict[int, str]]:
    """Raw JSONL lines with defects at DEFECTS rates; returns lines and {line number: defect}."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    truth: dict[int, str] = {}
    clean: list[int] = []  # positions of lines written without a defect (duplicates copy one of them)
    kinds, weights = list(DEFECTS), list(DEFECTS.values())
    for rec in records:
        defect = rng.choices([*kinds, None], weights=[*weights, 1 - sum(weights)])[0]
        obj = json.loads(json.dumps(rec))
        user = obj["messages"][-2]
        if defect in ("exact_duplicate", "near_duplicate") and clean:
            src = json.loads(lines[clean[rng.randrange(len(clean))]])
            if defect == "near_duplicate":
                src["messages"][-2]["content"] = src["messages"][-2]["content"].replace(
                    "and basis.", "and basis please."
                )
            obj = src
        elif defect == "contradiction":
            obj["messages"][-1]["content"] = (
                "Risk level: 5; Basis: none"
                if "signals: none" in user["content"]
                else ("Risk level: 4; Basis: impossible_travel, card_testing")
            )
            if "impossible_travel" in user["content"] or "card_testing" in user["content"]:
                defect = None  # would not contradict
        elif defect == "wrong_currency":
            user["content"] = re.sub(r"(amount: [\d.]+ )[A-Z]{3}", r"\1XQZ", user["content"], count=1)
        elif defect == "mojibake":
            user["content"] = user["content"].replace("—", "â€”").replace("features:", "featuresâ€™:")
        line = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        if defect == "truncated_json":
            line = line[: len(line) // 2]
        if defect in ("exact_duplicate", "near_duplicate") and not clean:
            defect = None
        if defect:
            truth[len(lines) + 1] = defect
        else:
            clean.append(len(lines))
        lines.append(line)
    return lines, truth


def throughput(raw: Path, truth: dict[int, str], out: Path) -> dict:
    """Filter the raw file; records/s per tier and what was caught of each injected defect."""
    from core.data.cli import domain_checks
    from core.data.filter import FilterOptions, run_filter

    started = time.perf_counter()
    result = run_filter(
        raw,
        out / "clean.jsonl",
        out / "report.json",
        checks=domain_checks("finance"),
        domain="finance",
        options=FilterOptions(),
    )
    total = time.perf_counter() - started
    tiers = [
        {
            "tier": t.name,
            "input": t.input,
            "dropped": t.dropped,
            "seconds": round(t.seconds, 2),
            "records_per_s": round(t.input / t.seconds) if t.seconds else None,
        }
        for t in result.report.tiers
    ]
    reasons = {json.loads(x)["line"]: json.loads(x)["reason"] for x in result.rejected.read_text().splitlines()}
    caught = {}
    for defect, codes in CAUGHT_BY.items():
        lines = [n for n, d in truth.items() if d == defect]
        caught[defect] = {"injected": len(lines), "caught": sum(reasons.get(n) in codes for n in lines)}
    caught["mojibake"] = {
        "injected": sum(d == "mojibake" for d in truth.values()),
        "repaired": result.report.tiers[0].repairs.get("mojibake_repaired", 0),
    }
    clean_dropped = sum(1 for n in reasons if n not in truth)
    return {
        "records": result.report.tiers[0].input,
        "seconds_total": round(total, 1),
        "tiers": tiers,
        "defects": caught,
        "dropped_without_defect": clean_dropped,
    }


def big_file(base: list[dict], n: int, path: Path, seed: int) -> Path:
    """`n` unique records (amounts changed per copy, which no check reads), streamed to disk."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            obj = json.loads(json.dumps(base[i % len(base)]))
            user = obj["messages"][-2]
            user["content"] = re.sub(r"amount: [\d.]+", f"amount: {rng.uniform(1, 9999):.2f}", user["content"], count=1)
            user["content"] = user["content"].replace("features:", f"{i} features:", 1)
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return path


def memory_child(path: str, out: str) -> None:
    """In a fresh process: filter `path`, print peak RSS in MB."""
    from core.data.cli import domain_checks
    from core.data.filter import FilterOptions, run_filter

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run_filter(
        Path(path),
        Path(out) / "m.jsonl",
        Path(out) / "m.json",
        checks=domain_checks("finance"),
        domain="finance",
        options=FilterOptions(),
    )
    print(
        json.dumps({"rss_before_mb": before, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    )


def memory(base: list[dict], sizes: list[int], work: Path) -> list[dict]:
    rows = []
    for n in sizes:
        path = big_file(base, n, work / f"big-{n}.jsonl", seed=n)
        mb = path.stat().st_size / 1e6
        child = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(path), "--out", str(work)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append({"records": n, "file_mb": round(mb, 1), **{k: round(v, 1) for k, v in figures.items()}})
        path.unlink()
    return rows


def train_and_eval(name: str, data: Path, model: str, steps: int, eval_set: list[dict], work: Path) -> dict:
    from core.finetune.config import config_from_dict
    from core.finetune.run import run_training
    from domains.finance.llm import LocalLLM
    from domains.finance.prompts import ANSWER_PREFIX

    method = {"name": "lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05}
    if model == "default":
        method["lora_layers"] = list(range(18, 30))
    config = config_from_dict(
        {
            "model": {"base": model},
            "method": method,
            "dataset": {"path": str(data), "max_length": 320, "eval_fraction": 0.05},
            "train": {"seed": 42, "max_steps": steps, "batch_size": 8, "lr": 5e-4, "save_steps": 10_000},
            "output": {"dir": str(work), "name": name, "overwrite": True},
        }
    )
    run = run_training(config, show_progress=False)
    llm = LocalLLM(adapter=run)
    prompts = [llm.render(r["messages"][:-1]) + ANSWER_PREFIX["en"] for r in eval_set]
    levels = llm.level_probs(prompts).argmax(axis=1)
    truth = [r["meta"]["level"] for r in eval_set]
    exact = sum(int(a) == b for a, b in zip(levels, truth, strict=True)) / len(truth)
    within = sum(abs(int(a) - b) <= 1 for a, b in zip(levels, truth, strict=True)) / len(truth)
    return {"records": sum(1 for _ in data.open()), "level_accuracy": round(exact, 3), "within_one": round(within, 3)}


def ablation(raw_lines: list[bytes], model: str, steps: int, eval_set: list[dict], work: Path) -> dict:
    from core.data.augment import AugmentOptions, run_augment
    from core.data.cli import domain_checks
    from core.data.filter import FilterOptions, run_filter

    raw = work / "abl-raw.jsonl"
    with raw.open("wb") as fh:  # the trainer cannot read broken lines: raw keeps every line that parses
        for line in raw_lines:
            try:
                json.loads(line)
            except json.JSONDecodeError:
                continue
            fh.write(line + b"\n")
    checks = domain_checks("finance")
    filtered = run_filter(
        raw,
        work / "abl-filtered.jsonl",
        work / "abl-report.json",
        checks=checks,
        domain="finance",
        options=FilterOptions(),
    ).output
    augmented = work / "abl-augmented.jsonl"
    run_augment(
        filtered,
        augmented,
        work / "abl-aug.json",
        checks=checks,
        domain="finance",
        options=AugmentOptions(method="kg-substitute"),
        translate=None,
    )
    return {
        name: train_and_eval(name, path, model, steps, eval_set, work)
        for name, path in (("raw", raw), ("filtered", filtered), ("filtered+augmented", augmented))
    }


def markdown(result: dict, command: str) -> str:
    out = [
        f"# Data filter and augmentation\n\n`{command}`\n\n{result['machine']}\n",
        "## Filter throughput\n",
        f"{result['throughput']['records']} records; defect rates: "
        + ", ".join(f"{k} {v:.0%}" for k, v in DEFECTS.items())
        + "\n",
        "| tier | input | dropped | seconds | records/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in result["throughput"]["tiers"]:
        out.append(f"| {t['tier']} | {t['input']} | {t['dropped']} | {t['seconds']} | {t['records_per_s']} |")
    out += ["", "| injected defect | injected | caught / repaired |", "| --- | --- | --- |"]
    for k, v in result["throughput"]["defects"].items():
        out.append(f"| {k} | {v['injected']} | {v.get('caught', v.get('repaired'))} |")
    out.append(f"\nRecords dropped without an injected defect: {result['throughput']['dropped_without_defect']}\n")
    out += ["## Memory (fresh process per file)\n", "| records | file MB | peak RSS MB |", "| --- | --- | --- |"]
    for m in result["memory"]:
        out.append(f"| {m['records']} | {m['file_mb']} | {m['peak_rss_mb']} |")
    out += [
        "",
        f"## Ablation (finance, model {result['model']}, {result['steps']} steps, seed 42)\n",
        "| training set | records | level accuracy | within one level |",
        "| --- | --- | --- | --- |",
    ]
    for name, a in result["ablation"].items():
        out.append(f"| {name} | {a['records']} | {a['level_accuracy']} | {a['within_one']} |")
    out.append(f"\nMedical ablation: {result['medical']}\n")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="raw records for the throughput run")
    parser.add_argument("--memory-sizes", default="100000,1000000", help="records per memory-run file")
    parser.add_argument("--model", default="default", help="'default', or a model folder (e.g. a tiny model)")
    parser.add_argument("--train-records", type=int, default=400)
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps of each ablation run (batch 8)")
    parser.add_argument("--eval-records", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--allow-busy", action="store_true")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, str(args.out))
        return
    machine = require_quiet(allow_busy=args.allow_busy)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        work = Path(tmp)
        base = clean_records(min(args.records, 20_000), seed=0)
        records = (base * (args.records // len(base) + 1))[: args.records] if args.records > len(base) else base
        # repeated base records would be duplicates; give each copy its own transaction number
        records = [
            {
                **r,
                "messages": [
                    *r["messages"][:-2],
                    {
                        "role": "user",
                        "content": r["messages"][-2]["content"].replace(
                            "Transaction features:", f"Transaction {i // len(base)}-{i % len(base)} features:"
                        ),
                    },
                    r["messages"][-1],
                ],
            }
            for i, r in enumerate(records)
        ]
        lines, truth = inject(records, seed=1)
        raw = work / "raw.jsonl"
        raw.write_bytes(b"\n".join(lines) + b"\n")
        result = {"machine": machine, "model": args.model, "steps": args.steps, "defect_rates": DEFECTS}
        result["throughput"] = throughput(raw, truth, work)
        result["memory"] = memory(base, [int(x) for x in args.memory_sizes.split(",") if x], work)
        train_lines, _ = inject(clean_records(args.train_records, seed=2), seed=3)
        eval_set = clean_records(args.eval_records * 3, seed=7)[::3][: args.eval_records]  # other accounts
        result["ablation"] = ablation(train_lines, args.model, args.steps, eval_set, work)
        result["medical"] = "not run: needs domains/medical synthetic reports and labeler (issue 14)"
    command = "PYTHONPATH=. python bench/data.py " + " ".join(sys.argv[1:])
    (args.out / "data.json").write_text(json.dumps(portable(result), indent=2) + "\n")
    (args.out / "data.md").write_text(markdown(result, command) + "\n")
    print(markdown(result, command))


if __name__ == "__main__":
    main()
