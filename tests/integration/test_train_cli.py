"""End-to-end: the real `finmed train` command on the tiny model, and its one-line errors with non-zero exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _finmed(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FINMED_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from core.cli import main; main()", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_train_writes_a_run_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = _finmed(
        "train", "configs/train-lora-tiny.yaml", "--set", f"model.base={tiny_model_dir}", "--set", "train.max_steps=3",
        "--quiet", data_dir=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "lora-tiny"
    assert "run written to" in result.stdout
    assert {"config.yaml", "adapter", "tokenizer", "metrics.jsonl", "metrics.prom", "eval.json", "loss.png"} <= {
        p.name for p in run.iterdir()
    }
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4  # 3 steps + the final evaluation
    assert json.loads((run / "eval.json").read_text())["steps"] == 3
    assert f"base: {tiny_model_dir}" in (run / "config.yaml").read_text()


def test_bad_inputs_exit_non_zero_with_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "records.jsonl"
    bad.write_text('{"instruction": "no answer here"}\n')
    cases = [
        (["--set", "train.lrr=1"], "unknown key 'train.lrr'"),
        (["--set", "train.batch_size=zero"], "bad value for 'train.batch_size'"),
        (["--set", f"dataset.path={bad}"], "records.jsonl line 1: no assistant answer"),
    ]
    for extra, needle in cases:
        result = _finmed("train", "configs/train-lora-tiny.yaml", "--set", f"model.base={tiny_model_dir}", *extra,
                         data_dir=tmp_path / "var")  # fmt: skip
        assert result.returncode != 0
        assert needle in result.stderr and result.stderr.startswith("error:"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "var" / "runs").exists()
