"""Exports of the tiny model: every CPU precision loads and generates in onnxruntime-genai, fp32 logits and merged
LoRA greedy output match PyTorch, and bad input leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConflictError, NotFoundError, ValidationError
from core.quantize.export import EXPORT_META, export_model
from core.quantize.precisions import FP16_CPU_MESSAGE, ExportOptions

PROMPT = "Risk level: 3; Basis: large_amount, night_time"


@pytest.fixture(scope="module")
def exports(lora_run_dir: Path, chat_jsonl: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {
        p: export_model(options=ExportOptions(p), out_dir=root / p, run_dir=lora_run_dir, calib=chat_jsonl).path
        for p in ("fp32", "int8", "int4", "gptq")
    }


def _genai_greedy(model_dir: Path, ids: list[int], steps: int) -> tuple[np.ndarray, list[int]]:
    """(prefill logits (seq, vocab), greedy tokens) from onnxruntime-genai."""
    import onnxruntime_genai as og

    model = og.Model(str(model_dir))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + steps, min_length=len(ids) + steps, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(np.asarray([ids], dtype=np.int32))
    logits = np.asarray(gen.get_output("logits"))[0]
    tokens = []
    for _ in range(steps):
        gen.generate_next_token()
        tokens.append(int(gen.get_next_tokens()[0]))
    return logits, tokens


@pytest.mark.parametrize("precision", ["fp32", "int8", "int4", "gptq"])
def test_each_precision_loads_and_generates(exports: dict[str, Path], precision: str) -> None:
    folder = exports[precision]
    assert {"genai_config.json", "model.onnx", "tokenizer.json", EXPORT_META} <= {f.name for f in folder.iterdir()}
    meta = json.loads((folder / EXPORT_META).read_text())
    assert meta["precision"] == precision and meta["method"] == "lora"
    _, tokens = _genai_greedy(folder, [5, 17, 42, 99], steps=6)
    assert len(tokens) == 6
    assert not list(folder.parent.glob(f".{precision}-*")), "temporary folder left behind"


def test_quantized_folders_are_smaller_and_use_matmulnbits(exports: dict[str, Path]) -> None:
    import onnx

    fp32 = sum(f.stat().st_size for f in exports["fp32"].glob("model.onnx*"))
    for precision in ("int8", "int4", "gptq"):
        size = sum(f.stat().st_size for f in exports[precision].glob("model.onnx*"))
        assert size < 0.7 * fp32, precision
        ops = {
            n.op_type for n in onnx.load(str(exports[precision] / "model.onnx"), load_external_data=False).graph.node
        }
        assert "MatMulNBits" in ops, precision


def test_fp32_logits_match_merged_pytorch(exports: dict[str, Path], lora_run_dir: Path, tiny_model_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ids = tokenizer(PROMPT)["input_ids"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(lora_run_dir))
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()  # (seq, vocab)
    logits, _ = _genai_greedy(exports["fp32"], ids, steps=1)
    np.testing.assert_allclose(logits, expected, atol=2e-4, rtol=1e-3)


def test_merged_lora_greedy_matches_pytorch(exports: dict[str, Path], lora_run_dir: Path, tiny_model_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ids = tokenizer(PROMPT)["input_ids"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(lora_run_dir))
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=8, min_new_tokens=8, do_sample=False)
    expected = out[0, len(ids) :].tolist()
    _, tokens = _genai_greedy(exports["fp32"], ids, steps=8)
    assert tokens == expected


def test_run_without_adapter_is_refused_and_writes_nothing(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(NotFoundError, match="holds no peft adapter"):
        export_model(options=ExportOptions("int4"), out_dir=out, run_dir=tiny_model_dir)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_gptq_without_calibration_is_refused(tmp_path: Path, lora_run_dir: Path) -> None:
    with pytest.raises(ValidationError, match="--calib"):
        export_model(options=ExportOptions("gptq"), out_dir=tmp_path / "out", run_dir=lora_run_dir)
    assert list(tmp_path.iterdir()) == []


def test_unknown_precision_and_cpu_fp16_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown precision 'int3'"):
        ExportOptions("int3")
    with pytest.raises(ValidationError) as info:
        ExportOptions("fp16", execution_provider="cpu")
    assert str(info.value) == FP16_CPU_MESSAGE
    assert ExportOptions("fp16", execution_provider="cuda").builder_precision == "fp16"


def test_existing_output_is_not_overwritten(tmp_path: Path, lora_run_dir: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConflictError, match="already exists"):
        export_model(options=ExportOptions("fp32"), out_dir=out, run_dir=lora_run_dir)
    assert (out / "keep.txt").read_text() == "mine"


def test_int4_knobs_reach_the_graph(tmp_path: Path, tiny_model_dir: Path) -> None:
    import onnx

    options = ExportOptions("int4", accuracy_level=1, block_size=64)
    folder = export_model(options=options, out_dir=tmp_path / "int4", model=str(tiny_model_dir)).path
    nodes = [n for n in onnx.load(str(folder / "model.onnx"), load_external_data=False).graph.node]
    attrs = [{a.name: a.i for a in n.attribute} for n in nodes if n.op_type == "MatMulNBits"]
    assert attrs and all(a["block_size"] == 64 and a["accuracy_level"] == 1 and a["bits"] == 4 for a in attrs)


def test_gptq_on_tied_embeddings_quantizes_the_lookup_too(tmp_path: Path, chat_jsonl: Path) -> None:
    import onnx

    from core.models.tiny import save_tiny_model

    base = save_tiny_model(tmp_path / "tied", tie_word_embeddings=True)
    sizes = {}
    for precision in ("int4", "gptq"):
        folder = export_model(
            options=ExportOptions(precision), out_dir=tmp_path / precision, model=str(base), calib=chat_jsonl
        ).path
        ops = [n.op_type for n in onnx.load(str(folder / "model.onnx"), load_external_data=False).graph.node]
        assert "GatherBlockQuantized" in ops and "Transpose" not in ops, precision
        sizes[precision] = sum(f.stat().st_size for f in folder.glob("model.onnx*"))
        _, tokens = _genai_greedy(folder, [5, 17, 42], steps=3)
        assert len(tokens) == 3
    assert sizes["gptq"] < 1.25 * sizes["int4"]
