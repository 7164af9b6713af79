"""GPTQ 4-bit weights for an exported ONNX decoder, calibrated on real prompts.

Uses ONNX Runtime's maintained GPTQ (`MatMulNBitsQuantizer` + `GPTQWeightOnlyQuantConfig`, the Intel Neural
Compressor algorithm vendored in onnxruntime), which runs here on CPU: for every MatMul it collects the input
activations of the calibration samples on the fp32 graph, builds the Hessian H = 2 X^T X and quantizes the weight
column by column with error feedback, then writes MatMulNBits nodes the GenAI runtime executes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ValidationError


class DecoderCalibration:
    """Feeds a GenAI decoder graph (input_ids, attention_mask, empty KV cache) one calibration sample at a time.

    ONNX Runtime's quantizer deep-copies and iterates this object, so it holds plain arrays only.
    """

    def __init__(self, samples: list[np.ndarray], past_inputs: dict[str, tuple[int, int]]) -> None:
        """Args:
        samples: token ids per sample, each shape (seq,).
        past_inputs: KV-cache input name -> (kv_heads, head_size).
        """
        self.samples = samples
        self.past_inputs = past_inputs
        self._index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._index >= len(self.samples):
            return None
        ids = self.samples[self._index].astype(np.int64)[None, :]  # (1, seq)
        self._index += 1
        feed: dict[str, np.ndarray] = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        for name, (heads, head_size) in self.past_inputs.items():
            feed[name] = np.zeros((1, heads, 0, head_size), dtype=np.float32)  # empty cache: a prefill pass
        return feed

    def __iter__(self) -> DecoderCalibration:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item

    def __deepcopy__(self, memo: dict[int, Any]) -> DecoderCalibration:
        return DecoderCalibration(copy.copy(self.samples), dict(self.past_inputs))


def past_inputs_of(model_path: Path, genai_config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """KV-cache input names of the decoder with their (kv_heads, head_size)."""
    import onnx

    decoder = genai_config["model"]["decoder"]
    heads, head_size = int(decoder["num_key_value_heads"]), int(decoder["head_size"])
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return {i.name: (heads, head_size) for i in graph.input if i.name.startswith("past_key_values")}


def gptq_quantize_folder(
    model_dir: Path,
    samples: list[np.ndarray],
    *,
    genai_config: dict[str, Any],
    block_size: int = 32,
    is_symmetric: bool = True,
    accuracy_level: int | None = None,
    percdamp: float = 0.01,
    actorder: bool = False,
) -> None:
    """Replace model_dir/model.onnx (fp32 from the builder) by its GPTQ 4-bit version, in place.

    Args:
        model_dir: a GenAI folder built at fp32.
        samples: calibration token ids, each shape (seq,).
        block_size: weights per quantization group (same meaning as the builder's int4 block_size).

    Raises:
        ValidationError: no calibration samples.
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import GPTQWeightOnlyQuantConfig, MatMulNBitsQuantizer

    if not samples:
        raise ValidationError("gptq needs calibration samples: --calib FILE with at least one record")
    model_path = Path(model_dir) / "model.onnx"
    reader = DecoderCalibration(samples, past_inputs_of(model_path, genai_config))
    config = GPTQWeightOnlyQuantConfig(calibration_data_reader=reader, percdamp=percdamp, actorder=actorder)
    quantizer = MatMulNBitsQuantizer(
        # Loaded with its weights inline: ORT refuses external data for graphs it runs from bytes (< 2 GB here).
        model=onnx.load(str(model_path), load_external_data=True),
        block_size=block_size,
        is_symmetric=is_symmetric,
        accuracy_level=accuracy_level,
        algo_config=config,
    )
    quantizer.process()
    # Saved under a side folder with the same file names, then moved over the fp32 files.
    side = Path(model_dir) / ".gptq"
    side.mkdir()
    quantizer.model.save_model_to_file(str(side / "model.onnx"), use_external_data_format=True)
    for name in ("model.onnx", "model.onnx.data"):
        (side / name).replace(Path(model_dir) / name)
    side.rmdir()
