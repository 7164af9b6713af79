"""Few-shot adaptation to a new fraud scheme (`finmed finance adapt`), trained through core.finetune.

The finance adapter it stacks on is trained by domains/finance/training.py (`train_adapter`).

* `adapt`: a soft prompt (peft prompt tuning, `configs/finance-adapt.yaml`) learned from a few (16-64) labelled
  examples of a new scheme on top of a finance adapter run, evaluated before and after on held-out accounts of the
  new scheme (recall) and on held-out accounts of the old set (false-positive rate). The run folder stacks on the
  adapter run, so `LocalLLM(adapter=<adapt run>)` loads base + finance LoRA (merged) + soft prompt.
  A soft prompt shifts every answer, not only the new scheme's: trained on new-scheme rows alone it learned "be
  more suspicious" (old-set false-positive rate 4% -> 16% in a first trial). Two trials with the hardest legitimate
  rows as negatives (most rule signals) did worse: the new scheme fires no rule signal on 63 of its 86 rows, so
  "no signal -> fraud, signals -> legitimate" separated the training rows, and on held-out rows the adapted model
  ranked the new scheme below its own adapter (AUC 0.80 -> 0.73) while squashing every score towards the middle.
  So the legitimate examples are now **matched** to the fraud examples on their rule-signal sets (`matched_rows`):
  what separates the two is what the rules do not see (description, cadence, amount), the thing a new scheme needs
  learnt. Matching alone still left the soft prompt unable to find the cue in 48 steps (recall at the calibrated
  point 0), so the soft prompt starts from a text naming it (`scheme_hint`: the descriptions of the fraud examples
  that no legitimate row of the training accounts carries), the way prompt tuning is usually initialised from class
  words, and trains longer at a lower rate (configs/finance-adapt.yaml). A replay of old-set rows (from accounts
  the evaluation never sees) is mixed in, the usual rehearsal against forgetting. The adapted model is then
  **calibrated**: its decision point is raised until it flags no more of a set of old legitimate rows than the
  finance adapter did (`calibrated_threshold`), and the run folder records it (calibration.json, read by LocalLLM
  as `threshold` and used by fusion). The calibration rows are legitimate rows of the replay accounts that were not
  trained on, so the evaluation accounts stay unseen.

The finance adapter's decision is its expected level >= 2.5 (LLM_THRESHOLD on the 0-1 scale): training targets
put legitimate rows at levels 0-2 and fraud at 3-5 (targets.target_for), so 2.5 is the boundary the model learns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.atomic import write_bytes_atomic
from core.errors import NotFoundError, ValidationError
from domains.finance.features import compute_features, reasons_for, with_features
from domains.finance.llm import CALIBRATION_FILE, LLM_THRESHOLD, RiskLLM, expected_level
from domains.finance.pipeline import CascadePolicy, prompts_for
from domains.finance.training import finance_config, select_rows, training_records, write_jsonl

HINT_FALLBACK = "Watch for new fraud schemes: rate their risk by the same scale."


def llm_scores(llm: RiskLLM, frame: pd.DataFrame, feats: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """LLM score (expected level / 5) for positions `rows` of `frame`, zero-shot prompts; shape (len(rows),)."""
    if len(rows) == 0:
        return np.zeros(0)
    prompts = prompts_for(with_features(frame, feats, rows), reasons_for(feats.iloc[rows]), llm, None, CascadePolicy())
    return expected_level(llm.level_probs(prompts)) / 5.0


@dataclass
class EvalSet:
    """Rows of one labelled frame to evaluate the LLM on (positions), with the frame's features."""

    frame: pd.DataFrame
    feats: pd.DataFrame
    labels: np.ndarray
    rows: np.ndarray


def rates(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float | int | None]:
    """Recall and false-positive rate of LLM scores (shape (n,)) against 0/1 labels at `threshold`."""
    flagged = np.asarray(scores) >= threshold
    y = np.asarray(labels)
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    return {
        "recall": float((flagged & (y == 1)).sum() / pos) if pos else None,
        "fpr": float((flagged & (y == 0)).sum() / neg) if neg else None,
        "fraud": pos,
        "legit": neg,
    }


def calibrated_threshold(before: np.ndarray, after: np.ndarray) -> float:
    """The lowest decision point (>= LLM_THRESHOLD) at which `after` flags no more rows than `before` does at
    LLM_THRESHOLD; both are LLM scores of the same legitimate rows, shape (n,)."""
    allowed = int((np.asarray(before) >= LLM_THRESHOLD).sum())
    ranked = np.sort(np.asarray(after, dtype=float))[::-1]
    if allowed >= len(ranked):
        return LLM_THRESHOLD
    return float(max(LLM_THRESHOLD, np.nextafter(ranked[allowed], 1.0)))  # just above the first row to leave out


def matched_rows(labels: np.ndarray, reasons: list[list[str]], n: int, *, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most `n` adaptation examples: up to n // 2 fraud rows, then for each a legitimate row
    with the same set of fired rule reasons (a random legitimate row where none is left), then random legitimate
    rows up to `n`.

    Args:
        labels: 0/1 per row, shape (m,).
        reasons: fired reason names per row.
        n: most rows to keep.
        seed: sampling seed.
    """
    labels = np.asarray(labels, dtype=int)
    rng = np.random.default_rng(seed)
    fraud = np.flatnonzero(labels == 1)
    fraud = np.sort(rng.choice(fraud, size=min(len(fraud), n // 2), replace=False))
    pools: dict[frozenset[str], list[int]] = {}
    for i in rng.permutation(np.flatnonzero(labels == 0)):
        pools.setdefault(frozenset(reasons[i]), []).append(int(i))
    chosen: list[int] = []
    for i in fraud:
        pool = pools.get(frozenset(reasons[i]))
        if pool:
            chosen.append(pool.pop())
    left = np.setdiff1d(np.flatnonzero(labels == 0), chosen)
    extra = rng.choice(left, size=min(len(left), n - len(fraud) - len(chosen)), replace=False)
    return np.sort(np.concatenate([fraud, np.asarray(chosen, dtype=int), extra]).astype(int))


def scheme_hint(frame: pd.DataFrame, labels: np.ndarray, fraud_rows: np.ndarray, pool: np.ndarray) -> str:
    """Initial text for the soft prompt: up to three descriptions of the fraud examples (`fraud_rows`) that no
    legitimate row of `pool` (positions, the training accounts) carries, most frequent first."""
    from collections import Counter

    text = (
        frame["description"].fillna("").astype(str).str.strip().str.lower().to_numpy()
        if "description" in frame
        else None
    )
    if text is None:
        return HINT_FALLBACK
    legit = set(text[pool[np.asarray(labels)[pool] == 0]])
    counts = Counter(t for t in text[fraud_rows] if t and t not in legit)
    names = [t for t, _ in counts.most_common(3)]
    if not names:
        return HINT_FALLBACK
    return "New fraud scheme: " + "; ".join(f'"{n}"' for n in names) + ". Rate such transactions 3 or higher."


def split_accounts(frame: pd.DataFrame, labels: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train positions, held-out positions): accounts with fraud and without are each split in half, by account."""
    accounts = frame["account_id"].astype(str).to_numpy()
    fraud_accounts = np.unique(accounts[np.asarray(labels) == 1])
    clean_accounts = np.setdiff1d(np.unique(accounts), fraud_accounts)
    rng = np.random.default_rng(seed)
    held = set()
    for group in (fraud_accounts, clean_accounts):
        shuffled = rng.permutation(group)
        held.update(shuffled[: len(shuffled) // 2].tolist())
    is_held = np.isin(accounts, list(held))
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def _sample(labels: np.ndarray, rows: np.ndarray, n_fraud: int, n_legit: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fraud, legit = rows[labels[rows] == 1], rows[labels[rows] == 0]
    fraud = rng.choice(fraud, size=min(n_fraud, len(fraud)), replace=False)
    legit = rng.choice(legit, size=min(n_legit, len(legit)), replace=False)
    return np.sort(np.concatenate([fraud, legit]).astype(int))


def adapt(
    examples: pd.DataFrame,
    labels: np.ndarray,
    adapter_run: Path,
    out_dir: Path,
    *,
    old: pd.DataFrame | None = None,
    old_labels: np.ndarray | None = None,
    n_examples: int = 64,
    n_replay: int = 32,
    n_eval_legit: int = 200,
    extra: list[str] | None = None,
    overrides: list[str] | None = None,
    show_progress: bool = True,
) -> dict[str, object]:
    """Learn a soft prompt for a new scheme on top of `adapter_run`, calibrate its decision point; returns (and
    writes) adaptation.json.

    Args:
        examples: labelled history containing the new scheme (canonical columns); accounts are split in half:
            training examples come from one half, the held-out evaluation from the other.
        labels: 0/1 per row of `examples`.
        adapter_run: the finance adapter run folder to stack on.
        out_dir: where records, the run folder (out_dir/finance-adapt), adaptation.json and adaptation_scores.csv
            (every evaluated row's score before and after) go.
        old: the old labelled set, for replay, calibration and the false-positive rate before and after
            (optional: without it, calibration uses legitimate rows of the examples' training accounts).
        old_labels: its labels.
        n_examples: training examples (16-64): half new-scheme fraud (as many as there are), the rest legitimate
            rows of the same accounts matched on rule signals (`matched_rows`).
        n_replay: old-set rows mixed into training (training.select_rows of one half of its accounts); 0: none.
        n_eval_legit: legitimate rows sampled for each false-positive rate, and for calibration.
    """
    from core.finetune.load import is_run_folder
    from core.finetune.run import run_training
    from domains.finance.llm import LocalLLM

    if not 16 <= n_examples <= 64:
        raise ValidationError(f"--n-examples must be between 16 and 64, not {n_examples}")
    if not is_run_folder(Path(adapter_run)):
        raise NotFoundError(f"--adapter {adapter_run} is not a finished finance adapter run (`finmed train ...`)")
    labels = np.asarray(labels, dtype=int)
    examples = examples.reset_index(drop=True)
    feats = compute_features(examples, extra)
    train_pos, held_pos = split_accounts(examples, labels)
    if labels[train_pos].sum() == 0 or labels[held_pos].sum() == 0:
        raise ValidationError("the examples need fraud rows on at least two accounts (one to learn, one to test)")
    reasons = reasons_for(feats)
    train_rows = train_pos[matched_rows(labels[train_pos], [reasons[i] for i in train_pos], n_examples, seed=1)]
    sets = {"new_scheme_heldout": EvalSet(examples, feats, labels, _sample(labels, held_pos, 10**9, n_eval_legit, 2))}
    records = training_records(examples, labels, rows=train_rows, features=feats)
    n_new = len(records)
    if old is None or old_labels is None:
        calibration = EvalSet(
            examples, feats, labels, _sample(labels, np.setdiff1d(train_pos, train_rows), 0, n_eval_legit, 5)
        )
        source = "legitimate rows of the examples' training accounts, not trained on"
    else:
        old = old.reset_index(drop=True)
        old_feats = compute_features(old, extra)
        old_labels = np.asarray(old_labels, dtype=int)
        replay_pos, eval_pos = split_accounts(old, old_labels, seed=3)
        sets["old_set"] = EvalSet(old, old_feats, old_labels, _sample(old_labels, eval_pos, 50, n_eval_legit, 3))
        replay = np.zeros(0, dtype=int)
        if n_replay > 0:
            old_reasons = reasons_for(old_feats.iloc[replay_pos])
            replay = replay_pos[select_rows(old_labels[replay_pos], old_reasons, n_replay, seed=4)]
            records += training_records(old, old_labels, rows=replay, features=old_feats)
        calibration = EvalSet(
            old, old_feats, old_labels, _sample(old_labels, np.setdiff1d(replay_pos, replay), 0, n_eval_legit, 5)
        )
        source = "legitimate old-set rows of the replay accounts, not trained on"
    sets["calibration"] = calibration

    def score_all(llm: RiskLLM) -> dict[str, np.ndarray]:
        return {name: llm_scores(llm, data.frame, data.feats, data.rows) for name, data in sets.items()}

    before = score_all(LocalLLM(adapter=adapter_run))
    data = write_jsonl(records, out_dir / "adapt.jsonl")
    hint = scheme_hint(examples, labels, train_rows[labels[train_rows] == 1], train_pos)
    config = finance_config(
        "finance-adapt.yaml",
        [
            f"model.base={Path(adapter_run).resolve()}",
            f"method.prompt_init_text={json.dumps(hint)}",
            f"dataset.path={data}",
            f"output.dir={out_dir}",
            "output.name=finance-adapt",
            "output.overwrite=true",
        ]
        + list(overrides or []),
    )
    run = run_training(config, show_progress=show_progress)
    after = score_all(LocalLLM(adapter=run))
    threshold = calibrated_threshold(before["calibration"], after["calibration"])
    note = {
        "threshold": threshold,
        "rows": len(calibration.rows),
        "source": source,
        "flagged_before": int((before["calibration"] >= LLM_THRESHOLD).sum()),
        "flagged_after_uncalibrated": int((after["calibration"] >= LLM_THRESHOLD).sum()),
    }
    write_bytes_atomic(run / CALIBRATION_FILE, json.dumps(note, indent=2).encode())
    evaluated = [name for name in sets if name != "calibration"]

    def table(scores: dict[str, np.ndarray], cut: float) -> dict[str, object]:
        return {name: rates(scores[name], sets[name].labels[sets[name].rows], cut) for name in evaluated}

    result: dict[str, object] = {
        "run": str(run),
        "adapter_run": str(adapter_run),
        "train_examples": n_new,
        "train_fraud": int(labels[train_rows].sum()),
        "replay_examples": len(records) - n_new,
        "prompt_init_text": hint,
        "threshold": threshold,
        "calibration": note,
        "before": table(before, LLM_THRESHOLD),
        "after": table(after, threshold),
        "after_uncalibrated": table(after, LLM_THRESHOLD),
    }
    scores = pd.concat(
        [
            pd.DataFrame(
                {
                    "set": name,
                    "row": data.rows,
                    "label": data.labels[data.rows],
                    "before": before[name],
                    "after": after[name],
                }
            )
            for name, data in sets.items()
        ],
        ignore_index=True,
    )
    write_bytes_atomic(out_dir / "adaptation_scores.csv", scores.to_csv(index=False).encode())
    write_bytes_atomic(out_dir / "adaptation.json", json.dumps(result, indent=2).encode())
    return result
