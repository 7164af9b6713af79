"""Run configs: every shipped YAML validates; unknown keys, bad values and bad overrides are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ValidationError
from core.finetune.config import TrainConfig, load_config

REPO = Path(__file__).resolve().parents[4]
SHIPPED = sorted((REPO / "configs").glob("train-*.yaml"))


def test_configs_are_shipped() -> None:
    assert {"train-lora-tiny.yaml", "train-lora-default.yaml"} <= {p.name for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, TrainConfig)
    assert config.method.name


def test_seed_lora_defaults() -> None:
    method = load_config(REPO / "configs" / "train-lora-tiny.yaml").method
    assert (method.lora_r, method.lora_alpha, method.lora_target, method.lora_dropout, method.lora_bias) == (
        16,
        32,
        ["q_proj", "v_proj"],
        0.1,
        "none",
    )


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "dataset: {path: x.jsonl}\ntrain: {lrr: 0.1}\n")
    with pytest.raises(ValidationError, match=r"run.yaml: unknown key 'train.lrr'"):
        load_config(path)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "dataset: {path: x.jsonl}\nmethod: {lora_r: many}\n")
    with pytest.raises(ValidationError, match=r"bad value for 'method.lora_r' \(got 'many'\)"):
        load_config(path)


def test_missing_dataset_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="missing required key 'dataset'"):
        load_config(_yaml(tmp_path, "method: {name: lora}\n"))


def test_overrides_are_typed_and_validated(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "dataset: {path: x.jsonl}\n")
    config = load_config(path, ["train.lr=1e-4", "method.lora_target=all-linear", "method.name=adapter"])
    assert config.train.lr == 1e-4 and config.method.lora_target == "all-linear" and config.method.name == "adapter"
    with pytest.raises(ValidationError, match="unknown key 'train.nope'"):
        load_config(path, ["train.nope=1"])
    with pytest.raises(ValidationError, match="bad value for 'method.name'"):
        load_config(path, ["method.name=magic"])
    with pytest.raises(ValidationError, match="expected section.key=value"):
        load_config(path, ["train.lr"])


def test_run_name_is_stable_and_config_dependent(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "dataset: {path: x.jsonl}\n")
    assert load_config(path).run_name() == load_config(path).run_name()
    assert load_config(path).run_name() != load_config(path, ["train.lr=0.1"]).run_name()
    assert load_config(path, ["output.name=mine"]).run_name() == "mine"
