from pathlib import Path

import pytest

from core.errors import SettingsError
from core.settings import load_settings


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINMED_DATA_DIR")
    s = load_settings()
    assert s.data_dir == Path("var")
    assert s.db_url == "sqlite:///var/finmed.db"
    assert s.lancedb_dir == Path("var/lancedb")
    assert s.base_model == "default"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FINMED_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FINMED_DATABASE_URL", "postgresql+psycopg://u@db/finmed")
    s = load_settings()
    assert s.db_url == "postgresql+psycopg://u@db/finmed"
    assert s.lancedb_dir == tmp_path / "lancedb"


def test_dotenv_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINMED_DATA_DIR")
    (tmp_path / ".env").write_text("FINMED_BASE_MODEL=org/model\n")
    assert load_settings().base_model == "org/model"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("FINMED_DATABASE_URL", "mysql://x@y/z", "FINMED_DATABASE_URL"),
        ("FINMED_DATABASE_URL", "not a url", "FINMED_DATABASE_URL"),
        ("FINMED_APP_PORT", "99999", "FINMED_APP_PORT"),
        ("FINMED_DEVICE", "tpu", "FINMED_DEVICE"),
        ("FINMED_BASE_MODEL", "  ", "FINMED_BASE_MODEL"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
