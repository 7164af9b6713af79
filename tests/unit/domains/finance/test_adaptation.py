"""Training-row selection, the finance adapter through core.finetune, backtest --finetune and few-shot adaptation.

The mechanics run on the tiny random model (a few optimizer steps); whether adaptation helps is measured with the
default model by bench/finance.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import NotFoundError, ValidationError
from core.finetune.load import is_run_folder, read_run_config
from domains.finance.adaptation import (
    HINT_FALLBACK,
    adapt,
    calibrated_threshold,
    matched_rows,
    scheme_hint,
    split_accounts,
)
from domains.finance.backtest import run_backtest
from domains.finance.features import compute_features, reasons_for
from domains.finance.pipeline import CascadePolicy
from domains.finance.synthetic import generate, generate_new_scheme
from domains.finance.training import select_rows, train_adapter

QUICK = [
    "train.epochs=1",
    "train.max_steps=2",
    "train.batch_size=4",
    "method.lora_layers=null",
    "dataset.max_length=256",
]


def test_select_rows_keeps_fraud_hard_and_random_legit() -> None:
    labels = np.array([1] * 5 + [0] * 95)
    reasons = [["x"]] * 5 + [["a", "b", "c"]] * 10 + [[]] * 85
    rows = select_rows(labels, reasons, 40, seed=1)
    assert len(rows) == 40 and np.all(np.diff(rows) > 0)
    assert set(range(5)) <= set(rows.tolist())  # every fraud row (fewer than half)
    assert set(range(5, 15)) <= set(rows.tolist())  # the hardest legitimate rows (most reasons fired)
    assert len(set(rows.tolist()) & set(range(15, 100))) == 25  # and the rest from ordinary rows
    capped = select_rows(np.array([1] * 80 + [0] * 20), [[]] * 100, 40)
    assert int((capped < 80).sum()) == 20  # fraud is at most half
    assert len(select_rows(labels, reasons, 0)) == 100


def test_split_accounts_is_by_account() -> None:
    frame = generate_new_scheme(40, seed=4, days=10)
    y = frame["is_fraud"].to_numpy()
    train, held = split_accounts(frame, y)
    accounts = frame["account_id"].to_numpy()
    assert not set(accounts[train]) & set(accounts[held])
    assert y[train].sum() > 0 and y[held].sum() > 0 and len(train) + len(held) == len(frame)


@pytest.fixture(scope="module")
def adapter_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = generate(40, seed=5, days=15, fraud_rate=0.3)
    y = frame["is_fraud"].to_numpy()
    out = tmp_path_factory.mktemp("finance-adapter")
    run = train_adapter(
        frame, y, out, max_records=24, overrides=[f"model.base={tiny_model_dir}", *QUICK], show_progress=False
    )
    return run


def test_train_adapter_writes_a_lora_run(adapter_run: Path) -> None:
    assert is_run_folder(adapter_run) and read_run_config(adapter_run).method.name == "lora"
    lines = (adapter_run.parent / "training.jsonl").read_text().splitlines()
    assert len(lines) == 24
    assert all(json.loads(line)["messages"][-1]["content"].startswith("Risk level: ") for line in lines)


def test_adapt_stacks_a_soft_prompt_and_reports_before_and_after(adapter_run: Path, tmp_path: Path) -> None:
    new = generate_new_scheme(30, seed=6, days=10, rate=0.3)
    old = generate(20, seed=7, days=10)
    result = adapt(
        new,
        new["is_fraud"].to_numpy(),
        adapter_run,
        tmp_path,
        old=old,
        old_labels=old["is_fraud"].to_numpy(),
        n_examples=16,
        n_eval_legit=10,
        overrides=QUICK[:3],
        show_progress=False,
    )
    run = Path(str(result["run"]))
    config = read_run_config(run)
    assert config.method.name == "prompt_tuning" and Path(config.model.base) == adapter_run.resolve()
    assert result["train_examples"] == 16 and 1 <= int(result["train_fraud"]) <= 8  # type: ignore[call-overload]
    replayed = int(result["replay_examples"])  # type: ignore[call-overload]
    assert 0 < replayed <= 32
    assert len((tmp_path / "adapt.jsonl").read_text().splitlines()) == 16 + replayed
    from domains.finance.llm import LocalLLM

    tuned = LocalLLM(adapter=run, batch_size=3)
    prompts = [tuned.render([{"role": "user", "content": "x" * n}]) + "Risk level: " for n in (1, 30, 7)]
    alone = np.concatenate([tuned.level_probs([p]) for p in prompts])
    np.testing.assert_allclose(tuned.level_probs(prompts), alone, atol=1e-4)  # padding does not move the soft prompt
    generated = np.stack([a.level_probs for a in tuned.answer(prompts, max_new_tokens=1)])  # type: ignore[misc]
    np.testing.assert_allclose(generated, alone, atol=1e-3)  # generation runs batched with a cache: float noise
    saved = json.loads((tmp_path / "adaptation.json").read_text())
    for when in ("before", "after", "after_uncalibrated"):
        assert set(saved[when]) == {"new_scheme_heldout", "old_set"}
        held = saved[when]["new_scheme_heldout"]
        assert held["fraud"] > 0 and held["legit"] == 10 and 0.0 <= held["recall"] <= 1.0
        assert 0.0 <= saved[when]["old_set"]["fpr"] <= 1.0
    # the calibrated decision point travels with the run: LocalLLM reads it, and it is what "after" was measured at
    note = json.loads((run / "calibration.json").read_text())
    assert tuned.threshold == note["threshold"] == saved["threshold"] >= 0.5 and note["rows"] == 10
    scores = pd.read_csv(tmp_path / "adaptation_scores.csv")
    assert set(scores["set"]) == {"new_scheme_heldout", "old_set", "calibration"}
    calib = scores[scores["set"] == "calibration"]
    assert (calib["label"] == 0).all() and len(calib) == 10
    assert (calib["after"] >= note["threshold"]).sum() <= (calib["before"] >= 0.5).sum() == note["flagged_before"]
    old_rows = scores[scores["set"] == "old_set"]
    legit_after = old_rows.loc[old_rows["label"] == 0, "after"].to_numpy()
    assert saved["after"]["old_set"]["fpr"] == pytest.approx(float((legit_after >= note["threshold"]).mean()))
    assert not set(calib["row"]) & set(old_rows["row"])  # calibration accounts are not evaluation accounts


def test_matched_rows_pairs_each_fraud_example_with_a_legit_row_of_the_same_signals() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    reasons = [[], ["new_merchant"], ["night_time"], ["new_merchant"], [], ["large_amount"], [], [], [], ["x"]]
    rows = matched_rows(labels, reasons, 6, seed=0)
    assert len(rows) == 6 and labels[rows].sum() == 3
    legit = [frozenset(reasons[i]) for i in rows if labels[i] == 0]
    assert legit.count(frozenset()) >= 1 and legit.count(frozenset({"new_merchant"})) == 1  # night_time: no match
    assert len(matched_rows(labels, reasons, 4, seed=0)) == 4 and labels[matched_rows(labels, reasons, 4)].sum() == 2


def test_scheme_hint_names_descriptions_only_the_fraud_examples_carry() -> None:
    frame = pd.DataFrame(
        {
            "description": [
                "Subscription renewal",
                "online order",
                "subscription renewal",
                "online order",
                "coffee",
                "membership fee",
            ]
        }
    )
    labels = np.array([1, 1, 1, 0, 0, 0])
    hint = scheme_hint(frame, labels, np.array([0, 1, 2]), np.arange(5))  # row 5 is outside the pool
    assert hint == 'New fraud scheme: "subscription renewal". Rate such transactions 3 or higher.'
    assert scheme_hint(frame, labels, np.array([1]), np.arange(6)) == HINT_FALLBACK  # "online order" is ordinary
    assert scheme_hint(frame.drop(columns="description"), labels, np.array([0]), np.arange(6)) == HINT_FALLBACK


def test_calibrated_threshold_flags_no_more_than_before() -> None:
    before = np.array([0.1, 0.2, 0.55, 0.3, 0.6])  # 2 flagged at 0.5
    after = np.array([0.7, 0.8, 0.9, 0.4, 0.65])  # 4 flagged at 0.5
    t = calibrated_threshold(before, after)
    assert 0.7 < t <= 0.8 and int((after >= t).sum()) == 2
    assert calibrated_threshold(before, np.array([0.1, 0.2, 0.3, 0.4, 0.6])) == 0.5  # never lowered below 0.5
    assert calibrated_threshold(np.zeros(3), np.array([0.9, 0.9, 0.2])) > 0.9  # ties are both left out
    assert calibrated_threshold(np.zeros(0), np.zeros(0)) == 0.5


def test_read_threshold_refuses_a_bad_calibration_file(tmp_path: Path) -> None:
    from domains.finance.llm import LLM_THRESHOLD, read_threshold

    assert read_threshold(tmp_path) == LLM_THRESHOLD
    (tmp_path / "calibration.json").write_text('{"threshold": 1.5}')
    with pytest.raises(ValidationError, match="between 0 and 1"):
        read_threshold(tmp_path)
    (tmp_path / "calibration.json").write_text('{"rows": 3}')
    with pytest.raises(ValidationError, match="calibration.json"):
        read_threshold(tmp_path)


def test_adapt_refuses_bad_input(adapter_run: Path, tmp_path: Path) -> None:
    new = generate_new_scheme(30, seed=6, days=10, rate=0.3)
    with pytest.raises(ValidationError, match="between 16 and 64"):
        adapt(new, new["is_fraud"].to_numpy(), adapter_run, tmp_path, n_examples=8)
    with pytest.raises(NotFoundError, match="not a finished finance adapter run"):
        adapt(new, new["is_fraud"].to_numpy(), tmp_path, tmp_path)
    with pytest.raises(ValidationError, match="fraud rows on at least two accounts"):
        adapt(new, np.zeros(len(new), dtype=int), adapter_run, tmp_path)
    assert not (tmp_path / "adaptation.json").exists()


def test_backtest_finetune_trains_on_the_early_part_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    frame = generate(50, seed=8, days=20, fraud_rate=0.3)
    y = frame["is_fraud"].to_numpy()
    result = run_backtest(
        frame,
        y,
        policy=CascadePolicy(budget=3, k_examples=0, max_new_tokens=4),
        finetune_dir=tmp_path,
        finetune_records=16,
        finetune_overrides=[f"model.base={tiny_model_dir}", *QUICK],
        test_budget=3,  # the tiny adapter shows no gain on the validation slice: forced on the test part
    )
    assert int(result.scored["adjudicated"].sum()) == 3
    assert result.metrics["fusion"]["llm_used"] is False and result.metrics["llm_cost"]["forced"] is True
    records = [json.loads(line)["meta"] for line in (tmp_path / "training.jsonl").read_text().splitlines()]
    order = np.argsort(frame["timestamp"].to_numpy(), kind="stable")
    train = order[: round(0.7 * len(frame))]
    # the adapter trains before the validation slice (the latest quarter of the training part) only
    early = set(frame["transaction_id"].to_numpy()[train][: round(0.75 * len(train))])
    assert records and {r["transaction_id"] for r in records} <= early
    feats = compute_features(frame)
    assert len(reasons_for(feats)) == len(frame)


def test_finance_adapter_exports_to_int4_and_scores(adapter_run: Path, tmp_path: Path) -> None:
    """`finmed export --run <finance-lora run>` takes the run folder itself (merged through core.finetune.load)."""
    from core.quantize.export import export_model
    from core.quantize.precisions import ExportOptions
    from domains.finance.llm import OnnxLLM

    result = export_model(options=ExportOptions("int4"), out_dir=tmp_path / "int4", run_dir=adapter_run)
    assert result.method == "lora"
    llm = OnnxLLM(result.path)
    prompt = llm.render([{"role": "user", "content": "amount: 5.00 USD"}]) + "Risk level: "
    probs = llm.level_probs([prompt])
    assert probs.shape == (1, 6) and np.isclose(probs.sum(), 1.0)
