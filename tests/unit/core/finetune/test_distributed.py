"""Distributed fine-tuning on 2 CPU processes (Gloo) through the real launcher (torchrun): DDP, FSDP, tensor and
pipeline parallel follow one process's loss and gradient-norm trajectory on the same global batch; a run saved by
2 ranks resumes with 1 on the same trajectory; only rank 0 writes the run folder.

Tolerance: rel 1e-4 on losses and grad norms. The ranks sum the same answer-token losses in another order (float32
rounding, ~1e-7 per step) and AdamW carries that over 3-4 steps; a wrong loss scale or a missing gradient sync
moves the grad norm by a factor (2x for a mean taken twice), far outside it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.finetune.launch import LaunchFailed, launch
from core.finetune.recipe import resolve_paths
from core.finetune.run import run_training
from core.settings import get_settings

pytestmark = pytest.mark.skipif(
    not __import__("torch").distributed.is_gloo_available(), reason="torch was built without Gloo"
)
REPO = Path(__file__).resolve().parents[4]
# 20 records, 18 for training, 4 per micro-batch: 5 micro-batches, the last one of 2 rows (1 per rank).
SMALL = ("dataset.limit=20", "dataset.max_length=48", "train.max_steps=3", "train.lr=0.005")


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


def _trajectory(rows: list[dict]) -> list[float]:
    return [value for r in rows for value in (r["loss"], r["grad_norm"])]


def _launch(config, **kwargs) -> Path:  # type: ignore[no-untyped-def]
    return launch(resolve_paths(config), **kwargs)


def test_ddp_tp_pp_follow_one_process(tiny_train_config) -> None:
    lora = (*SMALL, "method.lora_dropout=0.0", "method.lora_target=[q_proj,v_proj,o_proj,down_proj]")
    single = _rows(run_training(tiny_train_config(*lora, "output.name=single"), show_progress=False))
    for strategy in ("ddp", "tp", "pp"):
        config = tiny_train_config(*lora, f"strategy.name={strategy}", "strategy.nproc=2", f"output.name={strategy}")
        run = _launch(config)
        rows = _rows(run)
        assert _trajectory(rows) == pytest.approx(_trajectory(single), rel=1e-4), strategy
        assert all(r["world_size"] == 2 and len(r["peak_mem_mb_per_rank"]) == 2 for r in rows)
        assert all(r["peak_mem_mb"] == max(r["peak_mem_mb_per_rank"]) for r in rows)
        assert [r["tokens"] for r in rows] == [r["tokens"] for r in single]  # ranks' shares add up to the batch
        assert (run / "adapter" / "adapter_config.json").is_file() and (run / "metrics.prom").is_file()
        prom = (run / "metrics.prom").read_text()
        assert "finmed_train_grad_norm" in prom and 'finmed_train_rank_peak_memory_megabytes{rank="1"' in prom
        assert json.loads((run / "eval.json").read_text())["eval_loss"] == pytest.approx(
            json.loads((get_settings().runs_dir / "single" / "eval.json").read_text())["eval_loss"], rel=1e-4
        )
    assert sorted(p.name for p in get_settings().runs_dir.iterdir()) == ["ddp", "pp", "single", "tp"]


def test_fsdp_saves_with_2_ranks_and_resumes_with_1(tiny_train_config) -> None:
    full = (*SMALL, "method.name=full", "train.max_steps=4", "train.save_steps=2", "train.lr=0.001")
    reference = _rows(run_training(tiny_train_config(*full, "output.name=reference"), show_progress=False))
    config = tiny_train_config(*full, "strategy.name=fsdp", "strategy.nproc=2", "output.name=sharded")
    with pytest.raises(LaunchFailed):
        _launch(config, extra=["--stop-after", "3"])  # dies after step 3; the step-2 checkpoint stays
    partial = get_settings().runs_dir / ".sharded.partial"
    fsdp_rows = _rows(partial)
    assert [r["world_size"] for r in fsdp_rows] == [2, 2, 2]
    assert _trajectory(fsdp_rows) == pytest.approx(_trajectory(reference[:3]), rel=1e-4)
    one = config.model_copy(deep=True)
    one.strategy.name, one.strategy.nproc = "single", 1
    resumed = run_training(one, resume=True, show_progress=False)
    rows = _rows(resumed)
    assert [r["world_size"] for r in rows] == [2, 2, 1, 1]
    assert _trajectory(rows) == pytest.approx(_trajectory(reference), rel=1e-4)
    assert (resumed / "model" / "config.json").is_file() and not partial.exists()


def test_tp_logits_and_pp_loss_equal_the_unsplit_model(tiny_model_dir: Path) -> None:
    script = Path(__file__).with_name("parallel_check.py")
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    done = subprocess.run([*argv, str(tiny_model_dir)], capture_output=True, text=True, cwd=REPO, timeout=240)
    # the two ranks share one stdout pipe, so their lines may interleave: each report is found by its pattern
    lines = re.findall(r"rank \d+: tp logits max diff \S+; pp loss diff \S+; grad [0-9.e+-]+\d", done.stdout)
    assert done.returncode == 0, "\n".join(lines) or done.stderr[-3000:]
    assert sorted(line[:6] for line in lines) == ["rank 0", "rank 1"], done.stdout[-2000:]
