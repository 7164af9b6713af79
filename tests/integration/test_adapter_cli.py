"""The real `finmed` command for adapters on one base: export a base with slots, export runs as adapters, register
an adapter against its base version; wrong input is one line, a non-zero exit and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_lora_run
from tests.integration.test_cli import one_error_line, run


def test_export_base_adapters_and_register(tmp_path: Path, tiny_model_dir: Path, lora_run_dir: Path) -> None:
    env = {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_USER": "eng"}
    base, adapter = tmp_path / "base", tmp_path / "a1"
    made = run("export", "--model", str(tiny_model_dir), "--precision", "int8", "--adapter-slots", str(lora_run_dir),
               "--out", str(base), env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads((base / "finmed_export.json").read_text())["adapter_slots"]["inputs"]
    done = run("export", "--run", str(lora_run_dir), "--as-adapter", "--base", str(base), "--out", str(adapter),
               env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (adapter / "adapter.onnx_adapter").is_file() and "rank 4" in done.stdout

    assert "--as-adapter needs --run RUN and --base EXPORT" in one_error_line(
        run("export", "--run", str(lora_run_dir), "--as-adapter", "--out", str(tmp_path / "x"), env=env)
    )
    elsewhere = make_lora_run(tiny_model_dir, tmp_path / "no-slot-run")
    json_path = elsewhere / "adapter_config.json"
    config = json.loads(json_path.read_text())
    json_path.write_text(json.dumps({**config, "target_modules": ["o_proj"]}))  # a projection the base has no slot for
    line = one_error_line(
        run("export", "--run", str(elsewhere), "--as-adapter", "--base", str(base), "--out", str(tmp_path / "y"),
            env=env)  # fmt: skip
    )
    assert "the base has no slot" in line and "o_proj" in line
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()

    assert run("db", "upgrade", env=env).returncode == 0
    assert run("users", "add", "eng", "--role", "engineer", "--password", "sturdy-words-123", env=env).returncode == 0
    assert run("model", "register", "tiny-base", "--path", str(base), env=env).returncode == 0
    assert "register it against the base version" in one_error_line(
        run("model", "register", "a1", "--path", str(adapter), env=env)
    )
    registered = run("model", "register", "a1", "--path", str(adapter), "--base-version", "tiny-base:1", env=env)
    assert registered.returncode == 0, registered.stderr
    assert "on tiny-base v1" in registered.stdout
    listed = run("model", "versions", env={**env, "COLUMNS": "300"})
    assert "lora on tiny-base v1" in listed.stdout
