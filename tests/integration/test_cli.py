"""The real `finmed` command in a subprocess: happy paths and one-line errors with non-zero exits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FINMED = str(Path(sys.executable).parent / "finmed")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([FINMED, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("doctor", "up", "db", "model", "users"):
        assert command in result.stdout


def test_db_users_and_doctor(tmp_path: Path, tiny_model_dir: Path) -> None:
    env = {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_BASE_MODEL": str(tiny_model_dir)}
    assert run("db", "upgrade", env=env).returncode == 0
    current = run("db", "current", env=env)
    assert current.returncode == 0 and "head:" in current.stdout

    added = run("users", "add", "ana", "--role", "analyst", env=env)
    assert added.returncode == 0 and "password (shown once)" in added.stdout
    listed = run("users", "list", env=env)
    assert "ana" in listed.stdout and "analyst" in listed.stdout

    doctor = run("doctor", env=env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    for part in ("database", "migrations", "base model", "vector store", "device", "LlamaForCausalLM"):
        assert part in doctor.stdout


def test_bad_role_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    env = {"FINMED_DATA_DIR": str(tmp_path / "var")}
    assert run("db", "upgrade", env=env).returncode == 0
    line = one_error_line(run("users", "add", "bob", "--role", "wizard", env=env))
    assert "unknown role 'wizard'" in line
    assert "bob" not in run("users", "list", env=env).stdout


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://u@h/db", "FINMED_DATABASE_URL"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot reach the database at FINMED_DATABASE_URL"),
    ],
)
def test_wrong_database_url(tmp_path: Path, url: str, fragment: str) -> None:
    env = {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_DATABASE_URL": url}
    line = one_error_line(run("db", "upgrade", env=env))
    assert fragment in line
    assert not (tmp_path / "var").exists()


def test_missing_model_path(tmp_path: Path) -> None:
    env = {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_BASE_MODEL": str(tmp_path / "nowhere")}
    line = one_error_line(run("model", "info", env=env))
    assert "FINMED_BASE_MODEL" in line and "nowhere" in line


def test_up_prepare_only_is_idempotent(tmp_path: Path, tiny_model_dir: Path) -> None:
    env = {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_BASE_MODEL": str(tiny_model_dir)}
    first = run("up", "--tiny", "--prepare-only", env=env)
    assert first.returncode == 0, first.stderr
    assert "password (shown once)" in first.stdout
    second = run("up", "--tiny", "--prepare-only", env=env)
    assert second.returncode == 0 and "password" not in second.stdout
    assert "admin" in run("users", "list", env=env).stdout


def test_debug_shows_traceback(tmp_path: Path) -> None:
    env = {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_BASE_MODEL": str(tmp_path / "nowhere")}
    result = run("--debug", "model", "info", env=env)
    assert result.returncode != 0 and "Traceback" in result.stderr
