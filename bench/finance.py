"""Finance benchmark: feature throughput; backtests (numeric, LLM, fused with the learned fusion) on two synthetic
histories with odd and broken rows, with calibration per risk level and rows scored vs rejected; the cascade with the
finance adapter exported to int4 and int8 and served by `finmed serve` (LLM seconds per call through the server)
against fp32 in-process; and, optionally, few-shot adaptation before/after.

Run: PYTHONPATH=$PWD .venv/bin/python bench/finance.py [--rows 1000000] [--accounts 600] [--budget 120]
         [--records 256] [--seeds 7,29] [--work var/bench-finance] [--skip-features] [--skip-served] [--adapt]
         [--adapter RUN]   (reuse a finance adapter run instead of training one in the first backtest)
         [--precisions int4,int8]   (exports served in the cascade)
The first seed's backtest trains the finance adapter on its early rows; the second seed is a history the defaults
were not tuned on, scored with that same adapter. Writes bench/results/finance.md and finance.json (every ratio
measured within the one run); `--prefix-only` times the LLM scoring pass alone into --json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import REPO, portable, require_quiet
from domains.finance.adaptation import adapt
from domains.finance.backtest import run_backtest
from domains.finance.features import compute_features
from domains.finance.llm import LocalLLM, OnnxLLM, RiskLLM
from domains.finance.pipeline import CascadePolicy, score_frame
from domains.finance.synthetic import generate, generate_new_scheme

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "finance.json"
HISTORIC = ["DEM", "FRF", "VEF", "HRK"]  # withdrawn ISO 4217 codes: known, scored as such
UNKNOWN = ["XQQ", "BTC", "ZZZ"]  # not ISO 4217: kept, scored with the currency marked unknown
BROKEN = [("amount", "n/a"), ("timestamp", "31/31/2026"), ("account_id", None)]  # unscorable: rejected


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


def _fmt(x: object, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def odd_history(accounts: int, seed: int, work: Path) -> tuple[Any, np.ndarray, dict[str, int]]:
    """A synthetic history written as a CSV with odd optional fields and a few unscorable rows, read back through
    `ingest` (the CLI's, API's and page's path): returns (Ingested, labels of the kept rows, what was injected).

    2% of rows get a withdrawn ISO 4217 currency, 2% a code that is not ISO 4217, 1% an unknown country, and one row
    in 2,000 an unparseable amount, timestamp or a missing account (rotating)."""
    from domains.finance.ingest import ingest

    frame = generate(accounts, seed=seed).drop(columns=["scheme"])
    raw = frame.astype({"amount": object, "timestamp": str, "account_id": object, "currency": object})
    raw["country"] = raw["country"].astype(object)
    rng = np.random.default_rng(seed + 1000)
    pos = rng.permutation(len(raw))
    k, b = len(raw) // 50, max(1, len(raw) // 2000)
    cut = np.cumsum([0, k, k, k // 2, 3 * b])
    historic, unknown, country, broken = (pos[cut[i] : cut[i + 1]] for i in range(4))
    raw.loc[historic, "currency"] = rng.choice(HISTORIC, len(historic))
    raw.loc[unknown, "currency"] = rng.choice(UNKNOWN, len(unknown))
    raw.loc[country, "country"] = "Q1"
    for i, (column, value) in enumerate(BROKEN):
        raw.loc[broken[i::3], column] = value
    path = work / f"history-seed{seed}.csv"
    raw.to_csv(path, index=False)
    data = ingest(path, exclude=("is_fraud",))
    y = pd.to_numeric(data.frame["is_fraud"]).to_numpy(dtype=int)
    injected = {"historic_currency": len(historic), "unknown_currency": len(unknown), "unknown_country": len(country),
                "broken": len(broken)}  # fmt: skip
    return data, y, injected


def backtest_seed(seed: int, args: argparse.Namespace, llm: RiskLLM | None, finetune: bool) -> tuple[Any, Any, dict]:
    """The backtest (`finmed finance backtest`'s code) on the odd history of `seed`: (result, ingested, summary)."""
    from collections import Counter

    data, y, injected = odd_history(args.accounts, seed, args.work)
    start = time.perf_counter()
    bt = run_backtest(
        data.frame,
        y,
        extra=data.extra_features,
        llm=llm,
        policy=CascadePolicy(budget=args.budget, k_examples=0),
        finetune_dir=args.work / "adapter" if finetune else None,
        finetune_records=args.records,
        rejected=len(data.bad),
    )
    summary = {
        **bt.metrics,
        "seed": seed,
        "accounts": args.accounts,
        "seconds": time.perf_counter() - start,
        "injected": injected,
        "odd": [o.message() for o in data.odd],
        "rejected_reasons": dict(Counter(b.reason for b in data.bad)),
        "notes": bt.notes,
    }
    m = bt.metrics
    print(f"\nbacktest seed {seed}: {m['rows']}; n_train {m['n_train']}, n_test {m['n_test']}", flush=True)
    for name in ("numeric", "llm", "fused"):
        v = m[name]
        print(f"  {name}: AP {_fmt(v['average_precision'])} AUC {_fmt(v['auc'])} FPR {_fmt(v['fpr'])}", flush=True)
    print(f"  fusion: {m['fusion']}", flush=True)
    return bt, data, summary


def export(run: Path, precision: str, out: Path) -> Path:
    """`finmed export --run RUN --precision P` into `out` (a fresh process, as a user runs it)."""
    import os
    import subprocess

    cmd = [sys.executable, "-c", "from core.cli import main; main()", "export", "--run", str(run)]
    subprocess.run(
        [*cmd, "--precision", precision, "--out", str(out), "--overwrite"],
        check=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    return out


def cascade_run(frame, feats, numeric, llm: RiskLLM | None, budget: int) -> tuple[float, Any]:  # noqa: ANN001
    start = time.perf_counter()
    scored = score_frame(frame, numeric, llm=llm, policy=CascadePolicy(budget=budget, k_examples=0), features=feats)
    return time.perf_counter() - start, scored


def served_cascade(run: Path, bt: Any, frame: pd.DataFrame, feats: pd.DataFrame, args: argparse.Namespace) -> dict:
    """The cascade on the test rows with the adapter fp32 in-process and exported (int4, int8) behind `finmed serve`
    (one HTTP request per adjudication, through ServingClient): LLM seconds per call, parse rate, level agreement."""
    from bench.serve import Server
    from core.serving.client import ServingClient

    test = frame.iloc[bt.test_rows].reset_index(drop=True)
    test_feats = feats.iloc[bt.test_rows].reset_index(drop=True)
    rows: dict[str, dict[str, Any]] = {}
    levels: dict[str, np.ndarray] = {}

    def measure(name: str, llm: RiskLLM | None) -> None:
        seconds, scored = cascade_run(test, test_feats, bt.numeric, llm, args.budget)
        calls = int(scored["adjudicated"].sum())
        rows[name] = {
            "seconds": seconds,
            "llm_calls": calls,
            "parsed": int(scored["parse_ok"].fillna(False).astype(bool).sum()),
        }
        levels[name] = scored["llm_level"].to_numpy(dtype=float)
        print(f"  {name}: {rows[name]}", flush=True)

    print(f"\ncascade on {len(test)} test rows, LLM budget {args.budget}:", flush=True)
    measure("numeric only", None)
    measure("fp32 in-process", LocalLLM(adapter=run))
    for precision in args.precisions.split(","):
        folder = export(run, precision, args.work / f"finance-{precision}")
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            server = Server(folder, Path(tmp), max_batch_size=8, max_wait_ms=10, prefix_cache="alone")
            try:
                asyncio.run(server.wait_ready())
                client = ServingClient(server.url, server.key, timeout_s=600)
                measure(f"{precision} served", OnnxLLM(folder, client=client, model="bench"))
            finally:
                server.stop()
    base = rows["numeric only"]["seconds"]
    ref = levels["fp32 in-process"]
    for name, r in rows.items():
        if name == "numeric only":
            continue
        r["s_per_call"] = (r["seconds"] - base) / max(r["llm_calls"], 1)
        r["parse_rate"] = r["parsed"] / max(r["llm_calls"], 1)
        both = ~np.isnan(ref) & ~np.isnan(levels[name])
        r["level_exact"] = float(np.mean(ref[both] == levels[name][both])) if both.any() else None
        r["level_within_1"] = float(np.mean(np.abs(ref[both] - levels[name][both]) <= 1)) if both.any() else None
    return {"rows": len(test), "budget": args.budget, "variants": rows}


def run_adaptation(run: Path, frame: pd.DataFrame, y: np.ndarray, args: argparse.Namespace) -> dict:
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
    return {**adapted, "seconds": time.perf_counter() - start}


def report(results: dict[str, Any], command: str) -> str:
    """finance.md from the results of this one run."""
    lines = [
        "# Finance benchmark (bench/finance.py)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {results['machine']}",
        "",
        "LLM: SmolLM2-135M-Instruct with the finance adapter (`configs/finance-lora.yaml`), trained by the first "
        f"backtest on the early rows of its training period only ({results['args']['records']} records); the second "
        "seed's history is one the defaults were not tuned on, scored with that same adapter.",
        "",
    ]
    if "features" in results:
        f = results["features"]
        lines += [
            "## Feature throughput (causal features, vectorised pandas/numpy)",
            "",
            "| rows | synth s | features s | features tx/s |",
            "|---|---|---|---|",
            f"| {f['rows']} | {f['synth_s']:.1f} | {f['features_s']:.1f} | {f['features_tx_per_s']:.0f} |",
            "",
        ]
    for bt in results["backtests"]:
        r, cost, fusion = bt["rows"], bt["llm_cost"], bt["fusion"]
        lines += [
            f"## Backtest, generator seed {bt['seed']} ({bt['accounts']} accounts, {bt['seconds']:.0f} s)",
            "",
            f"Injected into the file: {bt['injected']['historic_currency']} withdrawn currency codes, "
            f"{bt['injected']['unknown_currency']} non-ISO currency codes, {bt['injected']['unknown_country']} unknown "
            f"countries, {bt['injected']['broken']} unscorable rows.",
            "",
            "| input rows | scored | rejected | flagged (odd field, scored) |",
            "|---|---|---|---|",
            f"| {r['input']} | {r['scored']} | {r['rejected']} | {r['flagged']} |",
            "",
            *[f"- {m}" for m in bt["odd"]],
            *[f"- rejected, {n} rows: {reason}" for reason, n in bt["rejected_reasons"].items()],
            "",
            f"Time split: {bt['n_train']} training rows (the fusion and the level cut points are fitted on its latest "
            f"slice), {bt['n_test']} test rows; {bt['llm_scored']} test rows LLM-scored.",
            "",
            "| variant | AUC | AP | precision | recall | FPR | threshold |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in ("numeric", "llm", "fused"):
            v = bt[name]
            cells = [v.get(k) for k in ("auc", "average_precision", "precision", "recall", "fpr", "threshold")]
            lines.append(f"| {name} | " + " | ".join(_fmt(c) for c in cells) + " |")
        per_call = cost["seconds_per_call"]
        lines += [
            "",
            f"Learned fusion: weight {fusion['weight']}, LLM used: {fusion['llm_used']} ({fusion['reason']}). "
            f"LLM calls: {cost['validation_calls']} on the validation slice (AP there: numeric "
            f"{_fmt(cost['validation_ap_numeric'])}, fused {_fmt(cost['validation_ap_fused'])}), {cost['test_calls']} "
            f"on the test part" + (f", {per_call:.2f} s per call (fp32 in-process)." if per_call else "."),
            "",
            "Calibration per level (test part, fused); the band is the fraud rate the level promised on the "
            "validation slice:",
            "",
            "| level | n | share | fraud rate | promised band |",
            "|---|---|---|---|---|",
        ]
        n_test = max(bt["n_test"], 1)
        for e in bt["levels"]:
            band = f"{100 * e['band'][0]:.2f}% - {100 * e['band'][1]:.2f}%" if e["band"] else "fixed edges"
            rate = "n/a" if e["fraud_rate"] is None else f"{100 * e['fraud_rate']:.2f}%"
            lines.append(f"| {e['level']} | {e['n']} | {e['n'] / n_test:.1%} | {rate} | {band} |")
        rates = [e["fraud_rate"] for e in bt["levels"] if e["fraud_rate"] is not None]
        used = sum(1 for e in bt["levels"] if e["n"] > 0)
        monotone = all(a <= b for a, b in zip(rates, rates[1:], strict=False))
        lines += ["", f"Levels used: {used} of 6; fraud rate monotone in level: {'yes' if monotone else 'NO'}.", ""]
    if "cascade" in results:
        c = results["cascade"]
        lines += [
            f"## Cascade through the server (first seed's {c['rows']} test rows, LLM budget {c['budget']})",
            "",
            "fp32 runs in-process (PyTorch, adapter on the base); int4 and int8 are `finmed export`s of the same "
            "adapter served by `finmed serve` (one HTTP request per adjudication, answers decoded under the risk "
            "format's regex). Seconds per call = (cascade seconds - numeric-only seconds) / LLM calls.",
            "",
            "| LLM | seconds | LLM calls | parsed | s per LLM call | per call / fp32 | level = fp32 | level within 1 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        f32 = c["variants"]["fp32 in-process"].get("s_per_call")
        for name, r in c["variants"].items():
            ratio = r["s_per_call"] / f32 if f32 and r.get("s_per_call") else None
            lines.append(
                f"| {name} | {r['seconds']:.1f} | {r['llm_calls']} | {r['parsed']} | {_fmt(r.get('s_per_call'), 3)} "
                f"| {_fmt(ratio, 2)} | {_fmt(r.get('level_exact'), 3)} | {_fmt(r.get('level_within_1'), 3)} |"
            )
        lines.append("")
    if "adaptation" in results:
        a = results["adaptation"]
        lines += [
            f"## Few-shot adaptation ({a['seconds']:.0f} s)",
            "",
            f"{a['train_examples']} examples ({a['train_fraud']} fraud) + {a['replay_examples']} replayed old rows; "
            f"decision point 0.5 before, calibrated {_fmt(a['threshold'])} after ({a['calibration']}).",
            "",
            "| set | metric | before | after at 0.5 | after (calibrated) |",
            "|---|---|---|---|---|",
        ]
        for name in a["before"]:
            for metric in ("recall", "fpr"):
                cells = [a[when][name][metric] for when in ("before", "after_uncalibrated", "after")]
                lines.append(f"| {name} | {metric} | " + " | ".join(_fmt(x) for x in cells) + " |")
        lines.append("")
    else:
        lines += [
            "Few-shot adaptation: not run by this command (`--adapt` runs it); its last measurement is "
            "bench/results/finance-adaptation.json.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the feature throughput run")
    parser.add_argument("--accounts", type=int, default=600, help="accounts of each backtest history")
    parser.add_argument("--seeds", default="7,29", help="generator seeds of the backtest histories")
    parser.add_argument("--budget", type=int, default=120, help="LLM calls on the validation slice, test part, cascade")
    parser.add_argument("--records", type=int, default=256, help="finance adapter training records")
    parser.add_argument("--new-accounts", type=int, default=150, help="accounts of the new-scheme set")
    parser.add_argument("--work", type=Path, default=Path("var/bench-finance"), help="runs and exports go here")
    parser.add_argument("--skip-features", action="store_true")
    parser.add_argument("--skip-served", action="store_true", help="no exported, served cascade")
    parser.add_argument("--adapt", action="store_true", help="also run few-shot adaptation")
    parser.add_argument(
        "--prefix-only", action="store_true", help="only time the LLM scoring pass, shared prefix vs full prompts"
    )
    parser.add_argument("--adapter", type=Path, default=None, help="reuse this finance adapter run (no training)")
    parser.add_argument("--json", type=Path, default=OUT, help="where the raw results go (the .md goes beside it)")
    parser.add_argument("--precisions", default="int4,int8", help="comma-separated export precisions served")
    parser.add_argument("--allow-busy", action="store_true", help="run even when the load average is 1 or more")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    command = "PYTHONPATH=$PWD .venv/bin/python " + " ".join(["bench/finance.py", *sys.argv[1:]])
    results: dict[str, Any] = {"machine": require_quiet(allow_busy=args.allow_busy), "args": portable(vars(args))}
    print(results["machine"], flush=True)

    if args.prefix_only:
        results["prefix"] = prefix_speed(args.adapter)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(portable(results), indent=2, default=str))
        return
    if not args.skip_features:
        results["features"] = feature_throughput(args.rows)
        print(f"features: {results['features']}", flush=True)

    seeds = [int(s) for s in args.seeds.split(",")]
    results["backtests"] = []
    run = args.adapter
    first = None
    for seed in seeds:
        llm = LocalLLM(adapter=run) if run is not None else None
        bt, data, summary = backtest_seed(seed, args, llm, finetune=run is None)
        run = run or bt.adapter_run
        results["backtests"].append(summary)
        first = first or (bt, data)
    assert run is not None and first is not None
    bt, data = first
    if not args.skip_served:
        frame = data.frame.reset_index(drop=True)
        feats = compute_features(frame, data.extra_features)
        results["cascade"] = served_cascade(run, bt, frame, feats, args)
    if args.adapt:
        frame = data.frame.reset_index(drop=True)
        results["adaptation"] = run_adaptation(run, frame, pd.to_numeric(frame["is_fraud"]).to_numpy(dtype=int), args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(portable(results), indent=2, default=str) + "\n")
    text = report(portable(results), command)
    args.json.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
