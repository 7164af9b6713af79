"""What a served base's LoRA slots accept, and whether an adapter file fits them, before the runtime ever sees it.

A base exported with adapter slots (core.quantize.lora_slots) has, for every adapted projection, two optional graph
inputs: `...lora_A.MatMul.weight` of shape (in, lora_r) and `...lora_B.MatMul.weight` of shape (lora_r, out), whose
defaults have lora_r = 0 (no adapter: the base model). An adapter file (onnxruntime's `.onnx_adapter` format, written
by `finmed export --as-adapter`) holds tensors with those names. ONNX Runtime GenAI would only notice a misfit when
a request runs; here it is refused at load time with one line naming the tensor, so a wrong base or a wrong rank
layout never reaches a batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import NotFoundError, ValidationError

ADAPTER_FILE = "adapter.onnx_adapter"
EXPORT_META = "finmed_export.json"
RANK = "lora_r"  # the symbolic dimension of a slot


@dataclass(frozen=True)
class Slot:
    """One optional LoRA input of a base graph: its shape (ints, and RANK for the adapter's rank) and dtype."""

    shape: tuple[int | str, ...]
    dtype: str


def read_slots(base_dir: Path) -> tuple[dict[str, Slot], str]:
    """The adapter slots of an exported base and the fingerprint of the weights it was exported from.

    Raises:
        ValidationError: the folder was exported without adapter slots.
    """
    meta = _meta(Path(base_dir))
    slots = meta.get("adapter_slots")
    if not isinstance(slots, dict) or not slots.get("inputs"):
        raise ValidationError(
            f"{base_dir} has no adapter slots: export the base with `finmed export --model M --adapter-slots RUN`"
        )
    inputs = {name: Slot(tuple(s["shape"]), str(s["dtype"])) for name, s in slots["inputs"].items()}
    return inputs, str(slots["fingerprint"])


def read_adapter(folder: Path) -> dict[str, Any]:
    """An adapter export's description (finmed_export.json with kind "adapter").

    Raises:
        NotFoundError: no adapter file or description in `folder`.
        ValidationError: the folder holds another kind of export.
    """
    folder = Path(folder)
    if not (folder / ADAPTER_FILE).is_file():
        raise NotFoundError(f"{folder} holds no {ADAPTER_FILE}: write one with `finmed export --run RUN --as-adapter`")
    meta = _meta(folder)
    if meta.get("kind") != "adapter":
        raise ValidationError(f"{folder / EXPORT_META} does not describe an adapter export")
    return meta


def adapter_tensors(file: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, numpy dtype name) of every tensor in an `.onnx_adapter` file.

    Raises:
        ValidationError: the file is not an ONNX Runtime adapter file.
    """
    import onnxruntime as ort

    try:
        params = ort.AdapterFormat.read_adapter(str(file)).get_parameters()
    except Exception as exc:  # noqa: BLE001  (the runtime raises bare RuntimeErrors/Fail)
        raise ValidationError(f"{file} is not an ONNX Runtime adapter file: {str(exc).splitlines()[0][:200]}") from None
    return {name: (tuple(int(d) for d in value.shape()), str(value.numpy().dtype)) for name, value in params.items()}


def check_fits(
    slots: dict[str, Slot], tensors: dict[str, tuple[tuple[int, ...], str]], *, adapter: str, base: str
) -> int:
    """Refuse an adapter whose tensors do not fit the base's slots; returns the adapter's largest rank.

    A tensor must name a slot, have the slot's dtype and fixed dimensions, and the A and B tensors of one projection
    must agree on the rank.

    Raises:
        ValidationError: one line naming the first tensor that does not fit and why.
    """
    if not tensors:
        raise ValidationError(f"adapter {adapter!r} holds no tensors")
    ranks: dict[str, int] = {}
    for name in sorted(tensors):
        shape, dtype = tensors[name]
        slot = slots.get(name)
        if slot is None:
            raise ValidationError(
                f"adapter {adapter!r} does not fit base {base!r}: the base has no slot {name} (it adapts other "
                "layers or projections: export the base with --adapter-slots naming this run)"
            )
        if dtype != slot.dtype:
            raise ValidationError(f"adapter {adapter!r}: {name} is {dtype}, base {base!r} takes {slot.dtype}")
        if len(shape) != len(slot.shape) or any(
            want != RANK and got != want for got, want in zip(shape, slot.shape, strict=False)
        ):
            raise ValidationError(
                f"adapter {adapter!r} does not fit base {base!r}: {name} is {list(shape)}, the slot takes "
                f"{list(slot.shape)} (an adapter trained on another base model?)"
            )
        rank = shape[list(slot.shape).index(RANK)] if RANK in slot.shape else 0
        module = name.replace(".lora_A.", ".").replace(".lora_B.", ".")
        if ranks.setdefault(module, rank) != rank:
            raise ValidationError(
                f"adapter {adapter!r}: {name} has rank {rank} but its other half has rank {ranks[module]}"
            )
    return max(ranks.values())


def _meta(folder: Path) -> dict[str, Any]:
    path = folder / EXPORT_META
    if not path.is_file():
        raise NotFoundError(f"{folder} is not a finmed export (no {EXPORT_META})")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path} is not valid JSON: {exc.msg}") from None
    if not isinstance(meta, dict):
        raise ValidationError(f"{path} is not a JSON object")
    return meta
