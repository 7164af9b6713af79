"""Finance benchmark: feature throughput, cascade scoring throughput with a real LLM, numeric vs LLM vs fused backtest.

Run: PYTHONPATH=$PWD python bench/finance.py [--rows 1000000] [--accounts 3000] [--budget 24] [--model default]
Prints comparison tables and writes bench/results/finance.json (the .md next to it is written by hand from the run).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from domains.finance.backtest import run_backtest
from domains.finance.features import compute_features
from domains.finance.llm import LocalLLM
from domains.finance.numeric import NumericModel
from domains.finance.pipeline import CascadePolicy, score_frame
from domains.finance.synthetic import generate

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the feature throughput run")
    parser.add_argument("--accounts", type=int, default=3000, help="accounts for the backtest")
    parser.add_argument("--budget", type=int, default=24, help="LLM adjudications in the cascade and backtest")
    parser.add_argument("--model", default="default", help="LLM folder or 'default'")
    args = parser.parse_args()

    results: dict[str, object] = {"machine": f"{platform.processor() or platform.machine()}, shared CPU"}
    feat = feature_throughput(args.rows)
    results["features"] = feat
    print(
        f"| rows | synth s | features s | features tx/s |\n|---|---|---|---|\n"
        f"| {feat['rows']} | {feat['synth_s']:.1f} | {feat['features_s']:.1f} | {feat['features_tx_per_s']:.0f} |"
    )

    frame = generate(args.accounts, seed=1, fraud_rate=0.06)
    y = frame["is_fraud"].to_numpy()
    llm = LocalLLM(args.model, batch_size=8)

    # Cascade throughput: numeric on all rows, LLM on `budget` of them (model fitted on another seed).
    fit_frame = generate(max(200, args.accounts // 3), seed=2, fraud_rate=0.06)
    numeric = NumericModel.fit(compute_features(fit_frame), fit_frame["is_fraud"].to_numpy())
    score_rows = frame.iloc[: min(len(frame), 50_000)]
    start = time.perf_counter()
    numeric_only = score_frame(score_rows, numeric)
    numeric_s = time.perf_counter() - start
    start = time.perf_counter()
    cascade = score_frame(score_rows, numeric, llm=llm, policy=CascadePolicy(budget=args.budget))
    cascade_s = time.perf_counter() - start
    n_llm = int(cascade["adjudicated"].sum())
    results["cascade"] = {
        "rows": len(score_rows),
        "llm_calls": n_llm,
        "numeric_only_tx_per_s": len(score_rows) / numeric_s,
        "cascade_tx_per_s": len(score_rows) / cascade_s,
        "llm_s_per_call": (cascade_s - numeric_s) / max(n_llm, 1),
        "parse_ok": int(cascade["parse_ok"].fillna(False).astype(bool).sum()),
        "model": llm.name,
    }
    assert len(numeric_only) == len(cascade)
    c = results["cascade"]
    print(
        f"\n| rows | LLM calls | numeric-only tx/s | cascade tx/s | LLM s/call | parsed |\n|---|---|---|---|---|---|\n"
        f"| {c['rows']} | {n_llm} | {c['numeric_only_tx_per_s']:.0f} | {c['cascade_tx_per_s']:.0f} | "
        f"{c['llm_s_per_call']:.2f} | {c['parse_ok']}/{n_llm} |"
    )

    start = time.perf_counter()
    result = run_backtest(frame, y, llm=llm, policy=CascadePolicy(budget=args.budget))
    m = result.metrics
    results["backtest"] = {**m, "seconds": time.perf_counter() - start, "accounts": args.accounts}
    print(f"\nbacktest: n_train {m['n_train']}, n_test {m['n_test']}, llm_scored {m['llm_scored']}")
    print("| variant | AUC | AP | precision | recall | FPR | threshold |\n|---|---|---|---|---|---|---|")
    for name in ("numeric", "llm", "fused"):
        v = m[name]
        cells = [v[k] for k in ("auc", "average_precision", "precision", "recall", "fpr", "threshold")]
        print(f"| {name} | " + " | ".join("n/a" if x is None else f"{x:.4f}" for x in cells) + " |")
    ap = {k: m[k]["average_precision"] for k in ("numeric", "llm", "fused")}
    beats = ap["fused"] is not None and all(
        ap["fused"] > (ap[k] if ap[k] is not None else -1) for k in ("numeric", "llm")
    )
    adjudicated = result.scored["adjudicated"].to_numpy()
    sub = result.labels[adjudicated]
    if adjudicated.any() and len(np.unique(sub)) == 2:
        from sklearn.metrics import average_precision_score

        results["backtest_adjudicated_ap"] = {
            "numeric": float(average_precision_score(sub, result.scored.loc[adjudicated, "numeric_score"])),
            "fused": float(average_precision_score(sub, result.scored.loc[adjudicated, "fused_score"])),
        }
    results["fused_beats_both_on_ap"] = bool(beats)
    print(f"\nfused beats both single variants on average precision: {'yes' if beats else 'NO'}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
