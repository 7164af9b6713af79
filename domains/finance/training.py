"""The finance adapter's training: instruction records (risk prompt -> level and basis) and the LoRA run on them.

Shared record format (one JSONL line): {"messages": [system, user, assistant], "meta": {...}}; the assistant turn is
the answer the strict parser accepts, from targets.target_for(label, fired reasons).

A labelled history is mostly legitimate rows that teach nothing new, and every record costs a forward and backward
pass of the model, so `select_rows` keeps a balanced, informative subset: the fraud rows (at most half), then
legitimate rows the screen finds hardest (highest numeric score, or most rule signals without a numeric model),
then a random remainder so ordinary traffic is represented too. `train_adapter` writes the records and trains
`configs/finance-lora.yaml` through core.finetune.run.run_training (`finmed finance backtest --finetune` calls it on
the early part of a history only).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from core.atomic import atomic_file
from core.errors import NotFoundError
from domains.finance.features import compute_features, reasons_for, with_features
from domains.finance.parser import format_risk
from domains.finance.prompts import build_messages
from domains.finance.targets import target_for

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def select_rows(
    labels: np.ndarray, reasons: list[list[str]], n: int, *, hardness: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Sorted positions of at most `n` rows to train on (see the module docstring); n <= 0 keeps every row.

    Args:
        labels: 0/1 per row, shape (m,).
        reasons: fired reason names per row.
        n: most rows to keep.
        hardness: a score per row, higher = harder for legitimate rows (e.g. the numeric probability), shape (m,).
        seed: sampling seed.
    """
    labels = np.asarray(labels, dtype=int)
    if n <= 0 or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    fraud = np.flatnonzero(labels == 1)
    legit = np.flatnonzero(labels == 0)
    if len(fraud) > n // 2:
        fraud = rng.choice(fraud, size=n // 2, replace=False)
    n_legit = min(len(legit), n - len(fraud))
    counts = np.array([len(reasons[i]) for i in legit])
    score = np.asarray(hardness, dtype=float)[legit] if hardness is not None else counts
    order = legit[np.argsort(-score + rng.random(len(legit)) * 1e-9, kind="stable")]
    hard = order[: n_legit // 2]
    rest = np.setdiff1d(legit, hard)
    easy = rng.choice(rest, size=min(len(rest), n_legit - len(hard)), replace=False)
    return np.sort(np.concatenate([fraud, hard, easy]).astype(int))


def training_records(
    frame: pd.DataFrame,
    labels: np.ndarray,
    *,
    extra: list[str] | None = None,
    language: str = "en",
    rows: np.ndarray | None = None,
    features: pd.DataFrame | None = None,
) -> list[dict[str, object]]:
    """Records for labelled transactions of `frame` (canonical columns), labels shape (n,) 0/1.

    Features are computed over the whole frame (each row sees its own history) unless `features` is given;
    `rows` (positions) limits which transactions become records (default all).
    """
    frame = frame.reset_index(drop=True)
    feats = (compute_features(frame, extra) if features is None else features).reset_index(drop=True)
    labels = np.asarray(labels, dtype=int)
    rows = np.arange(len(frame)) if rows is None else np.asarray(rows, dtype=int)
    merged = with_features(frame, feats, rows)
    reasons = reasons_for(feats.iloc[rows])
    records: list[dict[str, object]] = []
    for rec, why, label in zip(merged.to_dict("records"), reasons, labels[rows], strict=True):
        level, basis = target_for(int(label), why)
        messages = build_messages(rec, why, language=language)
        messages.append({"role": "assistant", "content": format_risk(level, basis, language=language)})
        records.append(
            {
                "messages": messages,
                "meta": {
                    "domain": "finance",
                    "transaction_id": str(rec["transaction_id"]),
                    "account_id": str(rec["account_id"]),
                    "label": int(label),
                    "level": level,
                    "reasons": basis,
                    "language": language,
                },
            }
        )
    return records


def write_jsonl(records: list[dict[str, object]], path: Path) -> Path:
    """Write records as JSONL atomically (temporary file in the same folder, then rename)."""
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def finance_config(name: str, overrides: list[str]):  # noqa: ANN202  (core.finetune.config.TrainConfig)
    """A finance training config from the repository's configs/ (finance-lora.yaml, finance-adapt.yaml)."""
    from core.finetune.config import load_config

    path = CONFIGS / name
    if not path.is_file():
        raise NotFoundError(f"{path} not found: the finance training configs live in the repository's configs/")
    return load_config(path, overrides)


def train_adapter(
    frame: pd.DataFrame,
    labels: np.ndarray,
    out_dir: Path,
    *,
    extra: list[str] | None = None,
    features: pd.DataFrame | None = None,
    hardness: np.ndarray | None = None,
    max_records: int = 384,
    overrides: list[str] | None = None,
    show_progress: bool = True,
) -> Path:
    """Train the finance LoRA adapter on a labelled history; returns the run folder (out_dir/finance-lora).

    Args:
        frame: canonical transactions (the training part only, in a backtest).
        labels: 0/1 per row, shape (n,).
        out_dir: where the records (training.jsonl) and the run folder go.
        extra: extra numeric feature columns.
        features: precomputed features aligned with `frame`.
        hardness: numeric probability per row, to pick hard legitimate rows.
        max_records: most records to train on.
        overrides: extra `section.key=value` overrides of configs/finance-lora.yaml.
    """
    from core.finetune.run import run_training

    frame = frame.reset_index(drop=True)
    feats = compute_features(frame, extra) if features is None else features.reset_index(drop=True)
    rows = select_rows(labels, reasons_for(feats), max_records, hardness=hardness)
    records = training_records(frame, labels, rows=rows, features=feats)
    data = write_jsonl(records, out_dir / "training.jsonl")
    config = finance_config(
        "finance-lora.yaml",
        [f"dataset.path={data}", f"output.dir={out_dir}", "output.name=finance-lora", "output.overwrite=true"]
        + list(overrides or []),
    )
    return run_training(config, show_progress=show_progress)
