"""docker-compose.yml is valid and wires the suite to the real services (no engine runs here: config only)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_services_and_settings() -> None:
    spec = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"postgres", "weaviate", "server", "app", "prometheus", "grafana"} <= set(services)
    for name in ("server", "app"):
        env = services[name]["environment"]
        assert env["FINMED_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["FINMED_WEAVIATE_URL"].startswith("http://weaviate")
    for mount in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = mount.split(":")[0]
        if not source.endswith(".key"):  # the scrape key is made by the operator (`finmed serve keys add`)
            assert (REPO / source).exists(), mount


def test_compose_config_validates() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")
    result = subprocess.run([*command, "config", "-q"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
