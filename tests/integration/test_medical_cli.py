"""`finmed medical ...` end to end in a subprocess on synthetic reports with the tiny model: synth, label,
backtest (metrics.json keys), train + register, draft + store, worklist, sign (role refused), addendum."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from domains.medical.backtest import METRICS_KEYS, VARIANT_KEYS
from domains.medical.labeler import FINDINGS

FINMED = str(Path(sys.executable).parent / "finmed")
QUICK = ["--set", "dataset.max_length=160", "--set", "method.lora_layers=null", "--set", "train.batch_size=4"]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FINMED, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=600)


@pytest.fixture
def env(tmp_path: Path, tiny_model_dir: Path) -> dict[str, str]:
    return {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_BASE_MODEL": str(tiny_model_dir), "HF_HUB_OFFLINE": "1"}


def test_synth_label_and_backtest(tmp_path: Path, env: dict[str, str]) -> None:
    reports = tmp_path / "reports"
    assert (
        run("medical", "synth", "--out", str(reports), "--n", "12", "--hospital", "riverside", env=env).returncode == 0
    )
    (reports / "zz-no-impression.txt").write_text("FINDINGS: Small left effusion.\n")
    done = run("medical", "label", "--reports", str(reports), "--out", str(tmp_path / "labels.jsonl"), env=env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert len(lines) == 13 and lines[-1] == {"report": "zz-no-impression", "labels": {"pleural_effusion": "present"}}
    assert all(set(x["labels"]) <= set(FINDINGS) for x in lines)
    out = tmp_path / "bt"
    done = run("medical", "backtest", "--reports", str(reports), "--max-steps", "2", "--out", str(out),
               "--stage1-records", "10", "--stage1-reports", "8", "--stage1-steps", "2", "--stage1-exclude-style",
               "riverside", *QUICK, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert tuple(metrics) == METRICS_KEYS
    assert all(tuple(metrics[v]) == VARIANT_KEYS for v in ("base", "stage2", "two_stage"))
    assert metrics["n_train"] == 10 and metrics["n_test"] == 2 and metrics["skipped"] == {"no impression section": 1}
    assert "| two_stage |" in (out / "report.md").read_text()
    assert (Path(env["FINMED_DATA_DIR"]) / "medical" / "stage1-cache").is_dir()  # stage 1 cached for the next run
    # stage 1's mix is recorded: vocabulary records and a general corpus without the reports' own style
    (lineage,) = (Path(env["FINMED_DATA_DIR"]) / "medical" / "stage1-cache").glob("*/stage1-base/lineage.json")
    recorded = json.loads(lineage.read_text())
    assert recorded["mix"]["reports"] == 8 and "riverside" not in recorded["mix"]["styles"]
    corpus = {k: v for k, v in recorded["records"]["by_source"].items() if k.startswith("general-corpus:")}
    assert sum(corpus.values()) == 8 and "general-corpus:riverside" not in corpus
    assert recorded["config"]["train"]["max_steps"] == 2
    assert "Stage 1 (two_stage): " in (out / "report.md").read_text()


def test_train_register_draft_store_and_sign(tmp_path: Path, env: dict[str, str]) -> None:
    assert run("db", "upgrade", env=env).returncode == 0
    for name, role in (("eng", "engineer"), ("rad", "radiologist"), ("ana", "analyst")):
        assert run("users", "add", name, "--role", role, "--password", "pw-12345678", env=env).returncode == 0
    reports, studies = tmp_path / "reports", tmp_path / "studies"
    run("medical", "synth", "--out", str(reports), "--n", "10", "--hospital", "northgate", env=env)
    run("medical", "synth", "--out", str(studies), "--n", "2", "--hospital", "northgate", "--seed", "5", env=env)
    done = run("medical", "train", "--stage", "2", "--reports", str(reports), "--hospital", "northgate",
               env=env)  # fmt: skip
    assert done.returncode != 0 and "stage-1 base" in done.stderr + done.stdout  # stage 1 first, or --from-base
    done = run("medical", "train", "--stage", "2", "--reports", str(reports), "--hospital", "northgate", "--from-base",
               "--set", "train.max_steps=2", *QUICK, "--register-as", "eng", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"registered medical-northgate v1 \((int8|fp32)\)", done.stdout), done.stdout
    assert "vs fp32" in done.stdout  # the export's measured drop is shown
    drafts = tmp_path / "drafts.jsonl"
    done = run("medical", "draft", "--in", str(studies), "--hospital", "northgate", "--out", str(drafts), "--store",
               "--as", "rad", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in drafts.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["model"] == "medical-northgate" and rows[0]["model_version"] == 1
    assert "queued 2 for radiologists" in done.stdout
    listed = run("medical", "worklist", "--as", "rad", "--hospital", "northgate", env=env)
    ids = re.findall(r"draft (\d+)", listed.stdout)
    assert len(ids) == 2, listed.stdout
    refused = run("medical", "sign", ids[0], "--as", "ana", env=env)
    assert refused.returncode != 0 and "role 'analyst' of user 'ana' is not allowed" in refused.stderr
    signed = run("medical", "sign", ids[0], "--text", "No acute cardiopulmonary process.", "--as", "rad", env=env)
    assert signed.returncode == 0, signed.stderr
    sid = re.search(r"signed report (\d+)", signed.stdout).group(1)  # type: ignore[union-attr]
    assert run("medical", "addendum", sid, "--text", "Rib fracture noted.", "--as", "rad", env=env).returncode == 0
    agreed = run("medical", "agreement", "--as", "rad", env=env)
    assert "rad: 1 signed, 100% edited" in agreed.stdout
