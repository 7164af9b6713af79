"""Several LoRA adapters on one exported base: a base built with adapter slots, and runs written as adapter files.

Serving the finance adapter and one adapter per hospital as full exports costs a full model copy each. Instead the
base is exported once with optional LoRA inputs ("slots") and each run becomes a small `.onnx_adapter` file that
ONNX Runtime GenAI binds per request (`og.Adapters`, core/serving/engine.py). Built with the maintained tools, as far
as they go with our pins:

1. onnxruntime-genai's model builder builds the base with a template adapter (`adapter_path`): every adapted
   projection gets lora_A / lora_B MatMuls beside its base MatMul. At int4/int8 the builder's `nodes_to_exclude`
   keeps those two MatMuls in float (the base's own weights are quantized as usual).
2. Olive's ExtractAdapters pass (make_inputs, dynamic_lora_r, optional_inputs) turns their weights into optional
   graph inputs with a dynamic rank whose defaults are empty (rank 0: the plain base when no adapter is active), and
   writes the weights in onnxruntime's AdapterFormat.
3. A run goes through the same two steps at fp32 on the same base model; only its adapter file is kept, checked
   against the base's slots (core.serving.adapter_files) and described in finmed_export.json.

A run whose base is a merged run (medical stage 2 on the stage-1 base) is written as one adapter on the plain base:
the LoRAs of the chain concatenated with peft's `add_weighted_adapter(combination_type="cat")`, which is exact:
W0 + B1A1 + B2A2 = W1 + B2A2, at rank r1 + r2.

GPTQ and dynamic int8 quantize the graph after the builder (core/quantize/gptq.py, ORT quantize_dynamic) and would
quantize the slots too, so a base with slots is exported at fp32, int8 (nbits) or int4 only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import ConflictError, NotFoundError, ValidationError
from core.finetune.load import MERGED_FROM
from core.quantize.export import ExportResult, export_model, folder_size_mb, run_builder
from core.quantize.precisions import ExportOptions
from core.serving.adapter_files import ADAPTER_FILE, EXPORT_META, RANK, adapter_tensors, check_fits, read_slots

# The builder's names for the projections it can adapt (builders/base.py: make_attention / make_mlp).
PROJECTIONS = {
    "q_proj": "attn",
    "k_proj": "attn",
    "v_proj": "attn",
    "o_proj": "attn",
    "gate_proj": "mlp",
    "up_proj": "mlp",
    "down_proj": "mlp",
}
SLOT_PRECISIONS = ("fp32", "int8", "int4")


@dataclass(frozen=True)
class SlotLayout:
    """Which projections of which decoder layers carry a LoRA slot."""

    modules: frozenset[str]
    layers: frozenset[int]

    def union(self, other: SlotLayout) -> SlotLayout:
        return SlotLayout(self.modules | other.modules, self.layers | other.layers)

    def node_names(self) -> list[str]:
        """The builder's names of the LoRA MatMuls of this layout (kept float at int4/int8)."""
        return [
            f"/model/layers.{i}/{PROJECTIONS[m]}/{m}/lora_{half}/MatMul"
            for i in sorted(self.layers)
            for m in sorted(self.modules)
            for half in "AB"
        ]


@dataclass(frozen=True)
class AdapterExport:
    """What `export_adapter` wrote."""

    path: Path
    rank: int
    tensors: int
    size_mb: float
    seconds: float
    chain: list[str]


def base_fingerprint(folder: Path) -> str:
    """A cheap identity of a Hugging Face model folder's weights: its config and the head and size of each weight
    file (two different fine-tunes of one architecture differ in their first megabytes)."""
    folder = Path(folder)
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
        with weights.open("rb") as fh:
            digest.update(fh.read(4 * 2**20))
    return digest.hexdigest()[:32]


def _resolve(base: str) -> Path:
    """The local folder of a base-model name ('default', a folder; hub ids are not accepted here)."""
    from core.models.resolve import resolve_model
    from core.settings import get_settings

    ref = resolve_model(base, get_settings().models_dir)
    if ref.kind == "hub":
        raise ValidationError(f"adapter slots need a local base model folder, not the hub id {base!r}")
    return Path(ref.source)


def adapter_chain(run_dir: Path) -> tuple[list[Path], str]:
    """The peft adapter folders of a LoRA run and of the runs its base was merged from, bottom first, and the plain
    base model they stand on (a bare peft LoRA folder is a chain of one, on its base_model_name_or_path).

    Raises:
        NotFoundError: not a finished run.
        ValidationError: a run of the chain is not a LoRA run.
    """
    from core.finetune.load import is_run_folder, read_run_config

    chain: list[Path] = []
    current = Path(run_dir)
    if not is_run_folder(current) and (current / "adapter_config.json").is_file():  # a bare peft LoRA folder
        peft = json.loads((current / "adapter_config.json").read_text())
        if str(peft.get("peft_type", "")).upper() != "LORA" or peft.get("use_dora"):
            raise ValidationError(f"{current} is a {peft.get('peft_type')} adapter: only LoRA is served as an adapter")
        if not peft.get("base_model_name_or_path"):
            raise ValidationError(f"{current / 'adapter_config.json'} names no base_model_name_or_path")
        return [current], str(peft["base_model_name_or_path"])
    while True:
        config = read_run_config(current)
        if config.method.name != "lora":
            raise ValidationError(
                f"run {current} uses method {config.method.name}: only LoRA runs are served as adapters (export "
                "other methods as a merged model with `finmed export --run`)"
            )
        chain.insert(0, current / "adapter")
        base = config.model.base
        path = Path(base).expanduser()
        if base != "default" and is_run_folder(path):
            current = path
        elif base != "default" and (path / MERGED_FROM).is_file():
            current = Path(json.loads((path / MERGED_FROM).read_text())["run"])
        else:
            return chain, base


def _adapter_layout(adapter_dir: Path, depth: int) -> SlotLayout:
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    target = config.get("target_modules") or []
    if target == "all-linear":
        modules = frozenset(PROJECTIONS)
    else:
        modules = frozenset([target] if isinstance(target, str) else target)
    layers = config.get("layers_to_transform")
    chosen = range(depth) if layers is None else ([layers] if isinstance(layers, int) else layers)
    return SlotLayout(modules, frozenset(int(i) for i in chosen))


def layout_of(source: Path, depth: int) -> SlotLayout:
    """The slot layout a run (its whole chain) or a training YAML config needs on a base of `depth` layers.

    Raises:
        NotFoundError / ValidationError: neither a LoRA run nor a LoRA training config; a projection the builder
            cannot adapt.
    """
    from core.finetune.config import load_config
    from core.finetune.methods import resolve_layers

    source = Path(source)
    if source.is_dir():
        layout = SlotLayout(frozenset(), frozenset())
        for adapter in adapter_chain(source)[0]:
            layout = layout.union(_adapter_layout(adapter, depth))
    elif source.suffix in (".yaml", ".yml") and source.is_file():
        method = load_config(source, []).method
        if method.name != "lora":
            raise ValidationError(f"{source}: method {method.name} has no adapter slots; only lora")
        target = method.lora_target
        modules = frozenset(PROJECTIONS) if target == "all-linear" else frozenset(target)
        chosen = method.lora_layers
        layers = frozenset(range(depth) if chosen is None else resolve_layers(list(chosen), depth))
        layout = SlotLayout(modules, layers)
    else:
        raise NotFoundError(f"--adapter-slots {source}: give a finished LoRA run folder or a training YAML config")
    unknown = sorted(layout.modules - set(PROJECTIONS))
    if unknown:
        raise ValidationError(
            f"--adapter-slots {source}: the model builder cannot adapt {', '.join(unknown)}; "
            f"slots exist for {', '.join(PROJECTIONS)}"
        )
    return layout


def _depth(folder: Path) -> int:
    config = json.loads((Path(folder) / "config.json").read_text())
    return int(config.get("text_config", config)["num_hidden_layers"])


def _template_adapter(base_dir: Path, layout: SlotLayout, out: Path) -> Path:
    """A rank-1 LoRA of `layout` on the base (its weights are discarded; only the graph's shape matters)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype="float32")
    config = LoraConfig(
        r=1,
        lora_alpha=1,
        target_modules=sorted(layout.modules),
        layers_to_transform=sorted(layout.layers),
        layers_pattern="layers",
    )
    get_peft_model(model, config).save_pretrained(str(out))
    return out


def _extract_adapters(onnx_dir: Path, work: Path) -> Path:
    """Olive's ExtractAdapters on onnx_dir/model.onnx: the LoRA weights become optional inputs with a dynamic rank.

    The graph is replaced in place; returns the adapter file holding the weights that were extracted.
    """
    from olive.model import ONNXModelHandler
    from olive.passes.olive_pass import create_pass_from_dict
    from olive.passes.onnx.extract_adapters import ExtractAdapters

    logging.getLogger("olive").setLevel(logging.WARNING)
    config = {
        "make_inputs": True,
        "dynamic_lora_r": True,
        "optional_inputs": True,
        "save_format": "onnx_adapter",
        "save_as_external_data": True,
        "all_tensors_to_one_file": True,
        "external_data_name": "model.onnx.data",
    }
    out = work / "extracted"
    out.mkdir(parents=True)
    extract = create_pass_from_dict(ExtractAdapters, config, disable_search=True)
    extract.run(ONNXModelHandler(model_path=str(onnx_dir / "model.onnx")), str(out / "model.onnx"))
    weights = out / "adapter_weights.onnx_adapter"
    if not weights.is_file():
        raise ValidationError(f"no LoRA weights found in {onnx_dir / 'model.onnx'}: nothing to extract")
    for name in ("model.onnx", "model.onnx.data"):
        (onnx_dir / name).unlink(missing_ok=True)
        if (out / name).is_file():
            (out / name).replace(onnx_dir / name)
    return weights


def _slot_inputs(model_path: Path) -> dict[str, dict[str, Any]]:
    """The LoRA inputs of a graph: name -> {"shape": [ints and "lora_r"], "dtype": numpy dtype name}."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    slots: dict[str, dict[str, Any]] = {}
    for value in model.graph.input:
        if ".lora_A." not in value.name and ".lora_B." not in value.name:
            continue
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        if RANK not in dims:
            raise ValidationError(
                f"{value.name} has no dynamic rank ({dims}): the builder quantized the LoRA MatMuls, so the base "
                "cannot take adapters; export at fp32, int8 or int4"
            )
        slots[value.name] = {"shape": dims, "dtype": dtype}
    return slots


def export_base_with_slots(
    *,
    model: str,
    sources: list[Path],
    options: ExportOptions,
    out_dir: Path,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a plain base model with LoRA slots covering every run or training config in `sources`.

    Raises:
        ValidationError: a precision that would quantize the slots, no sources, a non-LoRA source.
        NotFoundError: a source or the base model is missing.
        ConflictError: out_dir exists and overwrite is False.
    """
    say = progress or (lambda _msg: None)
    if options.precision not in SLOT_PRECISIONS or options.builder_precision != options.precision:
        raise ValidationError(
            f"adapter slots are built at {', '.join(SLOT_PRECISIONS)} (int8 as nbits): {options.label()} quantizes "
            "the graph after the builder and would quantize the slots too"
        )
    if not sources:
        raise ValidationError("--adapter-slots: name at least one LoRA run or training config")
    if Path(out_dir).exists() and not overwrite:
        raise ConflictError(f"output folder {out_dir} already exists: choose another --out or pass --overwrite")
    base_dir = _resolve(model)
    depth = _depth(base_dir)
    layout = SlotLayout(frozenset(), frozenset())
    for source in sources:
        layout = layout.union(layout_of(Path(source), depth))
    fingerprint = base_fingerprint(base_dir)
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{Path(out_dir).name}-slots-", dir=Path(out_dir).parent) as tmp:
        say(f"template adapter: {len(layout.modules)} projections x {len(layout.layers)} layers")
        template = _template_adapter(base_dir, layout, Path(tmp) / "template")
        extra = {"adapter_path": str(template)}
        if options.precision != "fp32":
            extra["nodes_to_exclude"] = ",".join(layout.node_names())

        def slots(onnx_dir: Path) -> dict[str, Any]:
            say("turning the LoRA weights into adapter slots (Olive ExtractAdapters)")
            _extract_adapters(onnx_dir, Path(tmp) / "olive")
            inputs = _slot_inputs(onnx_dir / "model.onnx")
            layout_json = {"modules": sorted(layout.modules), "layers": sorted(layout.layers)}
            return {"adapter_slots": {"fingerprint": fingerprint, "layout": layout_json, "inputs": inputs}}

        return export_model(
            options=replace(options, extra={**options.extra, **extra}),
            out_dir=Path(out_dir),
            model=model,
            overwrite=overwrite,
            progress=say,
            post_build=slots,
        )


def _combined_adapter(base_dir: Path, chain: list[Path], out: Path) -> Path:
    """One peft LoRA folder equal to the chain's adapters applied in turn: concatenated (rank r1 + r2 + ...)."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    if len(chain) == 1:
        return chain[0]
    layouts = {_adapter_layout(a, _depth(base_dir)) for a in chain}
    if len(layouts) > 1:
        raise ValidationError(
            "the runs of this chain adapt different layers or projections; only chains with one layout are served "
            f"as one adapter ({', '.join(str(a.parent) for a in chain)})"
        )
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype="float32")
    names = [f"stage{i}" for i in range(len(chain))]
    peft_model = PeftModel.from_pretrained(model, str(chain[0]), adapter_name=names[0])
    for name, adapter in zip(names[1:], chain[1:], strict=True):
        peft_model.load_adapter(str(adapter), adapter_name=name)
    peft_model.add_weighted_adapter(names, [1.0] * len(names), "default", combination_type="cat")
    for module in peft_model.modules():  # fold the combined adapter's own scaling into A (1.0 unless rsLoRA)
        if isinstance(module, LoraLayer) and "default" in module.lora_A:
            scale = module.scaling["default"]
            if scale != 1.0:
                module.lora_A["default"].weight.data /= scale
    for name in names:
        peft_model.delete_adapter(name)
    peft_model.save_pretrained(str(out))
    return out


def export_adapter(
    *,
    run_dir: Path,
    base_export: Path,
    out_dir: Path,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> AdapterExport:
    """Write a LoRA run (with the runs it stands on) as an adapter file for a base exported with slots.

    Raises:
        ValidationError: the run was trained on another base model than the one `base_export` was exported from, or
            its tensors do not fit the base's slots (the message names the tensor).
        NotFoundError: no run, or the base export has no adapter slots.
        ConflictError: out_dir exists and overwrite is False.
    """
    from core.atomic import atomic_dir

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    out_dir, base_export = Path(out_dir), Path(base_export)
    if out_dir.exists() and not overwrite:
        raise ConflictError(f"output folder {out_dir} already exists: choose another --out or pass --overwrite")
    slots, fingerprint = read_slots(base_export)
    chain, base = adapter_chain(Path(run_dir))
    base_dir = _resolve(base)
    if base_fingerprint(base_dir) != fingerprint:
        raise ValidationError(
            f"run {run_dir} was trained on {base} ({base_dir}), which is not the model {base_export} was exported "
            "from: export the adapter for a base built from the same model"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-build-", dir=out_dir.parent) as tmp:
        work = Path(tmp)
        say(f"combining {len(chain)} LoRA adapter(s)" if len(chain) > 1 else "reading the LoRA adapter")
        peft_dir = _combined_adapter(base_dir, chain, work / "combined")
        say("building the adapter's graph (model builder, fp32)")
        fp32 = ExportOptions("fp32", extra={"adapter_path": str(peft_dir)})
        run_builder(base_dir, work / "onnx", work / "cache", fp32)
        say("extracting the adapter weights (Olive ExtractAdapters)")
        weights = _extract_adapters(work / "onnx", work / "olive")
        tensors = adapter_tensors(weights)
        wanted = {s.dtype for s in slots.values()}
        if {d for _, d in tensors.values()} != wanted and len(wanted) == 1:
            weights = _cast(weights, next(iter(wanted)), work / "cast.onnx_adapter")
            tensors = adapter_tensors(weights)
        rank = check_fits(slots, tensors, adapter=Path(run_dir).name, base=base_export.name)
        with atomic_dir(out_dir) as folder:
            shutil.copy(weights, folder / ADAPTER_FILE)
            meta = {
                "kind": "adapter",
                "method": "lora",
                "base_model": base,
                "fingerprint": fingerprint,
                "base_export": str(base_export.resolve()),
                "source": str(Path(run_dir).resolve()),
                "chain": [str(a.parent.resolve()) for a in chain],
                "rank": rank,
                "tensors": len(tensors),
                "size_mb": round(folder_size_mb(folder), 3),
                "seconds": round(time.perf_counter() - started, 2),
            }
            (folder / EXPORT_META).write_text(json.dumps(meta, indent=2))
    return AdapterExport(out_dir, rank, len(tensors), meta["size_mb"], meta["seconds"], meta["chain"])


def _cast(weights: Path, dtype: str, out: Path) -> Path:
    """The adapter file with every tensor cast to the base's input dtype (fp16 bases on CUDA)."""
    import numpy as np
    import onnxruntime as ort

    params = ort.AdapterFormat.read_adapter(str(weights)).get_parameters()
    fmt = ort.AdapterFormat()
    cast = {k: ort.OrtValue.ortvalue_from_numpy(v.numpy().astype(np.dtype(dtype))) for k, v in params.items()}
    fmt.set_parameters(cast)
    fmt.export_adapter(str(out))
    return out
