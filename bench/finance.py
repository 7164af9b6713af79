"""Finance benchmark: feature throughput, numeric vs LLM vs fused backtest with the fine-tuned finance adapter,
cascade throughput with the adapter exported to int4 (and other precisions) against fp32 in-process, and few-shot
adaptation before/after.

Run: PYTHONPATH=$PWD python bench/finance.py [--rows 1000000] [--accounts 600] [--budget 160] [--records 256]
         [--new-accounts 150] [--work var/bench-finance] [--skip-features] [--skip-int4] [--skip-adapt]
         [--adapter RUN]   (reuse a finance adapter run instead of training one in the backtest)
         [--precisions int4,int8]   (exports measured in the cascade)
Prints comparison tables (every ratio measured within the one run) and writes bench/results/finance.json; the .md
beside it is written from the printed tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import portable, require_quiet
from domains.finance.adaptation import adapt
from domains.finance.backtest import run_backtest
from domains.finance.features import compute_features
from domains.finance.llm import LocalLLM, OnnxLLM, RiskLLM
from domains.finance.pipeline import CascadePolicy, score_frame
from domains.finance.synthetic import generate, generate_new_scheme

OUT = Path(__file__).parent / "results" / "finance.json"


def feature_throughput(rows: int) -> dict[str, float]:
    """Generate about `rows` transactions and time the causal features on them."""
    accounts = max(10, int(rows / 98))  # ~98 rows per account at the default 60 days
    start = time.perf_counter()
    frame = generate(accounts, seed=0)
    synth_s = time.perf_counter() - start
    start = time.perf_counter()
    compute_features(frame)
    feat_s = time.perf_counter() - start
    return {"rows": len(frame), "synth_s": synth_s, "features_s": feat_s, "features_tx_per_s": len(frame) / feat_s}


def prefix_speed(adapter: Path | None, n: int = 64) -> dict[str, float]:
    """Seconds for LocalLLM.level_probs on `n` risk prompts: shared prefix run once vs every prompt in full."""
    from domains.finance.features import reasons_for, with_features
    from domains.finance.pipeline import prompts_for

    frame = generate(100, seed=3, days=20)
    feats = compute_features(frame)
    rows = np.linspace(0, len(frame) - 1, n).astype(int)
    llm = LocalLLM(adapter=adapter)
    prompts = prompts_for(with_features(frame, feats, rows), reasons_for(feats.iloc[rows]), llm, None, CascadePolicy())
    ids = llm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    llm.level_probs(prompts[:8])  # warm-up
    start = time.perf_counter()
    shared = llm.level_probs(prompts)
    shared_s = time.perf_counter() - start
    start = time.perf_counter()
    full = llm.level_probs_full(prompts, ids)
    full_s = time.perf_counter() - start
    out = {
        "prompts": n,
        "mean_tokens": float(np.mean([len(i) for i in ids])),
        "shared_s": shared_s,
        "full_s": full_s,
        "full_over_shared": full_s / shared_s,
        "max_abs_diff": float(np.abs(shared - full).max()),
    }
    print(
        "| prompts | mean tokens | shared prefix s | full s | full / shared | max prob diff |\n"
        "|---|---|---|---|---|---|"
    )
    print(
        f"| {n} | {out['mean_tokens']:.0f} | {shared_s:.1f} | {full_s:.1f} | {out['full_over_shared']:.2f} | "
        f"{out['max_abs_diff']:.1e} |"
    )
    return out


def _fmt(x: object) -> str:
    return "n/a" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def cascade_run(frame, feats, numeric, llm: RiskLLM | None, budget: int) -> tuple[float, object]:  # noqa: ANN001
    start = time.perf_counter()
    scored = score_frame(frame, numeric, llm=llm, policy=CascadePolicy(budget=budget, k_examples=0), features=feats)
    return time.perf_counter() - start, scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the feature throughput run")
    parser.add_argument("--accounts", type=int, default=600, help="accounts of the backtest history")
    parser.add_argument("--budget", type=int, default=160, help="LLM adjudications in the backtest and cascade")
    parser.add_argument("--records", type=int, default=256, help="finance adapter training records")
    parser.add_argument("--new-accounts", type=int, default=150, help="accounts of the new-scheme set")
    parser.add_argument("--work", type=Path, default=Path("var/bench-finance"), help="runs and exports go here")
    parser.add_argument("--skip-features", action="store_true")
    parser.add_argument("--skip-int4", action="store_true")
    parser.add_argument("--skip-adapt", action="store_true")
    parser.add_argument(
        "--prefix-only", action="store_true", help="only time the LLM scoring pass, shared prefix vs full prompts"
    )
    parser.add_argument("--adapter", type=Path, default=None, help="reuse this finance adapter run (no training)")
    parser.add_argument("--json", type=Path, default=OUT, help="where the raw results go")
    parser.add_argument("--precisions", default="int4", help="comma-separated export precisions for the cascade")
    parser.add_argument("--allow-busy", action="store_true", help="run even when the load average is 1 or more")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {
        "machine": require_quiet(allow_busy=args.allow_busy),
        "args": portable(vars(args)),
    }
    print(results["machine"])

    if args.prefix_only:
        results["prefix"] = prefix_speed(args.adapter)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(portable(results), indent=2, default=str))
        return
    if not args.skip_features:
        feat = feature_throughput(args.rows)
        results["features"] = feat
        print("| rows | synth s | features s | features tx/s |\n|---|---|---|---|")
        print(
            f"| {feat['rows']} | {feat['synth_s']:.1f} | {feat['features_s']:.1f} | {feat['features_tx_per_s']:.0f} |"
        )

    # Backtest: numeric + finance adapter trained on the earliest 70% only, scored on the latest 30%.
    frame = generate(args.accounts, seed=7)
    y = frame["is_fraud"].to_numpy()
    start = time.perf_counter()
    bt = run_backtest(
        frame,
        y,
        llm=LocalLLM(adapter=args.adapter) if args.adapter else None,
        policy=CascadePolicy(budget=args.budget, k_examples=0),
        finetune_dir=None if args.adapter else args.work / "adapter",
        finetune_records=args.records,
    )
    m = bt.metrics
    results["backtest"] = {**m, "seconds": time.perf_counter() - start, "accounts": args.accounts}
    print(f"\nbacktest: {len(frame)} rows, n_train {m['n_train']}, n_test {m['n_test']}, llm_scored {m['llm_scored']}")
    print("| variant | AUC | AP | precision | recall | FPR | threshold |\n|---|---|---|---|---|---|---|")
    for name in ("numeric", "llm", "fused"):
        v = m[name]
        cells = [v[k] for k in ("auc", "average_precision", "precision", "recall", "fpr", "threshold")]  # type: ignore[index]
        print(f"| {name} | " + " | ".join(_fmt(x) for x in cells) + " |")
    ap = {k: m[k]["average_precision"] for k in ("numeric", "llm", "fused")}  # type: ignore[index]
    beats = ap["fused"] is not None and all(
        ap["fused"] > (ap[k] if ap[k] is not None else -1) for k in ("numeric", "llm")
    )
    results["fused_beats_both_on_ap"] = bool(beats)
    print(f"fused beats both single variants on average precision: {'yes' if beats else 'NO'}")
    run = args.adapter or bt.adapter_run
    assert run is not None and bt.numeric is not None and bt.test_rows is not None
    test = frame.iloc[bt.test_rows].reset_index(drop=True)
    test_feats = compute_features(frame).iloc[bt.test_rows].reset_index(drop=True)

    if not args.skip_int4:
        from core.quantize.export import export_model
        from core.quantize.precisions import ExportOptions

        exports = {}
        for precision in args.precisions.split(","):
            exports[f"{precision} ONNX"] = args.work / f"finance-{precision}"
            export_model(
                options=ExportOptions(precision=precision),
                out_dir=exports[f"{precision} ONNX"],
                run_dir=run,
                overwrite=True,
            )
        rows: dict[str, dict[str, float]] = {}
        levels = {}
        variants: list[tuple[str, RiskLLM | None]] = [
            ("numeric only", None),
            ("fp32 in-process", LocalLLM(adapter=run)),
        ]
        variants += [(name, OnnxLLM(folder)) for name, folder in exports.items()]
        for name, llm in variants:
            seconds, scored = cascade_run(test, test_feats, bt.numeric, llm, args.budget)
            calls = int(scored["adjudicated"].sum())  # type: ignore[index]
            rows[name] = {
                "seconds": seconds,
                "tx_per_s": len(test) / seconds,
                "llm_calls": calls,
                "parsed": int(scored["parse_ok"].fillna(False).astype(bool).sum()),  # type: ignore[index]
            }
            levels[name] = scored["llm_score"].to_numpy()  # type: ignore[index]
        base = rows["numeric only"]["seconds"]
        for name in rows:
            if name != "numeric only":
                rows[name]["s_per_call"] = (rows[name]["seconds"] - base) / max(rows[name]["llm_calls"], 1)
        agree = {}
        for name in exports:  # share of rows both parsed whose LLM scores are within 0.1 of fp32's
            both = ~np.isnan(levels["fp32 in-process"]) & ~np.isnan(levels[name])
            agree[name] = (
                float(np.mean(np.abs(levels["fp32 in-process"][both] - levels[name][both]) <= 0.1))
                if both.any()
                else None
            )
        results["cascade"] = {"rows": len(test), "budget": args.budget, "variants": rows, "score_agreement": agree}
        print(f"\ncascade on the {len(test)} test rows, LLM budget {args.budget}")
        print(
            "| LLM | seconds | tx/s | LLM calls | parsed | s per LLM call | time per call / fp32 | "
            "scores within 0.1 of fp32 |\n|---|---|---|---|---|---|---|---|"
        )
        f32 = rows["fp32 in-process"].get("s_per_call")
        for name, r in rows.items():
            ratio = r["s_per_call"] / f32 if f32 and r.get("s_per_call") else None
            print(
                f"| {name} | {r['seconds']:.1f} | {r['tx_per_s']:.0f} | {r['llm_calls']} | {r['parsed']} | "
                f"{_fmt(r.get('s_per_call'))} | {_fmt(ratio)} | {_fmt(agree.get(name))} |"
            )

    if not args.skip_adapt:
        new = generate_new_scheme(args.new_accounts, seed=11)
        start = time.perf_counter()
        adapted = adapt(
            new,
            new["is_fraud"].to_numpy(),
            run,
            args.work / "adapt",
            old=frame,  # the whole old history: replay and evaluation come from disjoint halves of its accounts
            old_labels=y,
            n_examples=64,
            n_eval_legit=400,
        )
        results["adaptation"] = {**adapted, "seconds": time.perf_counter() - start}
        print(
            f"\nadaptation: {adapted['train_examples']} examples ({adapted['train_fraud']} fraud) + "
            f"{adapted['replay_examples']} replayed old rows; decision point 0.5 before, "
            f"calibrated {_fmt(adapted['threshold'])} after ({adapted['calibration']})"
        )
        print("| set | metric | before | after at 0.5 | after (calibrated) |\n|---|---|---|---|---|")
        for name in adapted["before"]:  # type: ignore[union-attr]
            for metric in ("recall", "fpr"):
                cells = [adapted[when][name][metric] for when in ("before", "after_uncalibrated", "after")]  # type: ignore[index]
                print(f"| {name} | {metric} | " + " | ".join(_fmt(c) for c in cells) + " |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(portable(results), indent=2, default=str))


if __name__ == "__main__":
    main()
