"""Benchmark of the data filter and augmentation: throughput per tier, memory on large files, and the ablation.

1. Throughput: 100k synthetic finance training records with seeded defects at stated rates (exact and near
   duplicates, contradictions between answer and features, unknown currency codes, mojibake, truncated JSON lines)
   go through `finmed data filter`'s code; records/s per tier, and what each tier caught against what was injected.
2. Memory: peak RSS of a fresh process running `finmed data filter`'s and `finmed data augment`'s code on files of
   increasing size up to --memory-max-mb (default 1 GB) of unique records (no two are duplicates, so the duplicate
   index holds every one of them: the worst case), so "constant memory" is shown or refuted by numbers.
3. Ablation (the reference's claim that cleaning pays): the same LoRA fine-tune (same seed, equal steps) on raw,
   filtered and filtered+augmented (kg-substitute) records, evaluated on held-out data.
   - finance: held-out accounts; level accuracy and accuracy within one level.
   - medical: seeded chest radiograph reports (domains.medical.synthetic) as stage-2 study -> impression records
     with defects at stated rates (duplicates, impressions contradicting their findings, mojibake, misspelled
     terms no vocabulary knows, truncated lines); the configs/medical-stage2.yaml LoRA on each set, exported and
     drafted through the serving engine on held-out reports of the same hospital; term accuracy (share of the
     findings the labeler finds stated in a draft that it also finds in the reference impression) and finding F1.

    PYTHONPATH=. python bench/data.py [--records 100000] [--memory-max-mb 1000] [--memory-points 4]
        [--memory-commands filter,augment] [--model default] [--ablation finance,medical] [--steps 60]
        [--train-records 400] [--eval-records 200] [--medical-reports 400] [--medical-eval 100]
        [--out bench/results] [--tmp DIR] [--tiny] [--allow-busy]

`--tiny` is the smoke profile: a tiny random model built in-process, a few hundred records, a few MB, 3 steps.
Writes OUT/data.md and OUT/data.json; every intermediate file lives in a `tempfile.mkdtemp()` folder (under --tmp)
that is removed at the end (the 1 GB memory step needs about 3.5 GB there: input, augmented output, index). Run on
quiet cores (`require_quiet`); `--allow-busy` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import portable, require_quiet  # noqa: E402

# Stated defect rates of the raw sets (share of records, drawn independently, at most one defect per record).
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
MEDICAL_DEFECTS = {
    "exact_duplicate": 0.05,  # the same report twice
    "near_duplicate": 0.03,  # the same report re-sent with another comparison line
    "contradiction": 0.08,  # the impression asserts a finding the findings negate (else never mention)
    "unknown_term": 0.05,  # a term misspelled into a word no vocabulary knows (impression, else findings)
    "mojibake": 0.03,  # "Patient's" decoded as cp1252 (Patientâ€™s) in the indication
    "truncated_json": 0.01,
}
MEDICAL_CAUGHT_BY = {
    "exact_duplicate": {"exact_duplicate", "near_duplicate"},
    "near_duplicate": {"near_duplicate", "exact_duplicate"},
    "contradiction": {"impression_contradicts_findings", "impression_unsupported"},
    "unknown_term": {"unknown_term", "impression_unsupported"},
    "truncated_json": {"bad_json"},
}
MISSPELLED = {  # each matches the medical checks' term pattern and is in no vocabulary (checked by the medical filter)
    "pneumothorax": "pneumothroax",
    "atelectasis": "atelectesis",
    "cardiomegaly": "cardiomegally",
    "effusion": "effussion",
    "consolidation": "consolidaton",
    "emphysema": "emphysemma",
    "opacity": "opacitty",
    "opacities": "opacitties",
    "pneumonia": "pneumonnia",
    "nodule": "nodulle",
    "edema": "oedemma",
    "mediastinum": "mediastinnum",
    "fracture": "fracturre",
    "pleural": "pleurral",
}
SIZES = {  # full size, and the --tiny smoke profile
    "records": (100_000, 600),
    "memory_max_mb": (1000.0, 3.0),
    "memory_points": (4, 2),
    "steps": (60, 3),
    "train_records": (400, 40),
    "eval_records": (200, 8),
    "medical_reports": (400, 40),
    "medical_eval": (100, 6),
}
FILLER = (
    "account transfer savings coffee rent groceries weekend device merchant refund online store fuel station "
    "pharmacy salary deposit utility invoice travel hotel airline restaurant market books garden music cinema "
    "insurance school parking taxi bakery florist hardware pet clinic gym subscription charity water power phone "
    "internet bank branch cash machine wallet voucher gift loyalty points bonus invoice receipt order delivery"
).split()
HOSPITAL = "st_marys"


# --- finance raw set -------------------------------------------------------------------------------------------


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
        if defect in ("exact_duplicate", "near_duplicate") and not clean:
            defect = None
        _append(lines, clean, truth, obj, defect)
    return lines, truth


def _append(lines: list[bytes], clean: list[int], truth: dict[int, str], obj: dict, defect: str | None) -> None:
    """Add one raw JSONL line (cut in half for truncated_json), noting its defect by line number or it as clean."""
    line = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    if defect == "truncated_json":
        line = line[: len(line) // 2]
    if defect:
        truth[len(lines) + 1] = defect
    else:
        clean.append(len(lines))
    lines.append(line)


def caught(rejected: Path, truth: dict[int, str], caught_by: dict[str, set[str]], repaired: int) -> dict:
    """Per injected defect: how many were injected and how many the filter dropped for a matching reason (mojibake:
    how many records it repaired); and how many records it dropped that carried no injected defect, by reason."""
    reasons = {}
    with rejected.open(encoding="utf-8") as fh:
        for row in fh:
            obj = json.loads(row)
            reasons[obj["line"]] = obj["reason"]
    out: dict[str, Any] = {}
    for defect, codes in caught_by.items():
        lines = [n for n, d in truth.items() if d == defect]
        out[defect] = {"injected": len(lines), "caught": sum(reasons.get(n) in codes for n in lines)}
    out["mojibake"] = {"injected": sum(d == "mojibake" for d in truth.values()), "repaired": repaired}
    clean_dropped: dict[str, int] = {}
    for n, reason in reasons.items():
        if n not in truth:
            clean_dropped[reason] = clean_dropped.get(reason, 0) + 1
    return {"defects": out, "dropped_without_defect": dict(sorted(clean_dropped.items()))}


def tier_rows(report: Any) -> list[dict]:
    """Records/s per tier of a FilterReport."""
    return [
        {
            "tier": t.name,
            "input": t.input,
            "dropped": t.dropped,
            "seconds": round(t.seconds, 2),
            "records_per_s": round(t.input / t.seconds) if t.seconds else None,
        }
        for t in report.tiers
    ]


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
    found = caught(result.rejected, truth, CAUGHT_BY, result.report.tiers[0].repairs.get("mojibake_repaired", 0))
    return {
        "records": result.report.tiers[0].input,
        "seconds_total": round(total, 1),
        "tiers": tier_rows(result.report),
        **found,
    }


# --- memory ----------------------------------------------------------------------------------------------------


def memory_templates(base: list[dict]) -> list[tuple[str, str, str]]:
    """Each base record as one JSON line split around two slots: a reference of filler words and the amount."""
    templates = []
    for rec in base:
        obj = json.loads(json.dumps(rec))
        user = obj["messages"][-2]
        content = re.sub(r"amount: [\d.]+", "amount: @@AMOUNT@@", user["content"], count=1)
        if "@@AMOUNT@@" not in content or "Transaction features:" not in content:
            continue
        user["content"] = content.replace("Transaction features:", "Transaction features:\nreference: @@WORDS@@", 1)
        head, rest = json.dumps(obj, ensure_ascii=False).split("@@WORDS@@")
        middle, tail = rest.split("@@AMOUNT@@")
        templates.append((head, middle, tail + "\n"))
    return templates


def memory_file(base: list[dict], target_mb: float, path: Path, seed: int) -> int:
    """Stream unique records to `path` until it holds `target_mb` MB; returns the record count.

    Each line is a base record (cycled) with its amount and a 16-word reference of filler words drawn per line:
    no check reads either, and 16 new words put two copies of one base record near Jaccard 0.5 of word 3-grams,
    far under the near-duplicate threshold, so (nearly) every record is kept and indexed. Under 1 s per 100 MB.
    """
    rng = random.Random(seed)
    templates = memory_templates(base)
    target, written, n = int(target_mb * 1e6), 0, 0
    with path.open("w", encoding="utf-8") as fh:
        while written < target:
            head, middle, tail = templates[n % len(templates)]
            line = f"{head}{' '.join(rng.choices(FILLER, k=16))}{middle}{rng.uniform(1, 9999):.2f}{tail}"
            written += len(line.encode("utf-8"))
            fh.write(line)
            n += 1
    return n


def rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident set size in MB, from /proc/self/status.

    Not `getrusage(...).ru_maxrss`: on Linux it survives exec, so a child started from a large parent (this
    benchmark holds torch) would report the parent's peak. Elsewhere it is the fallback (a peak either way).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for row in fh:
                if row.startswith(f"{field}:"):
                    return int(row.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def memory_child(command: str, path: str, out: str) -> None:
    """In a fresh process: run `command` (filter | augment) on `path`, print peak RSS (MB) and counts as JSON."""
    from core.data.augment import AugmentOptions, run_augment
    from core.data.cli import domain_checks
    from core.data.filter import FilterOptions, run_filter

    checks = domain_checks("finance")
    imported = rss_mb("VmRSS")
    started = time.perf_counter()
    if command == "filter":
        result = run_filter(
            Path(path), Path(out) / "m.jsonl", Path(out) / "m.json", checks=checks, domain="finance",
            options=FilterOptions(),
        )  # fmt: skip
        counts = {"records": result.report.tiers[0].input, "kept": result.report.tiers[-1].passed}
    else:
        done = run_augment(
            Path(path), Path(out) / "m.jsonl", Path(out) / "m.json", checks=checks, domain="finance",
            options=AugmentOptions(method="kg-substitute"), translate=None,
        )  # fmt: skip
        counts = {"records": done.originals, "kept": done.kept, "variants": done.generated}
    seconds = time.perf_counter() - started
    print(json.dumps({"rss_after_import_mb": imported, "peak_rss_mb": rss_mb(), "seconds": seconds, **counts}))


def memory(base: list[dict], sizes_mb: list[float], commands: list[str], work: Path) -> list[dict]:
    """Peak RSS of a fresh process per command and file size; each file is removed once measured."""
    rows = []
    for mb in sizes_mb:
        path = work / f"big-{mb:g}mb.jsonl"
        n = memory_file(base, mb, path, seed=int(mb * 1000))
        size = path.stat().st_size / 1e6
        for command in commands:
            child = subprocess.run(
                [sys.executable, __file__, "--memory-child", command, str(path), "--out", str(work)],
                capture_output=True,
                text=True,
            )
            if child.returncode:
                raise RuntimeError(f"memory child ({command}, {size:.0f} MB) failed:\n{child.stderr[-3000:]}")
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            row = {"command": command, "records": n, "file_mb": round(size, 1)}
            row.update({k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()})
            rows.append(row)
            print(f"memory: {command} {size:.0f} MB, {n} records: peak RSS {row['peak_rss_mb']} MB", flush=True)
            for name in ("m.jsonl", "m.json", "rejected.jsonl", "augment-rejected.jsonl"):
                (work / name).unlink(missing_ok=True)
        path.unlink()
    return rows


def memory_sizes(max_mb: float, points: int) -> list[float]:
    """`points` sizes doubling up to `max_mb` (e.g. 125, 250, 500, 1000)."""
    return [round(max_mb / 2**i, 3) for i in range(points - 1, -1, -1)]


# --- ablations -------------------------------------------------------------------------------------------------


def parseable(lines: list[bytes], path: Path) -> Path:
    """The raw training file: every line that parses (the trainer cannot read broken lines; it reads the rest)."""
    with path.open("wb") as fh:
        for line in lines:
            try:
                json.loads(line)
            except json.JSONDecodeError:
                continue
            fh.write(line + b"\n")
    return path


def filter_and_augment(raw: Path, domain: str, work: Path) -> tuple[Any, Path]:
    """(filter result, augmented file): the raw file through `finmed data filter` and `data augment --method
    kg-substitute`'s code."""
    from core.data.augment import AugmentOptions, run_augment
    from core.data.cli import domain_checks
    from core.data.filter import FilterOptions, run_filter

    checks = domain_checks(domain)
    filtered = run_filter(
        raw,
        work / f"{domain}-filtered.jsonl",
        work / f"{domain}-report.json",
        checks=checks,
        domain=domain,
        options=FilterOptions(),
    )
    augmented = work / f"{domain}-augmented.jsonl"
    run_augment(
        filtered.output,
        augmented,
        work / f"{domain}-aug.json",
        checks=checks,
        domain=domain,
        options=AugmentOptions(method="kg-substitute"),
        translate=None,
    )
    return filtered, augmented


def run_steps(run: Path) -> dict:
    """Optimizer steps and training examples of a finished run (its eval.json)."""
    report = json.loads((run / "eval.json").read_text())
    return {"steps": report["steps"], "train_examples": report["train_examples"]}


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
            # epochs high enough that max_steps ends every run: equal steps whatever the set's size
            "train": {
                "seed": 42,
                "max_steps": steps,
                "epochs": 1000,
                "batch_size": 8,
                "lr": 5e-4,
                "save_steps": 10_000,
            },
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
    return {
        "records": sum(1 for _ in data.open()),
        **run_steps(run),
        "level_accuracy": round(exact, 3),
        "within_one": round(within, 3),
    }


def ablation(raw_lines: list[bytes], model: str, steps: int, eval_set: list[dict], work: Path) -> dict:
    """The finance ablation: raw, filtered and filtered+augmented records, each fine-tuned and evaluated."""
    raw = parseable(raw_lines, work / "finance-raw.jsonl")
    filtered, augmented = filter_and_augment(raw, "finance", work)
    return {
        name: train_and_eval(f"finance-{name.replace('+', '-')}", path, model, steps, eval_set, work)
        for name, path in (("raw", raw), ("filtered", filtered.output), ("filtered+augmented", augmented))
    }


def medical_reports(n: int, *, seed: int) -> list[tuple[Any, dict[str, str]]]:
    """(parsed report, the labels it was written to state) for `n` seeded synthetic reports with an impression."""
    from domains.medical.ingest import report_from_text
    from domains.medical.synthetic import generate

    out = []
    for s in generate(n, hospital=HOSPITAL, seed=seed):
        report = report_from_text(s.text, report_id=s.report_id, hospital=s.hospital)
        if report.trainable:
            out.append((report, s.truth))
    return out


def _misspell(text: str, rng: random.Random) -> str | None:
    found = [t for t in MISSPELLED if re.search(rf"\b{t}\b", text, re.I)]
    if not found:
        return None
    term = rng.choice(sorted(found))

    def repl(m: re.Match[str]) -> str:
        wrong = MISSPELLED[term]
        return wrong[:1].upper() + wrong[1:] if m.group(0)[:1].isupper() else wrong

    return re.sub(rf"\b{term}\b", repl, text, count=1, flags=re.I)


def _contradict(impression: str, truth: dict[str, str], normal: str, rng: random.Random) -> str:
    from domains.medical.synthetic import PRESENT

    negated = sorted(f for f, s in truth.items() if s == "absent" and f in PRESENT)
    unmentioned = sorted(f for f in PRESENT if f not in truth and f != "lung_opacity")
    finding = rng.choice(negated or unmentioned)
    phrase = PRESENT[finding][1].replace("{side}", rng.choice(("right", "left")))
    phrase = phrase[0].upper() + phrase[1:] + "."
    return phrase if impression.strip() == normal else f"{impression.rstrip()} {phrase}"


def inject_medical(records: list[dict], truths: list[dict[str, str]], seed: int) -> tuple[list[bytes], dict[int, str]]:
    """Raw JSONL lines of stage-2 records with defects at MEDICAL_DEFECTS rates; lines and {line number: defect}."""
    from domains.medical.synthetic import COMPARISONS, STYLES

    rng = random.Random(seed)
    normal = STYLES[HOSPITAL].normal_impression
    lines: list[bytes] = []
    truth: dict[int, str] = {}
    clean: list[int] = []
    kinds, weights = list(MEDICAL_DEFECTS), list(MEDICAL_DEFECTS.values())
    for rec, labels in zip(records, truths, strict=True):
        defect = rng.choices([*kinds, None], weights=[*weights, 1 - sum(weights)])[0]
        obj = json.loads(json.dumps(rec))
        user, answer = obj["messages"][-2], obj["messages"][-1]
        if defect in ("exact_duplicate", "near_duplicate"):
            if not clean:
                defect = None
            else:
                obj = json.loads(lines[clean[rng.randrange(len(clean))]])
                if defect == "near_duplicate":
                    content = obj["messages"][-2]["content"]
                    current = re.search(r"COMPARISON: (.*)", content)
                    if current:
                        other = rng.choice([c for c in COMPARISONS if c != current.group(1)])
                        obj["messages"][-2]["content"] = content.replace(current.group(0), f"COMPARISON: {other}", 1)
        elif defect == "contradiction":
            answer["content"] = _contradict(answer["content"], labels, normal, rng)
        elif defect == "unknown_term":
            wrong = _misspell(answer["content"], rng)
            if wrong is not None:
                answer["content"] = wrong
            else:
                wrong = _misspell(user["content"].split("FINDINGS:", 1)[-1], rng)
                if wrong is None:
                    defect = None
                else:
                    head = user["content"].split("FINDINGS:", 1)[0]
                    user["content"] = f"{head}FINDINGS:{wrong}"
        elif defect == "mojibake":
            user["content"] = re.sub(
                r"INDICATION: (.)", lambda m: f"INDICATION: Patientâ€™s {m.group(1).lower()}", user["content"], count=1
            )
        _append(lines, clean, truth, obj, defect)
    return lines, truth


def term_accuracy(predicted: list[dict[str, str]], reference: list[dict[str, str]]) -> tuple[float, int]:
    """(share of findings stated in the drafts that the reference states too, findings stated), pooled; stated =
    labelled present or uncertain (no_finding included, so a normal study's "no acute process" counts)."""
    from domains.medical.agreement import POSITIVE

    stated = hit = 0
    for pred, ref in zip(predicted, reference, strict=True):
        for finding, state in pred.items():
            if state in POSITIVE:
                stated += 1
                hit += ref.get(finding) in POSITIVE
    return (hit / stated if stated else 0.0), stated


def medical_train_and_eval(
    name: str, data: Path, model: str, steps: int, test: list, work: Path, *, tiny: bool
) -> dict:
    """configs/medical-stage2.yaml's LoRA on `data`, exported at int8 and drafted through the serving engine."""
    from core.finetune.run import run_training
    from domains.medical.backtest import variant_metrics
    from domains.medical.drafting import InProcessEngine, draft_reports
    from domains.medical.exports import RECOMMENDED_PRECISION, export_folder
    from domains.medical.labeler import label_report
    from domains.medical.training import medical_config, quick_overrides

    overrides = [
        f"model.base={model}",
        f"dataset.path={data}",
        f"output.dir={work / 'runs'}",
        f"output.name=medical-{name}",
        "output.overwrite=true",
        "train.seed=42",
        "train.epochs=1000",
        *(quick_overrides(steps) if tiny else []),
        f"train.max_steps={steps}",
    ]
    run = run_training(medical_config("medical-stage2.yaml", overrides), show_progress=False)
    folder = export_folder(work / "exports" / f"medical-{name}", run_dir=run, precision=RECOMMENDED_PRECISION)
    engine = InProcessEngine(folder, name=f"data-{name}", max_batch_size=4)
    try:
        drafts = draft_reports(engine, test, concurrency=4)
    finally:
        engine.close()
    shutil.rmtree(folder, ignore_errors=True)
    metrics = variant_metrics(drafts, test)
    accuracy, stated = term_accuracy([d.labels for d in drafts], [label_report(r.impression) for r in test])
    return {
        "records": sum(1 for _ in data.open()),
        **run_steps(run),
        "precision": RECOMMENDED_PRECISION,
        "term_accuracy": round(accuracy, 3),
        "findings_stated": stated,
        "finding_f1_micro": round(metrics["finding_f1_micro"], 3),
        "finding_f1_macro": round(metrics["finding_f1_macro"], 3),
        "rouge_l": round(metrics["rouge_l"], 3),
        "example": {"reference": test[0].impression, "draft": drafts[0].text} if drafts else {},
    }


def medical_ablation(model: str, steps: int, n_train: int, n_eval: int, work: Path, *, tiny: bool) -> dict:
    """The medical ablation (module docstring, 3): raw set, filter, augment, three fine-tunes, drafts, scores."""
    from domains.medical.training import stage2_records

    train = medical_reports(n_train, seed=21)
    test = [r for r, _ in medical_reports(n_eval, seed=22)]  # held out: other reports of the same hospital
    records = stage2_records([r for r, _ in train], hospital=HOSPITAL)
    lines, truth = inject_medical(records, [t for _, t in train], seed=23)
    raw = parseable(lines, work / "medical-raw.jsonl")
    filtered, augmented = filter_and_augment(raw, "medical", work)
    # line numbers of the raw file differ from the injected lines where truncated ones were left out: recount
    kept = [n for n, line in enumerate(lines, start=1) if truth.get(n) != "truncated_json"]
    raw_truth = {i: truth[n] for i, n in enumerate(kept, start=1) if n in truth}
    found = caught(
        filtered.rejected, raw_truth, MEDICAL_CAUGHT_BY, filtered.report.tiers[0].repairs.get("mojibake_repaired", 0)
    )
    found["defects"]["truncated_json"] = {
        "injected": sum(d == "truncated_json" for d in truth.values()),
        "caught": "left out of every set (not JSON)",
    }
    runs = {
        name: medical_train_and_eval(name.replace("+", "-"), path, model, steps, test, work, tiny=tiny)
        for name, path in (("raw", raw), ("filtered", filtered.output), ("filtered+augmented", augmented))
    }
    return {
        "train_reports": len(train),
        "test_reports": len(test),
        "tiers": tier_rows(filtered.report),
        **found,
        "runs": runs,
    }


# --- report ----------------------------------------------------------------------------------------------------


def _defect_table(found: dict) -> list[str]:
    out = ["| injected defect | injected | caught / repaired |", "| --- | --- | --- |"]
    for k, v in found["defects"].items():
        out.append(f"| {k} | {v['injected']} | {v.get('caught', v.get('repaired'))} |")
    dropped = ", ".join(f"{k} {v}" for k, v in found["dropped_without_defect"].items()) or "none"
    return [*out, f"\nRecords dropped without an injected defect: {dropped}\n"]


def _tier_table(tiers: list[dict]) -> list[str]:
    out = ["| tier | input | dropped | seconds | records/s |", "| --- | --- | --- | --- | --- |"]
    return out + [
        f"| {t['tier']} | {t['input']} | {t['dropped']} | {t['seconds']} | {t['records_per_s']} |" for t in tiers
    ]


def markdown(result: dict, command: str) -> str:
    out = [
        f"# Data filter and augmentation\n\n`{command}`\n\n{result['machine']}\n",
        "## Filter throughput (finance)\n",
    ]
    rates = ", ".join(f"{k} {v:.0%}" for k, v in DEFECTS.items())
    out += [
        f"{result['throughput']['records']} records; defect rates: {rates}\n",
        *_tier_table(result["throughput"]["tiers"]),
        "",
    ]
    out += _defect_table(result["throughput"])
    out += [
        "## Memory (fresh process per command and file; unique records, finance checks)\n",
        "| command | records | kept | file MB | peak RSS MB | RSS after imports MB | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in result["memory"]:
        out.append(
            f"| {m['command']} | {m['records']} | {m['kept']} | {m['file_mb']} | {m['peak_rss_mb']} | "
            f"{m['rss_after_import_mb']} | {m['seconds']} |"
        )
    for command, line in result.get("memory_growth", {}).items():
        out.append(f"\n{command}: {line}.")
    if "finance" in result["ablation"]:
        out += [
            "",
            f"## Ablation: finance (model {result['model']}, {result['steps']} steps, seed 42)\n",
            "| training set | records | steps | level accuracy | within one level |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, a in result["ablation"]["finance"].items():
            out.append(f"| {name} | {a['records']} | {a['steps']} | {a['level_accuracy']} | {a['within_one']} |")
    if "medical" in result["ablation"]:
        med = result["ablation"]["medical"]
        rates = ", ".join(f"{k} {v:.0%}" for k, v in MEDICAL_DEFECTS.items())
        out += [
            "",
            f"## Ablation: medical (model {result['model']}, {result['steps']} steps, seed 42)\n",
            f"{med['train_reports']} synthetic {HOSPITAL} reports as stage-2 records; defect rates: {rates}. "
            f"Drafts for {med['test_reports']} held-out reports through the serving engine "
            f"(int8 export, in-process ServingState).\n",
            *_defect_table(med),
            *_tier_table(med["tiers"]),
            "",
            "| training set | records | steps | term accuracy | findings stated | finding F1 micro | "
            "finding F1 macro | ROUGE-L |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, a in med["runs"].items():
            out.append(
                f"| {name} | {a['records']} | {a['steps']} | {a['term_accuracy']} | {a['findings_stated']} | "
                f"{a['finding_f1_micro']} | {a['finding_f1_macro']} | {a['rouge_l']} |"
            )
        out.append(
            "\nTerm accuracy: share of the findings the labeler finds stated (present or uncertain) in a draft "
            "that it also finds stated in the reference impression, pooled over drafts."
        )
    return "\n".join(out) + "\n"


def growth(rows: list[dict]) -> dict[str, str]:
    """Per command: peak RSS of the smallest and largest file, the change, and the change per 100 MB of input."""
    out = {}
    for command in dict.fromkeys(r["command"] for r in rows):
        mine = [r for r in rows if r["command"] == command]
        if len(mine) >= 2 and mine[-1]["file_mb"] > mine[0]["file_mb"]:
            first, last = mine[0], mine[-1]
            rise = last["peak_rss_mb"] - first["peak_rss_mb"]
            per = 100 * rise / (last["file_mb"] - first["file_mb"])
            out[command] = (
                f"peak RSS {first['peak_rss_mb']} MB at {first['file_mb']} MB of input, {last['peak_rss_mb']} MB at "
                f"{last['file_mb']} MB ({rise:+.1f} MB, {per:+.2f} MB per 100 MB of input)"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="smoke profile: tiny in-process model, small sizes")
    parser.add_argument("--records", type=int, help="raw records for the throughput run (100000; tiny 600)")
    parser.add_argument("--memory-max-mb", type=float, help="largest memory-run file in MB (1000; tiny 3)")
    parser.add_argument("--memory-points", type=int, help="memory-run files, sizes doubling up to the largest (4)")
    parser.add_argument("--memory-commands", default="filter,augment", help="commands the memory run measures")
    parser.add_argument("--model", default="default", help="'default', or a model folder (--tiny builds one)")
    parser.add_argument("--ablation", default="finance,medical", help="ablations to run: finance, medical or both")
    parser.add_argument("--steps", type=int, help="optimizer steps of each ablation run (60; tiny 3)")
    parser.add_argument("--train-records", type=int, help="finance raw training records (400; tiny 40)")
    parser.add_argument("--eval-records", type=int, help="finance held-out records (200; tiny 8)")
    parser.add_argument("--medical-reports", type=int, help="medical raw training reports (400; tiny 40)")
    parser.add_argument("--medical-eval", type=int, help="medical held-out reports drafted (100; tiny 6)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--tmp", type=Path, default=None, help="parent of the temporary work folder (system default)")
    parser.add_argument("--allow-busy", action="store_true")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child, str(args.out))
        return
    for name, (full, tiny) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else full)
    ablations = [a for a in args.ablation.split(",") if a]
    if unknown := set(ablations) - {"finance", "medical"}:
        parser.error(f"--ablation: unknown {', '.join(sorted(unknown))}; use finance, medical or both")
    commands = [c for c in args.memory_commands.split(",") if c]
    if unknown := set(commands) - {"filter", "augment"}:
        parser.error(f"--memory-commands: unknown {', '.join(sorted(unknown))}; use filter, augment or both")
    if args.memory_points < 1 or args.memory_max_mb <= 0:
        parser.error("--memory-points must be at least 1 and --memory-max-mb positive")
    machine = require_quiet(allow_busy=args.allow_busy)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="finmed-bench-data-", dir=args.tmp))
    started = time.perf_counter()
    try:
        model = args.model
        if args.tiny and model == "default":
            from core.models.tiny import save_tiny_model

            model = str(save_tiny_model(work / "tiny-model"))
        result: dict[str, Any] = {
            "machine": machine,
            "model": "tiny" if model != args.model else model,
            "steps": args.steps,
            "defect_rates": DEFECTS,
            "medical_defect_rates": MEDICAL_DEFECTS,
        }
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
        print(f"throughput: {len(lines)} records", flush=True)
        result["throughput"] = throughput(raw, truth, work)
        raw.unlink()
        result["memory"] = memory(base[:5000], memory_sizes(args.memory_max_mb, args.memory_points), commands, work)
        result["memory_growth"] = growth(result["memory"])
        result["ablation"] = {}
        if "finance" in ablations:
            print("ablation: finance", flush=True)
            train_lines, _ = inject(clean_records(args.train_records, seed=2), seed=3)
            eval_set = clean_records(args.eval_records * 3, seed=7)[::3][: args.eval_records]  # other accounts
            result["ablation"]["finance"] = ablation(train_lines, model, args.steps, eval_set, work)
        if "medical" in ablations:
            print("ablation: medical", flush=True)
            result["ablation"]["medical"] = medical_ablation(
                model, args.steps, args.medical_reports, args.medical_eval, work, tiny=args.tiny
            )
        result["seconds"] = round(time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "PYTHONPATH=. python bench/data.py " + " ".join(sys.argv[1:])
    (args.out / "data.json").write_text(json.dumps(portable(result), indent=2) + "\n")
    (args.out / "data.md").write_text(markdown(result, command))
    print(markdown(result, command))


if __name__ == "__main__":
    main()
