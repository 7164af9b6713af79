"""Run under torchrun with 2 processes (tests/unit/core/finetune/test_distributed.py does): checks that tensor
parallel logits equal the unsharded model's and that a 2-stage pipeline gives the unsplit model's loss and
gradients. Exits non-zero with the difference on failure. Usage: parallel_check.py MODEL_DIR."""

from __future__ import annotations

import sys

import torch


def main(model_dir: str) -> int:
    import peft
    from transformers import AutoModelForCausalLM

    from core.finetune.config import StrategySection
    from core.finetune.distributed import World
    from core.finetune.pipeline_parallel import Pipeline
    from core.finetune.tensor_parallel import parallelize

    def lora_model() -> torch.nn.Module:
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
        config = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"], lora_dropout=0.0)
        model = peft.get_peft_model(base, config)
        for name, param in model.named_parameters():  # lora_B starts at zero; make the adapters count
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.1)
        return model

    torch.manual_seed(1)
    ids = torch.randint(3, 400, (4, 12))  # (batch, seq)
    labels = ids.clone()
    labels[:, :4] = -100

    tp_world = World.join(StrategySection(name="tp", nproc=2), "cpu")
    reference = lora_model()
    want = reference(input_ids=ids).logits
    sharded = parallelize(lora_model(), tp_world.mesh["tp"])
    got = sharded(input_ids=ids).logits
    tp_diff = float((got - want).abs().max())

    pp_world = World(
        "pp", tp_world.rank, 2, pp=2, dp=1, tp=1, mesh=_mesh(("pp", "dp", "tp"), (2, 1, 1)), device=torch.device("cpu")
    )
    whole = lora_model()
    loss_want = whole(input_ids=ids, labels=labels).loss
    loss_want.backward()
    staged = lora_model()
    num_items = int((labels[:, 1:] != -100).sum())
    pipe = Pipeline(staged, pp_world, rows=4, width=12, pad_id=0)
    share = pipe.step({"input_ids": ids, "labels": labels}, num_items)
    loss_got = pp_world.sum(share)
    grads = {n: p.grad for n, p in whole.named_parameters() if p.requires_grad}
    grad_diff = max(
        float((p.grad - grads[n]).abs().max())
        for n, p in pipe.owned([(n, p) for n, p in staged.named_parameters() if p.requires_grad])
    )
    loss_diff = abs(loss_got - float(loss_want))
    report = f"tp logits max diff {tp_diff:.2e}; pp loss diff {loss_diff:.2e}; grad {grad_diff:.2e}"
    print(f"rank {tp_world.rank}: {report}", flush=True)
    ok = tp_diff < 1e-5 and loss_diff < 1e-5 and grad_diff < 1e-5
    tp_world.close()
    return 0 if ok else 1


def _mesh(names: tuple[str, ...], shape: tuple[int, ...]):  # type: ignore[no-untyped-def]
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh("cpu", shape, mesh_dim_names=names)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
