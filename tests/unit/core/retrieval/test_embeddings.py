"""MiniLM-L6 embeddings from the installed package: ONNX Runtime export matches PyTorch sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import SettingsError
from core.retrieval.embeddings import TorchEmbedder, default_model_dir, resolve_embedding_model

TEXTS = [
    "Wire transfer of 9,800 EUR to a new beneficiary at 03:12.",
    "x",
    "Chest X-ray: no focal consolidation, no pleural effusion, heart size normal. " * 5,
    "Card used in two countries within one hour.",
]


def test_default_model_is_found_in_the_installed_package() -> None:
    folder = resolve_embedding_model("default")
    assert folder == default_model_dir() and (folder / "model.safetensors").exists()


def test_a_folder_that_is_not_sentence_transformers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="FINMED_EMBEDDING_MODEL=.*not a sentence-transformers folder"):
        resolve_embedding_model(str(tmp_path))


def test_onnx_matches_pytorch_and_is_unit_length(minilm_embedder) -> None:
    onnx = minilm_embedder.encode(TEXTS, batch_size=3)  # (4, 384), batches of mixed lengths
    torch_vectors = TorchEmbedder(default_model_dir()).encode(TEXTS)
    assert onnx.shape == torch_vectors.shape == (4, 384)
    np.testing.assert_allclose(onnx, torch_vectors, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    similar = minilm_embedder.encode(["money transfer to a new payee", "lung x-ray without findings"])
    assert similar[0] @ onnx[0] > similar[0] @ onnx[2]
    assert minilm_embedder.encode([]).shape == (0, 384)
