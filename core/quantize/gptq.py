"""GPTQ 4-bit weights for an exported ONNX decoder, calibrated layer by layer on real prompts.

Hand-written because no maintained GPTQ runs correctly here: onnxruntime's vendored GPTQ
(`GPTQWeightOnlyQuantConfig`, onnxruntime/quantization/neural_compressor/weight_only.py) runs on CPU but propagates
the quantization error along a column of the upper Cholesky factor (`Hinv1[i:, i]`, zero below the diagonal), so
its output equals round-to-nearest (tests/unit/core/quantize/test_gptq.py shows it); gptqmodel/auto-gptq need CUDA.
This module follows Frantar et al. 2022 (GPTQ): for each MatMul weight W (in, out) and the Hessian H = 2/n X^T X of
its calibration inputs X (n, in), quantize one input row at a time and spread the rounding error over the rows not
yet quantized with the inverse-Hessian Cholesky factor. Weights are written as MatMulNBits (symmetric 4-bit, zero
point 8, the builder's int4 layout) so the GenAI runtime executes them like the builder's own int4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ValidationError

BITS = 4
MAXQ = 2**BITS - 1  # codes 0..15, zero point 8


def _group_scale(w: np.ndarray) -> np.ndarray:
    """Symmetric scale per output column for a group of rows w (group, out): max |w| maps to 7.5 steps."""
    scale = 2.0 * np.abs(w).max(axis=0) / MAXQ
    scale[scale == 0] = 1.0
    return scale


def _codes(w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip(np.round(w / scale) + 8, 0, MAXQ)


def rtn_quantize(weight: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Round-to-nearest with the same grid as gptq_quantize (the baseline it must beat).

    Args:
        weight: (in, out), `in` divisible by group_size.
    Returns:
        codes (in, out) uint8 in 0..15, scales (in // group_size, out) float32.
    """
    k, n = weight.shape
    groups = weight.reshape(k // group_size, group_size, n)
    scales = np.stack([_group_scale(g) for g in groups])  # (k_blocks, out)
    codes = _codes(groups, scales[:, None, :]).reshape(k, n)
    return codes.astype(np.uint8), scales.astype(np.float32)


def dequantize(codes: np.ndarray, scales: np.ndarray, group_size: int) -> np.ndarray:
    """(in, out) float weights back from codes (in, out) and scales (in // group_size, out)."""
    return (codes.astype(np.float64) - 8) * np.repeat(scales, group_size, axis=0)


def gptq_quantize(
    weight: np.ndarray, hessian: np.ndarray, group_size: int, *, percdamp: float = 0.01, blocksize: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ for one MatMul weight.

    Args:
        weight: (in, out); `in` divisible by group_size.
        hessian: (in, in), 2/n X^T X of the calibration inputs.
        group_size: rows sharing one scale per output column.
        percdamp: dampening, a fraction of the mean Hessian diagonal.
        blocksize: rows processed before the lazy update of the rest (a multiple of group_size).
    Returns:
        codes (in, out) uint8 in 0..15, scales (in // group_size, out) float32.
    """
    w = weight.astype(np.float64).copy()
    h = hessian.astype(np.float64).copy()
    k, n = w.shape
    blocksize = max(blocksize // group_size, 1) * group_size
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[dead, :] = 0.0
    h[np.diag_indices(k)] += percdamp * np.mean(np.diag(h))
    hinv = np.linalg.cholesky(np.linalg.inv(h)).T  # upper U, U^T U = H^-1
    codes = np.zeros((k, n), dtype=np.uint8)
    scales = np.zeros((k // group_size, n), dtype=np.float64)
    for i1 in range(0, k, blocksize):
        i2 = min(i1 + blocksize, k)
        w1 = w[i1:i2].astype(np.float32)  # (count, out); float32 halves the memory traffic of the row updates
        err1 = np.zeros_like(w1)
        u1 = hinv[i1:i2, i1:i2].astype(np.float32)
        scale = scales[0]
        for i in range(i2 - i1):
            row = i1 + i
            if row % group_size == 0:
                scale = _group_scale(w1[i : i + group_size])
                scales[row // group_size] = scale
            q = _codes(w1[i], scale)
            codes[row] = q
            err = (w1[i] - (q - 8) * scale) / u1[i, i]
            w1[i:] -= np.outer(u1[i, i:], err)  # spread the error over the rows not yet quantized
            err1[i] = err
        w[i2:] -= hinv[i1:i2, i2:].T @ err1.astype(np.float64)
    return codes, scales.astype(np.float32)


class _Hessians:
    """Accumulates H = 2/n sum x x^T per activation name over calibration tokens."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}
        self.count = 0

    def add(self, name: str, x: np.ndarray) -> None:
        x = x.reshape(-1, x.shape[-1]).astype(np.float64)  # (tokens, in)
        self.sums[name] = self.sums.get(name, 0) + x.T @ x

    def get(self, name: str) -> np.ndarray:
        return 2.0 * self.sums[name] / max(self.count, 1)


def _decoder_feed(ids: np.ndarray, past: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    feed = {"input_ids": ids.astype(np.int64)[None, :], "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
    for name, (heads, head_size) in past.items():
        feed[name] = np.zeros((1, heads, 0, head_size), dtype=np.float32)  # empty KV cache: a prefill pass
    return feed


def _tie_embedding(graph: Any, weight: np.ndarray, weight_name: str, block_size: int) -> int:
    """Point a tied embedding (Transpose(lm_head weight) -> Gather) at a 4-bit copy, as the builder's own int4 export
    does (Reshape -> GatherBlockQuantized). The copy is round-to-nearest of the original weight: GPTQ's codes are
    tuned for the lm_head's inputs, not for looking rows up. Returns 1 when the fp32 weight lost that use, else 0.
    """
    import onnx
    from onnxruntime.quantization.neural_compressor.weight_only import make_matmul_weight_only_node

    transpose = next((n for n in graph.node if n.op_type == "Transpose" and n.input[0] == weight_name), None)
    gather = transpose and next(
        (n for n in graph.node if n.op_type == "Gather" and n.input[0] == transpose.output[0]), None
    )
    if transpose is None or gather is None:
        return 0
    k, n = weight.shape
    codes, scales = rtn_quantize(weight, block_size)
    k_blocks = k // block_size
    stand_in = onnx.helper.make_node("MatMul", ["unused", f"{weight_name}.embedding"], ["unused_out"])
    _, inits = make_matmul_weight_only_node(
        node=stand_in,
        weight_shape=(k, n),
        num_bits=BITS,
        group_size=block_size,
        k_blocks=k_blocks,
        q_weight=codes.T.reshape(n * k_blocks, block_size),
        scale=scales.T.reshape(-1, 1).copy(),
        zero_point=None,
    )
    packed, scale = (
        next(i for i in inits if i.data_type == onnx.TensorProto.UINT8),
        next(i for i in inits if i.data_type != onnx.TensorProto.UINT8),
    )
    shape_name = f"{weight_name}.embedding_shape"
    blob = block_size * BITS // 8
    graph.initializer.extend(
        [*inits, onnx.numpy_helper.from_array(np.asarray([n, k_blocks * blob], np.int64), shape_name)]
    )
    rows = transpose.output[0] + "_Q4"  # a new name: the old one carries a float value_info
    reshape = onnx.helper.make_node("Reshape", [packed.name, shape_name], [rows], name=transpose.name + "_Q4")
    lookup = onnx.helper.make_node(
        "GatherBlockQuantized",
        [rows, gather.input[1], scale.name],
        list(gather.output),
        name=gather.name + "_Q4",
        domain="com.microsoft",
        bits=BITS,
        block_size=block_size,
        gather_axis=0,
        quantize_axis=1,
    )
    for old, new in ((transpose, reshape), (gather, lookup)):
        index = list(graph.node).index(old)
        graph.node.remove(old)
        graph.node.insert(index, new)
    return 1


def gptq_quantize_folder(
    model_dir: Path,
    samples: list[np.ndarray],
    *,
    genai_config: dict[str, Any],
    block_size: int = 32,
    accuracy_level: int = 4,
    percdamp: float = 0.01,
) -> int:
    """Replace model_dir/model.onnx (fp32 from the builder) by its GPTQ 4-bit version, in place.

    Args:
        samples: calibration token ids, each (seq,).
        block_size: rows of a weight sharing one scale (the builder's int4 block_size).
    Returns:
        the number of MatMul weights quantized.
    Raises:
        ValidationError: no calibration samples.
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    from onnxruntime.quantization.neural_compressor.weight_only import make_matmul_weight_only_node

    if not samples:
        raise ValidationError("gptq needs calibration samples: --calib FILE with at least one record")
    path = Path(model_dir) / "model.onnx"
    model = onnx.load(str(path), load_external_data=True)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    targets = [
        n for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2
    ]
    inputs = sorted({n.input[0] for n in targets})

    # 1. Hessians from the fp32 graph with every quantized MatMul's input exposed as an extra output.
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in inputs)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    del probe
    decoder = genai_config["model"]["decoder"]
    past = {
        i.name: (int(decoder["num_key_value_heads"]), int(decoder["head_size"]))
        for i in graph.input
        if i.name.startswith("past_key_values")
    }
    hessians = _Hessians()
    for ids in samples:
        outputs = session.run(inputs, _decoder_feed(ids, past))
        hessians.count += int(np.prod(outputs[0].shape[:-1]))
        for name, x in zip(inputs, outputs, strict=True):
            hessians.add(name, x)
    del session

    # 2. Quantize each weight and swap its MatMul for MatMulNBits.
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    for node in targets:
        weight = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)  # (in, out)
        k, n = weight.shape
        pad = (-k) % block_size
        h = hessians.get(node.input[0])
        if pad:  # zero rows with a unit Hessian diagonal: quantized to code 8, no effect on the output
            weight = np.vstack([weight, np.zeros((pad, n), np.float32)])
            h = np.pad(h, ((0, pad), (0, pad)))
        codes, scales = gptq_quantize(weight, h, block_size, percdamp=percdamp)
        k_blocks = codes.shape[0] // block_size
        q_weight = codes.T.reshape(n * k_blocks, block_size)  # (out * k_blocks, block): MatMulNBits row order
        new_node, new_inits = make_matmul_weight_only_node(
            node=node,
            weight_shape=(k, n),
            num_bits=BITS,
            group_size=block_size,
            k_blocks=k_blocks,
            q_weight=q_weight,
            scale=scales.T.reshape(-1, 1).copy(),
            zero_point=None,
            accuracy_level=accuracy_level,
        )
        index = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(index, new_node)
        graph.initializer.extend(new_inits)
        if uses[node.input[1]] == 2 and pad == 0:
            uses[node.input[1]] -= _tie_embedding(graph, weight, node.input[1], block_size)
        if uses[node.input[1]] == 1:
            graph.initializer.remove(inits[node.input[1]])

    # 3. Save under a side folder with the builder's file names, then move over the fp32 files.
    side = Path(model_dir) / ".gptq"
    side.mkdir()
    onnx.save_model(
        model,
        str(side / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=1024,
    )
    for name in ("model.onnx", "model.onnx.data"):
        (side / name).replace(Path(model_dir) / name)
    side.rmdir()
    return len(targets)
