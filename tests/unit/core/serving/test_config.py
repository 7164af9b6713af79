"""Serving config: YAML files load and validate, errors name the field, --model NAME=PATH parses."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import NotFoundError, ValidationError
from core.serving.config import ModelSpec, load_serve_config, parse_model_option, resolve_model_folder

REPO = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("serve-*.yaml")), ids=lambda p: p.name)
def test_every_shipped_serving_config_loads(path: Path) -> None:
    config = load_serve_config(path)
    assert config.models and all(m.max_batch_size >= 1 for m in config.models)


def test_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "serve.yaml"
    bad.write_text("models:\n  - name: a\n    max_batch_size: 0\n")
    with pytest.raises(ValidationError, match=r"models\.0\.max_batch_size"):
        load_serve_config(bad)
    bad.write_text("models:\n  - name: a\n  - name: a\n")
    with pytest.raises(ValidationError, match="repeated: a"):
        load_serve_config(bad)
    bad.write_text("models: [\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_serve_config(bad)
    bad.write_text("models:\n  - name: a\n    max_wait: 3\n")
    with pytest.raises(ValidationError, match="max_wait"):
        load_serve_config(bad)
    with pytest.raises(NotFoundError, match="not found"):
        load_serve_config(tmp_path / "missing.yaml")


def test_model_option_and_folder_lookup(tmp_path: Path) -> None:
    spec = parse_model_option("finance-risk=/x/y")
    assert spec.name == "finance-risk" and spec.path == Path("/x/y")
    for bad in ("noequals", "=path", "name=", "bad name=/x"):
        with pytest.raises(ValidationError, match="--model"):
            parse_model_option(bad)
    with pytest.raises(NotFoundError, match="genai_config.json"):
        resolve_model_folder(spec, tmp_path)
    (tmp_path / "medical-impression").mkdir()
    (tmp_path / "medical-impression" / "genai_config.json").write_text("{}")
    assert resolve_model_folder(ModelSpec(name="medical-impression"), tmp_path) == tmp_path / "medical-impression"


def test_prefix_cache_reads_yaml_off_and_names_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("models:\n  - name: m\n    prefix_cache: off\n  - name: n\n    prefix_cache: prefer\n")
    config = load_serve_config(path)
    assert [m.prefix_cache for m in config.models] == ["off", "prefer"]
    assert ModelSpec(name="x").prefix_cache == "prefer"
    path.write_text("models:\n  - name: m\n    prefix_cache: always\n")
    with pytest.raises(ValidationError, match="models.0.prefix_cache"):
        load_serve_config(path)


def test_runtime_thread_options_become_session_options() -> None:
    assert ModelSpec(name="x").session_options() == {}
    spec = ModelSpec(name="x", ort_spinning=False, intra_op_threads=1)
    assert spec.session_options() == {"session.intra_op.allow_spinning": "0", "intra_op_num_threads": 1}
