"""Medical benchmark: the labeler against labelled synthetic sentences, the two-stage backtest on held-out reports of
a hospital style the adapters were not tuned on, and drafting latency through the serving engine at int4 and int8,
concurrency 1 and 4.

Run: PYTHONPATH=$PWD python bench/medical.py [--reports 400] [--max-steps 60] [--base default]
         [--train-style st_marys] [--test-style lakeside] [--work var/bench-medical] [--out bench/results]
         [--latency-studies 40] [--allow-busy]
Prints comparison tables and writes OUT/medical.json and OUT/medical.md.

Labeler truth: every synthetic sentence is written from a template whose findings and statuses are known
(domains.medical.synthetic), so it is labelled by construction, sentence by sentence.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.common import portable, require_quiet
from domains.medical.backtest import VARIANT_KEYS, VARIANTS, run_backtest
from domains.medical.drafting import InProcessEngine, draft_reports
from domains.medical.exports import export_folder
from domains.medical.ingest import Ingested, read_reports
from domains.medical.labeler import FINDINGS, label_report
from domains.medical.synthetic import HOSPITALS, generate, write_folder
from domains.medical.training import quick_overrides


def labeler_scores(n_per_style: int = 150) -> dict[str, dict[str, float | int]]:
    """Per finding: precision and recall of (finding, status) on synthetic sentences of every style."""
    tp, fp, fn = Counter(), Counter(), Counter()
    for style in HOSPITALS:
        for report in generate(n_per_style, hospital=style, seed=11):
            for sentence, truth in report.sentences:
                got = label_report(sentence)
                for f in set(truth) | set(got):
                    if f in truth and got.get(f) == truth[f]:
                        tp[f] += 1
                    else:
                        fp[f] += f in got
                        fn[f] += f in truth
    out = {}
    for f in FINDINGS:
        if tp[f] + fp[f] + fn[f]:
            out[f] = {"support": tp[f] + fn[f], "precision": tp[f] / (tp[f] + fp[f]) if tp[f] + fp[f] else 0.0,
                      "recall": tp[f] / (tp[f] + fn[f]) if tp[f] + fn[f] else 0.0}  # fmt: skip
    return out


def latency(folder: Path, studies: list, concurrency: int) -> dict[str, float]:
    """p50/p95 end-to-end draft latency (ms) through ServingState at `concurrency`, and drafts per second."""
    engine = InProcessEngine(folder, name="medical-bench", max_batch_size=max(1, concurrency))
    try:
        draft_reports(engine, studies[:2], concurrency=1)  # warm-up
        start = time.perf_counter()
        drafts = draft_reports(engine, studies, concurrency=concurrency)
        wall = time.perf_counter() - start
    finally:
        engine.close()
    ms = [d.latency_ms for d in drafts]
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "drafts_per_s": len(drafts) / wall}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=400, help="Usable reports in the backtest (80%% train).")
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--base", default="default")
    parser.add_argument("--train-style", default="st_marys", choices=HOSPITALS)
    parser.add_argument("--test-style", default="lakeside", choices=HOSPITALS)
    parser.add_argument("--work", type=Path, default=Path("var/bench-medical"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--latency-studies", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="Quick profile (tiny bases): short examples, all layers.")
    parser.add_argument("--allow-busy", action="store_true")
    args = parser.parse_args()
    machine = require_quiet(allow_busy=args.allow_busy)
    print(machine)

    started = time.perf_counter()
    labels = labeler_scores()
    print("\nLabeler on labelled synthetic sentences (all styles)")
    print("| finding | support | precision | recall |\n|---|---|---|---|")
    rows = [f"| {f} | {m['support']} | {m['precision']:.3f} | {m['recall']:.3f} |" for f, m in labels.items()]
    print("\n".join(rows))

    n_test = args.reports - int(round(args.reports * 0.8))
    train = generate(args.reports - n_test, hospital=args.train_style, seed=1)
    test = generate(n_test, hospital=args.test_style, seed=2)
    folder = args.work / "reports"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    for i, r in enumerate(train + test):  # report order = file name order: train style first, held-out style last
        r.report_id = f"{i:05d}-{r.hospital}"
    write_folder(train + test, folder)
    ingested: Ingested = read_reports(folder, hospital=args.train_style)
    overrides = [f"train.max_steps={args.max_steps}"] + (quick_overrides(args.max_steps) if args.quick else [])
    result = run_backtest(ingested, args.work / "backtest", base=args.base, data_dir=args.work / "data",
                          hospital=args.train_style, overrides=overrides, say=print)  # fmt: skip
    m = result.metrics
    print(f"\nBacktest: stage 2 on {m['n_train']} {args.train_style} reports, drafts for {m['n_test']} "
          f"{args.test_style} reports (a style the adapters never saw), int8 through ServingState")  # fmt: skip
    print("| variant | " + " | ".join(VARIANT_KEYS) + " |\n" + "|---" * (len(VARIANT_KEYS) + 1) + "|")
    table = [f"| {v} | " + " | ".join(f"{m[v][k]:.3f}" for k in VARIANT_KEYS) + " |" for v in VARIANTS]
    print("\n".join(table))

    run = next((args.work / "backtest" / "runs" / "two_stage").glob("medical-*"))
    studies = test[: args.latency_studies]
    studies = [r for r in read_reports(folder).reports if r.report_id in {s.report_id for s in studies}]
    speed: dict[str, dict[str, dict[str, float]]] = {}
    for precision in ("int4", "int8"):
        exported = export_folder(args.work / "exports" / f"two_stage-{precision}", run_dir=run, precision=precision)
        speed[precision] = {f"c{c}": latency(exported, studies, c) for c in (1, 4)}
    print("\nDraft latency, two_stage export, in-process ServingState (batcher, limits, metrics)")
    print("| precision | concurrency | p50 ms | p95 ms | drafts/s |\n|---|---|---|---|---|")
    lat = [f"| {p} | {c[1:]} | {s['p50_ms']:.0f} | {s['p95_ms']:.0f} | {s['drafts_per_s']:.2f} |"
           for p, by in speed.items() for c, s in by.items()]  # fmt: skip
    print("\n".join(lat))
    goals = {
        "two_stage > stage2 > base on finding F1 micro": m["two_stage"]["finding_f1_micro"]
        > m["stage2"]["finding_f1_micro"] > m["base"]["finding_f1_micro"],
        "two_stage > stage2 > base on agreement": m["two_stage"]["agreement"] > m["stage2"]["agreement"]
        > m["base"]["agreement"],
        "p95 < 800 ms at concurrency 1 (int4)": speed["int4"]["c1"]["p95_ms"] < 800,
    }  # fmt: skip
    print("\nGoals\n" + "\n".join(f"- {k}: {'met' if v else 'NOT met'}" for k, v in goals.items()))
    seconds = time.perf_counter() - started
    command = (f"PYTHONPATH=$PWD python bench/medical.py --reports {args.reports} --max-steps {args.max_steps} "
               f"--base {args.base} --train-style {args.train_style} --test-style {args.test_style}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine, "command": command, "seconds": seconds, "labeler": labels, "backtest": m,
               "latency": speed, "goals": goals}  # fmt: skip
    (args.out / "medical.json").write_text(json.dumps(portable(payload), indent=2))
    md = ["# Medical benchmark", "", f"Command: `{command}`", "", f"Machine: {machine}", "", f"Took {seconds:.0f} s.",
          "", "## Labeler (labelled synthetic sentences)", "", "| finding | support | precision | recall |",
          "|---|---|---|---|", *rows, "", "## Backtest", "",
          f"Stage 2 on {m['n_train']} {args.train_style} reports; drafts for {m['n_test']} {args.test_style} reports.",
          "", "| variant | " + " | ".join(VARIANT_KEYS) + " |", "|---" * (len(VARIANT_KEYS) + 1) + "|", *table, "",
          "## Draft latency", "", "| precision | concurrency | p50 ms | p95 ms | drafts/s |", "|---|---|---|---|---|",
          *lat, "", "## Goals", "", *(f"- {k}: {'met' if v else 'NOT met'}" for k, v in goals.items()), ""]  # fmt: skip
    (args.out / "medical.md").write_text("\n".join(md))
    print(f"\nwrote {args.out / 'medical.md'} and medical.json ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
