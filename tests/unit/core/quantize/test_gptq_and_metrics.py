"""GPTQ reconstructs a layer's output better than round-to-nearest on the same calibration data (and onnxruntime's
vendored GPTQ does not, which is why core.quantize.gptq exists); task metrics parse answers and pick a metric."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ValidationError
from core.quantize.gptq import dequantize, gptq_quantize, rtn_quantize
from core.quantize.task_metrics import choose_metric, normalize_answer, score


def _layer(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Correlated activations, as real hidden states are: X (tokens, in) = Z @ mixing.
    x = rng.standard_normal((512, 64)) @ rng.standard_normal((64, 64))
    w = rng.standard_normal((64, 48)).astype(np.float32)  # MatMul weight (in, out)
    return x, w, 2 * x.T @ x / len(x)


def test_gptq_has_lower_layer_reconstruction_error_than_rtn() -> None:
    x, w, h = _layer()
    codes, scales = gptq_quantize(w, h, group_size=32)
    rtn_codes, rtn_scales = rtn_quantize(w, group_size=32)
    assert codes.dtype == np.uint8 and codes.max() <= 15 and scales.shape == (2, 48)
    err_gptq = np.linalg.norm(x @ w - x @ dequantize(codes, scales, 32))
    err_rtn = np.linalg.norm(x @ w - x @ dequantize(rtn_codes, rtn_scales, 32))
    assert err_gptq < 0.8 * err_rtn


def test_onnxruntime_vendored_gptq_degenerates_to_rtn() -> None:
    """The reason for our own module: ORT's gptq() returns the RTN weights (no error feedback)."""
    from onnxruntime.quantization.neural_compressor.weight_only import gptq, qdq_tensor

    x, w, h = _layer()
    ort_gptq = gptq(w.copy(), h.copy(), num_bits=4, group_size=32, scheme="sym", blocksize=32)
    ort_rtn = qdq_tensor(w.T.copy(), num_bits=4, group_size=32, scheme="sym").T
    np.testing.assert_allclose(ort_gptq, ort_rtn, atol=1e-5)


def test_answers_are_parsed_before_exact_match() -> None:
    assert normalize_answer("  Risk level: 3.\nbecause ...") == "risk level: 3"
    assert score("exact_match", ["Risk level: 3", "risk level: 2"], ["Risk level: 3", "Risk level: 4"]) == 0.5


def test_metric_choice() -> None:
    assert choose_metric("auto", ["Risk level: 1", "Risk level: 2"]) == "exact_match"
    long = ["No acute cardiopulmonary abnormality is seen on this study today."] * 3
    assert choose_metric("auto", long) == "rouge_l"
    assert score("rouge_l", ["no acute abnormality"], ["no acute abnormality"]) == pytest.approx(1.0)
    with pytest.raises(ValidationError, match="unknown metric"):
        choose_metric("bleu", long)
