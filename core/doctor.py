"""Health checks shared by `finmed doctor` and the app's status page: versions, database, model, vectors, device."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from core.errors import FinmedError
from core.settings import Settings

PACKAGES = ("torch", "transformers", "peft", "onnxruntime", "onnxruntime-genai", "sqlalchemy", "streamlit")


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it is fine, and the detail a person needs."""

    name: str
    ok: bool
    detail: str


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def check_versions() -> list[Check]:
    checks = [Check("python", True, platform.python_version())]
    checks += [Check(name, _version(name) != "not installed", _version(name)) for name in PACKAGES]
    return checks


def check_database(settings: Settings) -> list[Check]:
    from core.db.engine import make_engine
    from core.db.migrate import current_revision, head_revision

    engine = make_engine(settings.db_url, create_dirs=False)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        current = current_revision(engine)
    except FinmedError as exc:
        return [Check("database", False, str(exc))]
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else "run `finmed db upgrade`"
    return [
        Check("database", True, f"{shown} reachable"),
        Check("migrations", current == head, f"at {current or 'none'}, head {head} ({state})"),
    ]


def check_model(settings: Settings) -> list[Check]:
    from core.models.info import model_info
    from core.models.resolve import resolve_model

    try:
        info = model_info(resolve_model(settings.base_model, settings.models_dir))
    except FinmedError as exc:
        return [Check("base model", False, str(exc))]
    return [Check("base model", True, f"{info.architecture}, {info.parameters / 1e6:.1f}M params at {info.path}")]


def check_vectors(settings: Settings) -> list[Check]:
    """The configured vector store: backend, location, and each collection's object count (all tenants)."""
    from core.retrieval.store import open_store

    where = f"Weaviate at {settings.weaviate_url}" if settings.weaviate_url else f"LanceDB at {settings.lancedb_dir}"
    if not settings.weaviate_url and not (settings.lancedb_dir and settings.lancedb_dir.exists()):
        return [Check("vector store", True, f"{where} (created on first `finmed index build`)")]
    try:
        store = open_store(settings)
        try:
            counts = {name: store.count(name) for name in store.list_collections()}
        finally:
            store.close()
    except FinmedError as exc:
        return [Check("vector store", False, str(exc))]
    shown = ", ".join(f"{name} ({count} objects)" for name, count in counts.items()) or "no collections yet"
    return [Check("vector store", True, f"{where}: {shown}")]


def check_device() -> list[Check]:
    import torch

    if torch.cuda.is_available():
        return [Check("device", True, f"CUDA: {torch.cuda.get_device_name(0)}")]
    return [Check("device", True, f"CPU ({torch.get_num_threads()} threads); no CUDA device")]


def run_checks(settings: Settings) -> list[Check]:
    """All checks, in the order a person reads them."""
    return (
        check_versions() + check_database(settings) + check_model(settings) + check_vectors(settings) + check_device()
    )
