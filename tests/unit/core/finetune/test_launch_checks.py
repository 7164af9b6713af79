"""Launches that cannot run here are refused before any process starts, with one line naming the setting; the
ZeRO-3 + offload block generates a config DeepSpeed's own parser accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ValidationError
from core.finetune.launch import check_launch, torchrun_argv

REPO = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize(
    ("overrides", "cores", "message"),
    [
        (("strategy.name=ddp", "strategy.nproc=3"), 2, "--nproc 3 is more than the 2 CPU cores"),
        (("strategy.name=tp", "strategy.nproc=2", "strategy.tp=3", "strategy.dp=1"), 2, "tp 3 x pp 1 x dp 1"),
        (("strategy.name=pp", "strategy.nproc=3", "strategy.tp=1"), 3, "--pp 3 is more pipeline stages than"),
        (("strategy.name=ddp", "strategy.nproc=2", "strategy.nnodes=2"), 2, "needs --master-addr"),
        (("strategy.name=deepspeed",), 2, "strategy deepspeed needs CUDA"),
        (("strategy.name=tp", "strategy.nproc=2", "method.name=ia3"), 2, "method.name=ia3 cannot be trained"),
        (("strategy.nproc=2",), 2, "choose strategy ddp, fsdp"),
    ],
    ids=["nproc-above-cores", "tp-world-mismatch", "pp-above-layers", "multinode-no-master", "deepspeed-no-cuda",
         "tp-method", "nproc-without-strategy"],
)  # fmt: skip
def test_bad_launch_is_one_line(tiny_train_config, overrides, cores, message) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        check_launch(tiny_train_config(*overrides), cuda=False, cores=cores)
    assert "\n" not in str(info.value)


def test_tp_must_divide_the_heads(tiny_train_config) -> None:
    # The tiny model has 4 attention heads and 2 key/value heads: tp=4 splits the heads but not the kv heads.
    config = tiny_train_config("strategy.name=tp", "strategy.nproc=4")
    with pytest.raises(ValidationError, match="strategy.tp=4 does not divide the model's 2 key/value heads"):
        check_launch(config, cuda=False, cores=4)
    check_launch(tiny_train_config("strategy.name=tp", "strategy.nproc=2"), cuda=False, cores=2)


def test_cli_refuses_before_any_process_starts(tiny_train_config, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(tiny_train_config().to_yaml())
    cmd = [sys.executable, "-m", "core.cli", "train", str(config), "--strategy", "ddp", "--nproc", "2", "--nnodes", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode != 0
    assert "needs --master-addr" in done.stderr + done.stdout
    assert "torch.distributed.run" not in done.stderr  # refused here, torchrun never started


def test_multinode_argv_names_the_master(tiny_train_config, tmp_path: Path) -> None:
    config = tiny_train_config("strategy.name=fsdp", "strategy.nproc=2", "strategy.nnodes=2", "strategy.node_rank=1",
                               "strategy.master_addr=10.0.0.1", "strategy.master_port=29511")  # fmt: skip
    argv = torchrun_argv(config, tmp_path / "c.yaml", resume=True)
    assert argv[1:3] == ["-m", "torch.distributed.run"]
    assert {
        "--nproc-per-node=2",
        "--nnodes=2",
        "--node-rank=1",
        "--master-addr=10.0.0.1",
        "--master-port=29511",
    } <= set(argv)
    assert argv[-3:] == ["core.finetune.worker", str(tmp_path / "c.yaml"), "--resume"]
    assert "--standalone" in torchrun_argv(tiny_train_config("strategy.name=ddp"), tmp_path / "c.yaml", resume=False)


def test_zero3_offload_yaml_is_accepted_by_deepspeed(tiny_train_config) -> None:
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (pip install 'finmed[deepspeed]')")
    from core.finetune.deepspeed_config import deepspeed_config, validate

    block = ("strategy.name=deepspeed", "strategy.deepspeed={stage: 3, offload_params: true, offload_optimizer: true}")
    config = tiny_train_config(*block, "train.batch_size=8")
    ds_json = deepspeed_config(config, world_size=2)
    parsed = validate(ds_json)  # deepspeed.runtime.config.DeepSpeedConfig
    assert parsed.zero_optimization_stage == 3
    assert parsed.zero_config.offload_param.device == "cpu"
    assert parsed.zero_config.offload_optimizer.device == "cpu"
    assert parsed.train_micro_batch_size_per_gpu == 4  # 8 examples per micro-batch over 2 ranks
    assert "train_batch_size" not in ds_json  # DeepSpeed derives it from the world size it runs with
    assert parsed.gradient_clipping == config.train.max_grad_norm
    ds_json["zero_optimization"]["offload_parm"] = {"device": "cpu"}  # a typo DeepSpeed itself must reject
    with pytest.raises(ValidationError, match="DeepSpeed rejects the generated config.*offload_parm"):
        validate(ds_json)


def test_strategy_section_is_validated(tiny_train_config) -> None:
    with pytest.raises(ValidationError, match="'strategy.name'"):
        tiny_train_config("strategy.name=megatron")
    with pytest.raises(ValidationError, match="offload_params needs stage 3"):
        tiny_train_config("strategy.deepspeed={stage: 2, offload_params: true}")
    with pytest.raises(ValidationError, match="node_rank 2 must be below nnodes 2"):
        tiny_train_config("strategy.nnodes=2", "strategy.node_rank=2")
