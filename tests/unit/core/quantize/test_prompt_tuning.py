"""A prompt-tuning run exports the base model plus its learned prompt as a prefix the server prepends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.quantize.export import export_model
from core.quantize.precisions import ExportOptions
from core.quantize.prefix import PREFIX_JSON, PREFIX_WEIGHTS, read_prefix_ids


def test_prompt_tuning_run_exports_prefix(tmp_path: Path, tiny_model_dir: Path) -> None:
    import onnxruntime_genai as og
    from peft import PromptTuningConfig, TaskType, get_peft_model
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path / "pt-run"
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
        PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4),
    )
    model.save_pretrained(str(run))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(run))

    folder = export_model(options=ExportOptions("int4"), out_dir=tmp_path / "out", run_dir=run).path
    description = json.loads((folder / PREFIX_JSON).read_text())
    assert description["num_virtual_tokens"] == 4 and description["hidden_size"] == 64
    assert load_file(str(folder / PREFIX_WEIGHTS))["embeddings"].shape == (4, 64)
    ids = read_prefix_ids(folder)
    assert len(ids) == 4 and all(0 <= i < 512 for i in ids)
    assert json.loads((folder / "finmed_export.json").read_text())["method"] == "prompt_tuning"

    genai = og.Model(str(folder))
    params = og.GeneratorParams(genai)
    params.set_search_options(max_length=12, do_sample=False)
    gen = og.Generator(genai, params)
    gen.append_tokens(np.asarray([ids + [5, 6, 7]], dtype=np.int32))
    gen.generate_next_token()
    assert gen.get_next_tokens().shape == (1,)
