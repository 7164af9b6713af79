"""FGM perturbs the input embeddings along their gradient and restores them bit-for-bit."""

from __future__ import annotations

import peft
import torch

from core.finetune.fgm import FGM
from core.models.tiny import build_tiny_model


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[5, 17, 40, 99, 120, 7, 3, 8]])
    return {"input_ids": ids, "labels": ids.clone()}


def test_attack_moves_by_epsilon_and_restore_is_exact() -> None:
    model, _ = build_tiny_model(seed=1)
    model = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    weight = model.get_input_embeddings().weight
    before = weight.detach().clone()
    fgm = FGM(model, epsilon=0.7)
    model(**_batch()).loss.backward()
    assert fgm.attack()
    moved = weight.detach() - before
    torch.testing.assert_close(torch.linalg.vector_norm(moved), torch.tensor(0.7), rtol=1e-4, atol=1e-5)
    assert moved[[5, 17, 40]].abs().sum() > 0 and moved[300].abs().sum() == 0  # only rows that were used move
    adv_loss = model(**_batch()).loss
    adv_loss.backward()
    fgm.restore()
    assert torch.equal(weight.detach(), before)  # exact, not approximately
    assert weight.grad is None  # frozen embedding: its gradient never reaches the optimizer
    fgm.close()
    assert not weight.requires_grad


def test_adversarial_pass_changes_trainable_gradients() -> None:
    model, _ = build_tiny_model(seed=1)
    model = peft.get_peft_model(
        model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    lora = next(p for n, p in model.named_parameters() if "lora_B" in n)
    fgm = FGM(model, epsilon=1.0)
    model(**_batch()).loss.backward()
    clean = lora.grad.clone()
    fgm.attack()
    model(**_batch()).loss.backward()
    fgm.restore()
    assert not torch.allclose(lora.grad, clean)  # the adversarial gradient was added


def test_no_gradient_means_no_attack() -> None:
    model, _ = build_tiny_model(seed=1)
    fgm = FGM(model, epsilon=1.0)
    assert not fgm.attack()
    fgm.restore()
