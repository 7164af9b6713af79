"""Time-split backtest: fit on the earliest 70%, score the latest 30%, compare numeric vs LLM vs fused.

Features are computed once over the whole history (they are causal, so test rows see only their own past, as in
production). Everything is learned on the training part only, through screen.fit_screen: the numeric model on its
early rows, the fusion weight and the level calibration on its latest quarter (the validation slice). The test rows
are scored once, at the end, with what was learned; nothing is tuned on them.

LLM calls: `policy.budget` is spent on the validation slice to measure the LLM. On the test part the LLM runs only
when the fusion found a gain there (same budget), unless `test_budget` is given (the user insists; reported as
forced). The report states the LLM seconds per call next to what it bought: AP and FPR with and without it.
The LLM variant is measured on the test rows it adjudicated with a parsable answer (`llm_scored`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from core.atomic import atomic_file, write_bytes_atomic
from domains.finance.calibration import level_table
from domains.finance.features import compute_features, with_features
from domains.finance.ingest import FLAG_COLUMN
from domains.finance.llm import LLM_THRESHOLD, RiskLLM
from domains.finance.numeric import NumericModel
from domains.finance.pipeline import CascadePolicy, Progress, score_frame
from domains.finance.risk_fusion import DEFAULT_WEIGHT, FusionFit, fuse
from domains.finance.screen import VAL_SHARE, fit_screen, time_split
from domains.finance.similar import InMemorySimilarCases

METRIC_KEYS = ("auc", "average_precision", "accuracy", "precision", "recall", "fpr", "threshold")
__all__ = ["BacktestResult", "run_backtest", "time_split", "variant_metrics", "write_report"]


@dataclass
class BacktestResult:
    """Metrics (the metrics.json content), test assessments and labels."""

    metrics: dict[str, object]
    scored: pd.DataFrame
    labels: np.ndarray
    numeric: NumericModel | None = None
    test_rows: np.ndarray | None = None  # positions of the test part in the input frame
    adapter_run: Path | None = None
    llm_threshold: float = LLM_THRESHOLD  # the adjudicating LLM's decision point
    notes: list[str] = field(default_factory=list)  # one-line statements for the console and the report


def variant_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float | None]:
    """The M block for one variant: ranking metrics on `score`, counting metrics at `score >= threshold`."""
    y = np.asarray(y, dtype=int)
    out: dict[str, float | None] = dict.fromkeys(METRIC_KEYS)
    out["threshold"] = float(threshold)
    if len(y) == 0:
        return out
    pred = np.asarray(score) >= threshold
    tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
    fn, tn = int(np.sum(~pred & (y == 1))), int(np.sum(~pred & (y == 0)))
    out["accuracy"] = (tp + tn) / len(y)
    out["precision"] = tp / (tp + fp) if tp + fp else 0.0
    out["recall"] = tp / (tp + fn) if tp + fn else None
    out["fpr"] = fp / (fp + tn) if fp + tn else None
    if len(np.unique(y)) == 2:
        out["auc"] = float(roc_auc_score(y, score))
        out["average_precision"] = float(average_precision_score(y, score))
    return out


def llm_plan(fusion: FusionFit | None, budget: int, test_budget: int | None) -> tuple[int, float, bool, str]:
    """(LLM calls on the test part, fusion weight, forced, one-line note) from the learned fusion."""
    if fusion is None:
        return 0, 0.0, False, "no fusion fit"
    measured = bool(fusion.llm_name)
    if test_budget is not None and test_budget > 0 and not fusion.llm_used:
        weight = fusion.weight if measured else DEFAULT_WEIGHT
        how = "learned" if measured else "assumed, never measured"
        return (
            test_budget,
            weight,
            True,
            f"{fusion.reason}; LLM run anyway (forced by the test budget {test_budget}, weight {weight:.1f} {how})",
        )
    if fusion.llm_used:
        return (test_budget if test_budget else budget), fusion.weight, False, fusion.reason
    return 0, 0.0, False, fusion.reason


def run_backtest(
    frame: pd.DataFrame,
    labels: np.ndarray,
    *,
    extra: list[str] | None = None,
    llm: RiskLLM | None = None,
    policy: CascadePolicy | None = None,
    finetune_dir: Path | None = None,
    finetune_records: int = 384,
    finetune_overrides: list[str] | None = None,
    test_budget: int | None = None,
    rejected: int = 0,
    progress: Progress | None = None,
) -> BacktestResult:
    """Fit on the early part of `frame`, score the late part; labels shape (n,) 0/1 aligned with `frame`.

    Args:
        frame: ingested transactions (the scorable rows); labels: 0/1 per row.
        llm: the LLM measured on the validation slice (and run on the test part if it gains there).
        policy: cascade policy; its budget is the validation slice's LLM calls (and the test part's, if used).
        finetune_dir: train the finance adapter on the early rows of the training part (before the validation
            slice, so the fusion is measured on rows the adapter never saw) and use it instead of `llm`.
        test_budget: LLM calls on the test part whatever the fusion says (None: the fusion decides).
        rejected: input rows ingest rejected (for metrics["rows"]).
        progress: LLM progress callback (done, total), for both LLM stages.
    """
    frame = frame.reset_index(drop=True)
    labels = np.asarray(labels, dtype=int)
    feats = compute_features(frame, extra)
    train, test = time_split(frame)
    policy = policy or CascadePolicy()
    run = None
    if finetune_dir is not None:
        from domains.finance.llm import LocalLLM
        from domains.finance.training import train_adapter

        early = train[time_split(frame.iloc[train], 1.0 - VAL_SHARE)[0]]
        hardness = NumericModel.fit(feats.iloc[early], labels[early]).predict(feats.iloc[early])
        run = train_adapter(
            frame.iloc[early],
            labels[early],
            finetune_dir,
            features=feats.iloc[early],
            hardness=hardness,
            max_records=finetune_records,
            overrides=finetune_overrides,
        )
        llm = LocalLLM(adapter=run)
    numeric = fit_screen(frame.iloc[train], labels[train], feats.iloc[train], llm=llm, policy=policy, progress=progress)
    fusion = numeric.fusion if isinstance(numeric.fusion, FusionFit) else None
    budget, weight, forced, note = llm_plan(fusion, policy.budget, test_budget)
    similar = None
    if llm is not None and budget > 0 and policy.k_examples > 0:
        similar = InMemorySimilarCases(with_features(frame, feats, train), labels[train])
    scored = score_frame(
        frame.iloc[test],
        numeric,
        llm=llm if budget > 0 else None,
        similar=similar,
        policy=replace(policy, budget=budget, fusion_weight=weight),
        features=feats.iloc[test],
        progress=progress,
    )
    y = labels[test]
    llm_rows = scored["llm_level"].notna().to_numpy()
    t = numeric.threshold
    u = llm.threshold if llm is not None else LLM_THRESHOLD
    flagged = int((frame[FLAG_COLUMN] != "").sum()) if FLAG_COLUMN in frame.columns else 0
    calls, seconds = int(scored.attrs.get("llm_calls", 0)), float(scored.attrs.get("llm_seconds", 0.0))
    metrics: dict[str, object] = {
        "numeric": variant_metrics(y, scored["numeric_score"].to_numpy(), numeric.threshold),
        "llm": variant_metrics(
            y, fuse(scored["numeric_score"].to_numpy(), scored["llm_score"].to_numpy(), t, 1.0, llm_threshold=u), t
        ),
        "fused": variant_metrics(y, scored["fused_score"].to_numpy(), numeric.threshold),
        "n_train": len(train),
        "n_test": len(test),
        "llm_scored": int(llm_rows.sum()),
        "rows": {"input": len(frame) + rejected, "scored": len(frame), "rejected": rejected, "flagged": flagged},
        "levels": level_table(scored["risk_level"].to_numpy(), y, numeric.calibration),  # type: ignore[arg-type]
        "fusion": {**(fusion.as_dict() if fusion else {"weight": 0.0, "llm_used": False, "reason": note})},
        "llm_cost": {
            "test_calls": calls,
            "test_seconds": seconds,
            "seconds_per_call": seconds / calls if calls else None,
            "forced": forced,
            "validation_calls": fusion.llm_rows if fusion else 0,
            "validation_ap_numeric": fusion.ap_numeric if fusion else None,
            "validation_ap_fused": fusion.ap_fused if fusion else None,
        },
    }
    notes = [note]
    if numeric.calibration is None:
        notes.append(str(numeric.meta.get("calibration_note", "levels use fixed edges")))
    return BacktestResult(metrics, scored, y, numeric, test, run, u, notes)


def _confusion(y: np.ndarray, pred: np.ndarray) -> str:
    tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
    fn, tn = int(np.sum(~pred & (y == 1))), int(np.sum(~pred & (y == 0)))
    return f"| | predicted fraud | predicted legit |\n|---|---|---|\n| fraud | {tp} | {fn} |\n| legit | {fp} | {tn} |\n"


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def write_report(result: BacktestResult, out: Path) -> list[Path]:
    """Write metrics.json, assessments.csv (test rows), report.md and PNG charts into `out` (each file atomically);
    returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    out.mkdir(parents=True, exist_ok=True)
    m, s, y = result.metrics, result.scored, result.labels
    write_bytes_atomic(out / "metrics.json", json.dumps(m, indent=2).encode())
    with atomic_file(out / "assessments.csv", suffix=".csv") as tmp:  # every test row, all three variants, label
        s.assign(label=y).to_csv(tmp, index=False)
    lines = [
        "# Finance backtest",
        "",
        f"Train rows (earliest 70%): {m['n_train']}; test rows: {m['n_test']}; "
        f"LLM-scored test rows: {m['llm_scored']}.",
        "",
        "| variant | " + " | ".join(METRIC_KEYS) + " |",
        "|---" * (len(METRIC_KEYS) + 1) + "|",
    ]
    for name in ("numeric", "llm", "fused"):
        block = m[name]
        assert isinstance(block, dict)
        lines.append(f"| {name} | " + " | ".join(_fmt(block[k]) for k in METRIC_KEYS) + " |")
    adj = s["llm_score"].notna().to_numpy()
    if adj.any():
        lines += [
            "",
            f"## Adjudicated rows only ({int(adj.sum())} rows, {int(y[adj].sum())} fraud)",
            "",
            "| variant | " + " | ".join(METRIC_KEYS) + " |",
            "|---" * (len(METRIC_KEYS) + 1) + "|",
        ]
        thr = float(m["numeric"]["threshold"])  # type: ignore[index]
        for name, col, cut in (
            ("numeric", "numeric_score", thr),
            ("llm (its own score)", "llm_score", result.llm_threshold),
            ("fused", "fused_score", thr),
        ):
            block = variant_metrics(y[adj], s.loc[adj, col].to_numpy(dtype=float), cut)
            lines.append(f"| {name} | " + " | ".join(_fmt(block[k]) for k in METRIC_KEYS) + " |")
    for name, col in (("numeric", "numeric_score"), ("fused", "fused_score")):
        thr = m[name]["threshold"]  # type: ignore[index]
        lines += ["", f"## Confusion ({name}, threshold {thr:.4f})", "", _confusion(y, s[col].to_numpy() >= thr)]
    rows = m["rows"]
    assert isinstance(rows, dict)
    lines += [
        "## Rows",
        "",
        f"{rows['input']} input rows: {rows['scored']} scored ({rows['flagged']} with an odd optional field, "
        f"scored with that field unknown), {rows['rejected']} rejected as unscorable.",
        "",
        "## Calibration by risk level (test part, fused)",
        "",
        "Levels are cut on the training period's validation slice; the band is the fraud rate each level promised "
        "there.",
        "",
        "| level | n | share | fraud rate | promised band | numeric level: n | numeric level: fraud rate |",
        "|---|---|---|---|---|---|---|",
    ]
    levels = m["levels"]
    assert isinstance(levels, list)
    for entry in levels:
        level = entry["level"]
        mask = s["numeric_level"].to_numpy() == level
        band = entry["band"]
        band_text = f"{100 * band[0]:.2f}%-{100 * band[1]:.2f}%" if band else "fixed edges"
        rate = entry["fraud_rate"]
        lines.append(
            f"| {level} | {entry['n']} | {entry['n'] / max(len(y), 1):.1%} | "
            f"{'n/a' if rate is None else f'{100 * rate:.2f}%'} | {band_text} | {int(mask.sum())} | "
            f"{f'{100 * y[mask].mean():.2f}%' if mask.any() else 'n/a'} |"
        )
    fusion, cost = m["fusion"], m["llm_cost"]
    assert isinstance(fusion, dict) and isinstance(cost, dict)
    lines += ["", "## Fusion and LLM cost", "", *[f"- {note}" for note in result.notes]]
    per_call = cost["seconds_per_call"]
    lines.append(
        f"- LLM calls: {cost['validation_calls']} parsed on the validation slice, {cost['test_calls']} on the test "
        f"part ({'forced' if cost['forced'] else 'by the learned fusion'}); "
        + (f"{per_call:.3f} s per call, {cost['test_seconds']:.1f} s in all." if per_call else "no test LLM calls.")
    )
    numeric_m, fused_m = m["numeric"], m["fused"]
    assert isinstance(numeric_m, dict) and isinstance(fused_m, dict)
    lines.append(
        f"- What it bought on the test part: AP {_fmt(numeric_m['average_precision'])} without the LLM, "
        f"{_fmt(fused_m['average_precision'])} with it; FPR {_fmt(numeric_m['fpr'])} without, "
        f"{_fmt(fused_m['fpr'])} with."
    )
    lines.append("")
    adjudicated = s["adjudicated"].to_numpy()
    parsed = s["parse_ok"].fillna(False).to_numpy(dtype=bool)
    lines += [
        "",
        f"LLM adjudicated {int(adjudicated.sum())} test rows; {int(parsed.sum())} answers parsed "
        f"({int(adjudicated.sum() - parsed.sum())} parse failures route to review).",
        "",
        "![precision-recall](pr_curve.png)",
        "![fraud rate by level](calibration.png)",
        "",
    ]
    write_bytes_atomic(out / "report.md", "\n".join(lines).encode())

    fig, ax = plt.subplots(figsize=(5, 4))
    if len(np.unique(y)) == 2:
        for name, col in (("numeric", "numeric_score"), ("fused", "fused_score")):
            p, r, _ = precision_recall_curve(y, s[col].to_numpy())
            ax.plot(r, p, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.legend(loc="lower left") if len(np.unique(y)) == 2 else None
    ax.set_title("Precision-recall on the test part")
    charts = []
    for name, figure in (("pr_curve.png", fig), ("calibration.png", None)):
        if figure is None:
            figure, ax2 = plt.subplots(figsize=(5, 4))
            rates = [
                y[s["risk_level"].to_numpy() == lv].mean() if (s["risk_level"] == lv).any() else 0 for lv in range(6)
            ]
            ax2.bar(range(6), rates)
            ax2.set_xlabel("fused risk level")
            ax2.set_ylabel("fraud rate")
        with atomic_file(out / name, suffix=".png") as tmp:
            figure.savefig(tmp, dpi=80)
        plt.close(figure)
        charts.append(out / name)
    return [out / "metrics.json", out / "assessments.csv", out / "report.md", *charts]
