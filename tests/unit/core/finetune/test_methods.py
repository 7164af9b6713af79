"""Every method trains the tiny model, lowers the training loss, and reloads with identical logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.errors import ValidationError
from core.finetune.load import load_trained, merge_for_export
from core.finetune.recipe import Recipe, resolve_paths

# One fixed batch (8 training records, batch 8) so that each step sees the same data and the loss must fall.
LR = {"full": 0.002, "lora": 0.01, "dora": 0.01, "adalora": 0.02, "ia3": 0.05, "adapter": 0.01,
      "prompt_tuning": 0.05, "prefix_tuning": 0.05, "p_tuning": 0.01}  # fmt: skip
FIXED = ("dataset.limit=10", "dataset.eval_fraction=0.2", "train.batch_size=8", "train.epochs=4")


def _train(tiny_train_config, method: str, *extra: str) -> tuple[Recipe, torch.Tensor, Path]:
    config = resolve_paths(tiny_train_config(*FIXED, f"method.name={method}", f"train.lr={LR[method]}", *extra))
    recipe = Recipe(config, show_progress=False)
    recipe.setup()
    recipe.train()
    probe = {"input_ids": torch.tensor([[5, 17, 40, 99, 120, 7]]), "attention_mask": torch.ones(1, 6, dtype=torch.long)}
    recipe.model.eval()
    with torch.no_grad():
        logits = recipe.model(**probe).logits
    return recipe, logits, recipe.finish()


@pytest.mark.parametrize("method", list(LR))
def test_method_lowers_loss_and_reloads_identically(tiny_train_config, method: str) -> None:
    extra = ("method.lora_target=all-linear",) if method == "adalora" else ()
    recipe, logits, run = _train(tiny_train_config, method, *extra)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if "loss" in row]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 0.01, losses
    assert 0 < recipe.trainable <= recipe.total_params
    report = json.loads((run / "eval.json").read_text())
    assert report["method"] == method and report["eval_loss"] > 0
    assert {"config.yaml", "tokenizer", "metrics.jsonl", "metrics.prom", "eval.json", "loss.png"} <= {
        p.name for p in run.iterdir()
    }
    model, _ = load_trained(run)
    probe = {"input_ids": torch.tensor([[5, 17, 40, 99, 120, 7]]), "attention_mask": torch.ones(1, 6, dtype=torch.long)}
    with torch.no_grad():
        again = model(**probe).logits
    torch.testing.assert_close(again, logits, rtol=0, atol=1e-6)


def test_lora_merge_matches_unmerged(tiny_train_config, tmp_path: Path) -> None:
    _, logits, run = _train(tiny_train_config, "lora")
    out = merge_for_export(run, tmp_path / "merged")
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not (out / "adapter_config.json").exists()
    probe = torch.tensor([[5, 17, 40, 99, 120, 7]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=probe).logits, logits, rtol=1e-4, atol=1e-4)


def test_prompt_tuning_export_keeps_virtual_tokens(tiny_train_config, tmp_path: Path) -> None:
    _, _, run = _train(tiny_train_config, "prompt_tuning", "method.num_virtual_tokens=5")
    out = merge_for_export(run, tmp_path / "merged")
    from safetensors.torch import load_file

    assert load_file(out / "prompt_embeddings.safetensors")["prompt_embeddings"].shape == (5, 64)
    assert json.loads((out / "finmed_export.json").read_text())["num_virtual_tokens"] == 5


def test_adapter_merge_is_refused_with_reason(tiny_train_config, tmp_path: Path) -> None:
    _, _, run = _train(tiny_train_config, "adapter")
    with pytest.raises(ValidationError, match="non-linear bottleneck layers"):
        merge_for_export(run, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_prompt_tuning_stacks_on_a_lora_run(tiny_train_config) -> None:
    _, _, lora_run = _train(tiny_train_config, "lora", "output.name=domain-lora")
    _, logits, run = _train(tiny_train_config, "prompt_tuning", f"model.base={lora_run}", "output.name=stacked")
    model, _ = load_trained(run)
    probe = {"input_ids": torch.tensor([[5, 17, 40, 99, 120, 7]]), "attention_mask": torch.ones(1, 6, dtype=torch.long)}
    with torch.no_grad():
        torch.testing.assert_close(model(**probe).logits, logits, rtol=0, atol=1e-5)


def test_lora_layers_count_from_the_top_and_a_missing_layer_is_refused(tiny_train_config) -> None:
    recipe, _, _ = _train(tiny_train_config, "lora", "method.lora_layers=[-1]")  # the tiny model has 2 layers
    names = [name for name, _ in recipe.model.named_parameters() if "lora_" in name]
    adapted = {name.split(".layers.")[1].split(".")[0] for name in names}
    assert adapted == {"1"}
    with pytest.raises(ValidationError, match=r"method.lora_layers: layer -3 does not exist: this model has 2 decoder"):
        _train(tiny_train_config, "lora", "method.lora_layers=[-3, -1]")
    with pytest.raises(ValidationError, match="names a layer twice"):
        _train(tiny_train_config, "lora", "method.lora_layers=[1, -1]")


def test_bf16_mixed_precision_lowers_loss_and_keeps_float32_weights(tiny_train_config) -> None:
    """train.mixed_precision=bf16: the same fixed batch still learns, and the trained weights stay float32."""
    recipe, _, run = _train(tiny_train_config, "lora", "train.mixed_precision=bf16")
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert losses[-1] < losses[0] - 0.01, losses
    trained = [p for p in recipe.model.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)


def test_mixed_precision_auto_follows_the_device() -> None:
    from core.finetune.recipe import resolve_mixed_precision

    cpu = torch.device("cpu")
    assert resolve_mixed_precision("fp32", cpu) == "fp32" and resolve_mixed_precision("bf16", cpu) == "bf16"
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert resolve_mixed_precision("auto", cpu) == ("bf16" if native else "fp32")
