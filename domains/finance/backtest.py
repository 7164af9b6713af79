"""Time-split backtest: fit on the earliest 70%, score the latest 30%, compare numeric vs LLM vs fused.

Features are computed once over the whole history (they are causal, so test rows see only their own past, as in
production). The numeric model and the few-shot case base use the training part only. The operating threshold is
chosen on the training part (best F1 on out-of-fold probabilities); fused reuses it (fusion keeps the same scale)
and the LLM variant uses its own decision point, expected level 2.5 (llm.LLM_THRESHOLD, which is what its training
targets teach) or the one its run folder was calibrated to (RiskLLM.threshold). No LLM calls are spent on the
training part.
The LLM variant is measured on the test rows it adjudicated with a parsable answer (`llm_scored`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from core.atomic import atomic_file, write_bytes_atomic
from domains.finance.features import compute_features, with_features
from domains.finance.llm import LLM_THRESHOLD, RiskLLM
from domains.finance.numeric import NumericModel
from domains.finance.pipeline import CascadePolicy, score_frame
from domains.finance.risk_fusion import fuse
from domains.finance.similar import InMemorySimilarCases

METRIC_KEYS = ("auc", "average_precision", "accuracy", "precision", "recall", "fpr", "threshold")


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


def time_split(frame: pd.DataFrame, train_share: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """(train positions, test positions): the earliest `train_share` of rows by timestamp, then the rest."""
    order = np.argsort(frame["timestamp"].to_numpy(), kind="stable")
    cut = int(round(len(order) * train_share))
    return np.sort(order[:cut]), np.sort(order[cut:])


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
) -> BacktestResult:
    """Fit on the early part of `frame`, score the late part; labels shape (n,) 0/1 aligned with `frame`.

    With `finetune_dir`, the finance adapter is trained on the early part too (training.train_adapter, hard
    legitimate rows picked by the numeric model fitted there) and adjudicates instead of `llm`.
    """
    frame = frame.reset_index(drop=True)
    labels = np.asarray(labels, dtype=int)
    feats = compute_features(frame, extra)
    train, test = time_split(frame)
    numeric = NumericModel.fit(feats.iloc[train], labels[train])
    if finetune_dir is not None:
        from domains.finance.llm import LocalLLM
        from domains.finance.training import train_adapter

        run = train_adapter(
            frame.iloc[train],
            labels[train],
            finetune_dir,
            features=feats.iloc[train],
            hardness=numeric.predict(feats.iloc[train]),
            max_records=finetune_records,
            overrides=finetune_overrides,
        )
        llm = LocalLLM(adapter=run)
    similar = None
    if llm is not None and policy is not None and policy.budget > 0 and policy.k_examples > 0:
        similar = InMemorySimilarCases(with_features(frame, feats, train), labels[train])
    scored = score_frame(
        frame.iloc[test],
        numeric,
        llm=llm,
        similar=similar,
        policy=policy,
        features=feats.iloc[test],
    )
    y = labels[test]
    llm_rows = scored["llm_level"].notna().to_numpy()
    t = numeric.threshold
    u = llm.threshold if llm is not None else LLM_THRESHOLD
    metrics: dict[str, object] = {
        "numeric": variant_metrics(y, scored["numeric_score"].to_numpy(), numeric.threshold),
        "llm": variant_metrics(
            y, fuse(scored["numeric_score"].to_numpy(), scored["llm_score"].to_numpy(), t, 1.0, llm_threshold=u), t
        ),
        "fused": variant_metrics(y, scored["fused_score"].to_numpy(), numeric.threshold),
        "n_train": len(train),
        "n_test": len(test),
        "llm_scored": int(llm_rows.sum()),
    }
    return BacktestResult(metrics, scored, y, numeric, test, run if finetune_dir is not None else None, u)


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
    lines += [
        "## Calibration by risk level",
        "",
        "| level | numeric: n | numeric: fraud rate | fused: n | fused: fraud rate |",
    ]
    lines.append("|---|---|---|---|---|")
    for level in range(6):
        cells = []
        for col in ("numeric_level", "risk_level"):
            mask = s[col].to_numpy() == level
            cells += [str(int(mask.sum())), f"{y[mask].mean():.3f}" if mask.any() else "n/a"]
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
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
