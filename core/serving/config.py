"""The serving config (configs/serve-*.yaml): which model versions the server loads and how each is batched."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import NotFoundError
from core.errors import ValidationError as FinmedValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


def _valid_name(value: str) -> str:
    """A model or adapter name as clients send it in `model` (ValueError, for pydantic, otherwise)."""
    if not _NAME.match(value):
        raise ValueError("must be 1-100 letters, digits or ._:- and start with a letter or digit")
    return value


class AdapterSpec(BaseModel):
    """A LoRA adapter served on its base model (an adapter export from `finmed export --run RUN --as-adapter`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Name clients send as `model` to get the base with this adapter (e.g. finance).",
        pattern=_NAME.pattern,
    )
    path: Path = Field(description="The adapter export folder (adapter.onnx_adapter + finmed_export.json).")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _valid_name(value)


class ModelSpec(BaseModel):
    """One model version the server loads, and its batching limits."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Version name clients send as `model` (e.g. finance-risk).")
    path: Path | None = Field(None, description="ONNX Runtime GenAI folder; empty means look the name up.")
    adapters: list[AdapterSpec] = Field(
        default_factory=list,
        description="LoRA adapters loaded on this base (it must be exported with --adapter-slots); each is a model "
        "name of its own, sharing this model's weights, queue and batches.",
    )
    max_batch_size: int = Field(8, ge=1, le=256, description="A batch closes when it holds this many requests.")
    max_wait_ms: float = Field(10.0, ge=0, le=10_000, description="...or when its oldest request waited this long.")
    max_queue: int = Field(64, ge=1, le=100_000, description="Waiting requests beyond this get 429 + Retry-After.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="A request still unanswered after this gets 504.")
    max_new_tokens_limit: int = Field(512, ge=1, description="Largest max_tokens a request may ask for.")
    max_prompt_tokens: int = Field(2048, ge=1, description="Longer prompts get 400 (before tokenising: 4 bytes/token).")
    prefix_cache: Literal["off", "alone", "prefer"] = Field(
        "prefer",
        description="Shared prompt prefixes (system turns) computed once: off; alone = when a request runs by itself; "
        "prefer (default) = requests with a cached prefix always run alone on it instead of joining a batch, the "
        "rest are batched (the best of the three in bench/results/serve.md, where prefill dominates).",
    )
    ort_spinning: bool = Field(
        True,
        description="ONNX Runtime's intra-op threads spin between ops (its default); false frees the cores for the "
        "event loop and other models at some per-step latency.",
    )
    intra_op_threads: int | None = Field(None, ge=1, le=256, description="ONNX Runtime threads; empty = all cores.")
    prefix_slots: int = Field(2, ge=1, le=64, description="Cached prefixes kept per model (least recently used go).")

    def session_options(self) -> dict[str, object]:
        """ONNX Runtime session options this spec asks for (laid over the folder's genai_config)."""
        options: dict[str, object] = {}
        if not self.ort_spinning:
            options["session.intra_op.allow_spinning"] = "0"
        if self.intra_op_threads is not None:
            options["intra_op_num_threads"] = self.intra_op_threads
        return options

    @field_validator("prefix_cache", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """YAML reads a bare `off` as false (and `on` as true)."""
        if value is False:
            return "off"
        if value is True:
            return "alone"
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _valid_name(value)


class ServeConfig(BaseModel):
    """What `finmed serve` loads: models plus server settings."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelSpec] = Field(min_length=1, description="Model versions to load at start-up.")
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int | None = Field(None, ge=0, le=65535, description="Port; empty means FINMED_API_PORT.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Execution provider for every model.")
    require_api_key: bool = Field(True, description="Every route but /healthz and /readyz needs a Bearer key.")
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=64 * 1024 * 1024, description="Larger request bodies get 413, read no further."
    )
    key_failures_per_minute: int = Field(
        20, ge=1, description="Invalid API keys one client address may send per minute; then 429 + Retry-After."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ServeConfig:
        names = [m.name for m in self.models] + [a.name for m in self.models for a in m.adapters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model and adapter names must be unique; repeated: {', '.join(dupes)}")
        return self


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"


def load_serve_config(path: Path) -> ServeConfig:
    """Read and validate a serving YAML file.

    Raises:
        NotFoundError: the file does not exist.
        ValidationError: the YAML or one of its fields is invalid (the message names the field).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"serving config {path} not found; see configs/serve-default.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FinmedValidationError(f"serving config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        return ServeConfig.model_validate(raw or {})
    except ValidationError as exc:
        raise FinmedValidationError(f"serving config {path}: {_first_error(exc)}") from None


def parse_model_option(value: str) -> ModelSpec:
    """`NAME=PATH` (the repeatable `--model` option) as a ModelSpec with default batching limits.

    Raises:
        ValidationError: when the value is not NAME=PATH or the name is invalid.
    """
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise FinmedValidationError(f"--model {value!r}: expected NAME=PATH, e.g. finance-risk=var/models/fr-int4")
    try:
        return ModelSpec(name=name, path=Path(path))
    except ValidationError as exc:
        raise FinmedValidationError(f"--model {value!r}: {_first_error(exc)}") from None


def resolve_model_folder(spec: ModelSpec, models_dir: Path) -> Path:
    """The ONNX Runtime GenAI folder for a model version: its `path`, else `models_dir/<name>`.

    This is the one place a version name turns into a folder, so the model registry's lookup goes here.

    Raises:
        NotFoundError: when the folder or its genai_config.json is missing.
    """
    folder = Path(spec.path) if spec.path is not None else Path(models_dir) / spec.name
    if not (folder / "genai_config.json").is_file():
        raise NotFoundError(
            f"model {spec.name!r}: {folder} is not an ONNX Runtime GenAI folder (no genai_config.json); "
            "export it first or fix models[].path"
        )
    return folder
