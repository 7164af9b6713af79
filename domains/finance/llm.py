"""The LLM seam for risk scoring: a `RiskLLM` protocol and `LocalLLM`, an in-process transformers implementation.

The serving engine (ONNX Runtime GenAI) plugs in at merge as another `RiskLLM`; the pipeline only sees the protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from core.models.resolve import ModelRef, load_causal_lm, resolve_model
from core.settings import get_settings


class RiskLLM(Protocol):
    """Anything that turns rendered chat prompts into answers (greedy, one answer per prompt)."""

    name: str

    def generate(self, prompts: list[str], *, max_new_tokens: int) -> list[str]:
        """Answers for `prompts` (already rendered with the chat template), in order."""
        ...

    def render(self, messages: list[dict[str, str]]) -> str:
        """Chat messages rendered with this model's chat template, ready for `generate`."""
        ...


class LocalLLM:
    """A causal LM loaded in-process (base model, optionally with a PEFT adapter), batched greedy generation.

    Args:
        model: a model folder, 'default' or a hub id in the local cache (None: settings.base_model).
        adapter: a PEFT adapter folder applied on top (e.g. the finance LoRA adapter).
        batch_size: prompts per forward batch.
        device: torch device.
    """

    def __init__(
        self, model: str | None = None, *, adapter: Path | None = None, batch_size: int = 8, device: str = "cpu"
    ) -> None:
        settings = get_settings()
        ref: ModelRef = resolve_model(model or settings.base_model, settings.models_dir)
        self.model, self.tokenizer = load_causal_lm(ref, device=device)
        self.name = ref.name
        if adapter is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter))
            self.name = f"{ref.name}+{Path(adapter).name}"
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.device = device

    def render(self, messages: list[dict[str, str]]) -> str:
        """See RiskLLM.render."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[str], *, max_new_tokens: int = 32) -> list[str]:
        """See RiskLLM.generate; prompts are left-padded into batches of `batch_size`."""
        import torch

        answers: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            enc: Any = self.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            with torch.inference_mode():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )  # (batch, prompt_len + new)
            new = out[:, enc["input_ids"].shape[1] :]
            answers.extend(self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return [a.strip() for a in answers]
