"""Run configs: every YAML under configs/ validates against its model; unknown keys, bad values, fields of another
method and bad overrides are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ValidationError
from core.finetune.config import TrainConfig, load_config
from core.serving.config import ServeConfig, load_serve_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "configs").glob("*.yaml"))
# Which model a YAML under configs/ is saved values of, by its name; a file no rule covers fails the test below.
LOADERS = {"train-": load_config, "finance-": load_config, "medical-": load_config, "serve-": load_serve_config}


def _loader(path: Path):  # type: ignore[no-untyped-def]
    return next((fn for prefix, fn in LOADERS.items() if path.name.startswith(prefix)), None)


def test_configs_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert {"train-lora-tiny.yaml", "train-lora-default.yaml", "finance-lora.yaml", "serve-default.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_yaml_under_configs_loads(path: Path) -> None:
    loader = _loader(path)
    assert loader is not None, f"{path.name}: no config model claims it; add its prefix to LOADERS"
    config = loader(path)
    assert isinstance(config, TrainConfig | ServeConfig)
    if isinstance(config, TrainConfig):
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
    config = load_config(path, ["train.lr=1e-4", "method.lora_target=all-linear"])
    assert config.train.lr == 1e-4 and config.method.lora_target == "all-linear" and config.method.name == "lora"
    assert load_config(path, ["method.name=adapter", "method.adapter_size=8"]).method.adapter_size == 8
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


@pytest.mark.parametrize(
    ("method", "field"),
    [
        ("full", "lora_r: 4"),
        ("adapter", "lora_target: all-linear"),
        ("lora", "num_virtual_tokens: 8"),
        ("prompt_tuning", "adapter_size: 8"),
        ("prefix_tuning", "prompt_init_text: x"),
        ("ia3", "lora_alpha: 2"),
    ],
)
def test_a_field_of_another_method_is_an_error_naming_it(tmp_path: Path, method: str, field: str) -> None:
    path = _yaml(tmp_path, f"dataset: {{path: x.jsonl}}\nmethod: {{name: {method}, {field}}}\n")
    key = field.split(":")[0]
    with pytest.raises(ValidationError, match=rf"'method.{key}' does not apply to method.name={method}"):
        load_config(path)


def test_each_method_keeps_its_own_fields(tmp_path: Path) -> None:
    prompt = load_config(
        _yaml(tmp_path, "dataset: {path: x.jsonl}\nmethod: {name: prompt_tuning, num_virtual_tokens: 8}\n")
    )
    assert prompt.method.num_virtual_tokens == 8 and not hasattr(prompt.method, "lora_r")
    assert load_config(_yaml(tmp_path, "dataset: {path: x.jsonl}\nmethod: {}\n")).method.name == "lora"
