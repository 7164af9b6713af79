"""`finmed finance ...` end to end in a subprocess on small synthetic data with the tiny model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

FINMED = str(Path(sys.executable).parent / "finmed")
KEYS = {"auc", "average_precision", "accuracy", "precision", "recall", "fpr", "threshold"}


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FINMED, "finance", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=600
    )


@pytest.fixture
def env(tmp_path: Path, tiny_model_dir: Path) -> dict[str, str]:
    return {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_BASE_MODEL": str(tiny_model_dir), "HF_HUB_OFFLINE": "1"}


def test_synth_backtest_fit_score_store_make_training(tmp_path: Path, env: dict[str, str]) -> None:
    tx = tmp_path / "tx.csv"
    assert (
        run(
            "synth", "--out", str(tx), "--accounts", "60", "--seed", "3", "--days", "20", "--fraud-rate", "0.3", env=env
        ).returncode
        == 0
    )
    frame = pd.read_csv(tx)
    assert {"is_fraud", "scheme", "account_id"} <= set(frame.columns)

    out = tmp_path / "bt"
    result = run(
        "backtest", "--in", str(tx), "--label-column", "is_fraud", "--llm-budget", "3", "--out", str(out), env=env
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"numeric", "llm", "fused", "n_train", "n_test", "llm_scored", "rows", "levels", "fusion"} <= set(metrics)
    assert metrics["rows"] == {"input": len(frame), "scored": len(frame), "rejected": 0, "flagged": 0}
    assert [lv["level"] for lv in metrics["levels"]] == list(range(6))
    assert set(metrics["fusion"]) == {"weight", "llm_used", "reason"}
    assert all(set(metrics[v]) == KEYS for v in ("numeric", "llm", "fused"))
    assert metrics["n_train"] + metrics["n_test"] == len(frame)
    assert metrics["n_train"] == round(0.7 * len(frame))
    assert 0.0 <= metrics["numeric"]["average_precision"] <= 1.0
    report = (out / "report.md").read_text()
    assert "Confusion" in report and "Calibration by risk level" in report
    assert (out / "pr_curve.png").stat().st_size > 0 and (out / "calibration.png").stat().st_size > 0
    assert not list(out.glob("*.tmp"))

    assert run("fit", "--in", str(tx), env=env).returncode == 0
    indexed = run("index-cases", "--in", str(tx), "--collection", "finance_cases", env=env)
    assert indexed.returncode == 0 and "indexed" in indexed.stdout, indexed.stderr
    assert subprocess.run([FINMED, "db", "upgrade"], env={**os.environ, **env}, capture_output=True).returncode == 0
    add = [FINMED, "users", "add", "ana", "--role", "analyst", "--password", "a-long-password-1"]
    assert subprocess.run(add, env={**os.environ, **env}, capture_output=True).returncode == 0
    renamed = frame.drop(columns=["is_fraud"]).rename(columns={"amount": "amt"})
    renamed.loc[5, "amt"] = -1
    renamed.loc[9, "timestamp"] = "yesterday-ish"
    bad_input = tmp_path / "renamed.csv"
    renamed.to_csv(bad_input, index=False)
    scored_path = tmp_path / "scored.csv"
    result = run(
        "score",
        "--in",
        str(bad_input),
        "--out",
        str(scored_path),
        "--map",
        "amount=amt",
        "--llm-budget",
        "2",
        "--cases",
        "finance_cases",
        "--store",
        "--as",
        "ana",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    queued = re.search(r"(\d+) outputs recorded, (\d+) queued for review", result.stdout)
    assert queued and int(queued.group(2)) >= 1, result.stdout
    listing = subprocess.run(
        [FINMED, "review", "queue", "--as", "ana", "--domain", "finance"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0 and "analyst" in listing.stdout, listing.stdout + listing.stderr
    assert "row 6: negative amount" in result.stderr and "row 10: unparseable timestamp" in result.stderr
    scored = pd.read_csv(scored_path)
    assert len(scored) == len(frame) - 2 and scored["adjudicated"].sum() <= 2
    assert scored["risk_level"].between(0, 5).all()

    records = tmp_path / "records.jsonl"
    assert run("make-training", "--in", str(tx), "--out", str(records), env=env).returncode == 0
    lines = records.read_text().splitlines()
    assert len(lines) == 512  # the default --max-records: every fraud row (fewer than half here), then legitimate
    metas = [json.loads(line)["meta"] for line in lines]
    assert sum(m["label"] for m in metas) == int(frame["is_fraud"].sum())
    assert {m["level"] >= 3 for m in metas if m["label"]} == {True} and max(
        m["level"] for m in metas if not m["label"]
    ) <= 2
    first = json.loads(lines[0])
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][2]["content"].startswith("Risk level: ")


def test_bad_mapping_and_label_are_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    tx = tmp_path / "tx.csv"
    assert run("synth", "--out", str(tx), "--accounts", "10", env=env).returncode == 0
    for args, needle in (
        (["--map", "amount=price"], "not in the file: amount=price"),
        (["--map", "money=amount"], "unknown field 'money'"),
        (["--label-column", "nope"], "label column 'nope' not in the input"),
    ):
        full = ["backtest", "--in", str(tx), "--out", str(tmp_path / "o"), *args]
        if "--label-column" not in args:
            full += ["--label-column", "is_fraud"]
        result = run(*full, env=env)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode != 0 and len(lines) == 1 and needle in lines[0], result.stderr
    assert not (tmp_path / "o").exists()
    missing = run("score", "--in", str(tx), "--out", str(tmp_path / "s.csv"), env=env)
    assert missing.returncode != 0 and "finmed finance fit" in missing.stderr
