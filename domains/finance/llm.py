"""The LLM seam for risk scoring: a `RiskLLM` protocol and `LocalLLM`, an in-process transformers implementation.

Besides the answer text, the cascade needs the model's level as a number it can rank by: the prompt ends with the
answer prefix ("Risk level: "), so the next token is the level digit, and the softmax over the six digit tokens at
that position is the model's distribution over levels 0-5. Its expectation gives a continuous LLM score, which ranks
far better than six integer levels; the generated text is still parsed strictly and a parse failure discards it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.errors import ValidationError
from core.models.resolve import ModelRef, load_causal_lm, resolve_model
from core.settings import get_settings

LEVELS = 6
# The LLM's own decision point on its score (expected level / 5): 2.5 lies between the highest level training targets
# give legitimate rows (2) and the lowest they give fraud (3) (targets.target_for).
LLM_THRESHOLD = 0.5
# A run folder may carry its own decision point (written by adaptation.adapt after calibrating a soft prompt):
# {"threshold": float, ...}; LocalLLM reads it, and fusion and evaluation use `llm.threshold`.
CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class LLMAnswer:
    """One generated answer: the text after the prompt, and the level distribution at its first token.

    `level_probs` has shape (6,) and sums to 1, or is None when the tokenizer does not write each digit 0-5 as one
    token (then only the parsed level is used).
    """

    text: str
    level_probs: np.ndarray | None


class RiskLLM(Protocol):
    """Anything that turns rendered chat prompts (ending with the answer prefix) into answers, greedily.

    `threshold` is the model's decision point on its score (expected level / 5): LLM_THRESHOLD unless calibrated.
    """

    name: str
    threshold: float

    def render(self, messages: list[dict[str, str]]) -> str:
        """Chat messages rendered with this model's chat template, ready for `answer`."""
        ...

    def answer(self, prompts: list[str], *, max_new_tokens: int) -> list[LLMAnswer]:
        """Answers for `prompts` (rendered, ending with the answer prefix), in order."""
        ...

    def level_probs(self, prompts: list[str]) -> np.ndarray:
        """Level distributions right after each prompt, shape (n, 6); NaN rows where unavailable."""
        ...


def read_threshold(run_dir: Path) -> float:
    """The decision point a run folder's calibration.json records, else LLM_THRESHOLD.

    Raises:
        ValidationError: the file exists but does not hold a threshold in (0, 1).
    """
    import json

    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return LLM_THRESHOLD
    try:
        value = float(json.loads(path.read_text())["threshold"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f'{path}: expected {{"threshold": number}} ({exc})') from exc
    if not 0.0 < value < 1.0:
        raise ValidationError(f"{path}: threshold must be between 0 and 1, not {value}")
    return value


def _export_threshold(folder: Path) -> float:
    """The decision point of the run an export was made from (an adapted soft prompt's calibration.json, now that
    soft prompts are exported exactly), else LLM_THRESHOLD."""
    import json

    meta = Path(folder) / "finmed_export.json"
    source = json.loads(meta.read_text()).get("source") if meta.is_file() else None
    return read_threshold(Path(source)) if source and Path(source).is_dir() else LLM_THRESHOLD


def expected_level(probs: np.ndarray) -> np.ndarray:
    """Expected level sum_k k * p_k for distributions of shape (..., 6)."""
    return np.asarray(probs, dtype=float) @ np.arange(LEVELS, dtype=float)


class LocalLLM:
    """A causal LM loaded in-process (base model, optionally with an adapter), batched greedy generation.

    Args:
        model: a model folder, 'default' or a hub id in the local cache (None: settings.base_model).
        adapter: a finished `finmed train` run folder (its base and adapters are loaded, stacked runs included,
            and `model` is ignored; its calibration.json, if any, sets `threshold`) or a plain PEFT adapter folder
            applied on top of `model`. A LoRA adapter is merged into the weights for inference.
        batch_size: prompts per forward batch.
        device: torch device.
    """

    def __init__(
        self, model: str | None = None, *, adapter: Path | None = None, batch_size: int = 8, device: str = "cpu"
    ) -> None:
        from core.finetune.load import is_run_folder, load_trained

        self.threshold = LLM_THRESHOLD
        if adapter is not None and is_run_folder(Path(adapter)):
            self.model, self.tokenizer = load_trained(adapter)
            self.name = f"run:{Path(adapter).name}"
            self.threshold = read_threshold(Path(adapter))
        else:
            settings = get_settings()
            ref: ModelRef = resolve_model(model or settings.base_model, settings.models_dir)
            self.model, self.tokenizer = load_causal_lm(ref, device=device)
            self.name = ref.name
            if adapter is not None:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, str(adapter))
                self.name = f"{ref.name}+{Path(adapter).name}"
        config = getattr(self.model, "active_peft_config", None)
        if config is not None and str(config.peft_type).endswith("LORA"):
            self.model = self.model.merge_and_unload()  # same outputs, no extra matmuls per layer
        self.model.to(device)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.device = device
        self.digit_ids = self._digit_ids()

    def _digit_ids(self) -> list[int] | None:
        """Token ids of '0'..'5' when each is a single token, else None."""
        ids = [self.tokenizer(str(k), add_special_tokens=False)["input_ids"] for k in range(LEVELS)]
        return [i[0] for i in ids] if all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == LEVELS else None

    def _encode(self, batch: list[str]) -> dict[str, Any]:
        enc = self.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _digit_softmax(self, logits: Any) -> np.ndarray:
        """(batch, vocab) logits -> (batch, 6) distribution over the digit tokens (NaN without digit ids)."""
        import torch

        if self.digit_ids is None:
            return np.full((logits.shape[0], LEVELS), np.nan)
        return torch.softmax(logits[:, self.digit_ids].float(), dim=-1).cpu().numpy()

    def render(self, messages: list[dict[str, str]]) -> str:
        """See RiskLLM.render."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[str], *, max_new_tokens: int = 32) -> list[str]:
        """Answer texts only (see `answer`)."""
        return [a.text for a in self.answer(prompts, max_new_tokens=max_new_tokens)]

    def answer(self, prompts: list[str], *, max_new_tokens: int = 32) -> list[LLMAnswer]:
        """See RiskLLM.answer; prompts are left-padded into batches of `batch_size`."""
        import torch

        answers: list[LLMAnswer] = []
        for start in range(0, len(prompts), self.batch_size):
            enc = self._encode(prompts[start : start + self.batch_size])
            with torch.inference_mode():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
            new = out.sequences[:, enc["input_ids"].shape[1] :]  # (batch, new tokens)
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            probs = self._digit_softmax(out.scores[0])  # scores[0]: (batch, vocab) at the first new token
            for text, p in zip(texts, probs, strict=True):
                answers.append(LLMAnswer(text.strip(), None if np.isnan(p).any() else p))
        return answers

    def _forward_parts(self) -> tuple[Any, Any] | None:
        """(transformers model under the PEFT wrapper, soft-prompt embeddings (1, virtual tokens, hidden)) for prompt
        tuning / p-tuning; (the model itself, None) for plain, LoRA or bottleneck models; None for prefix tuning
        (its prefixes live in the attention cache, which the shared-prefix pass below would collide with)."""
        config = getattr(self.model, "active_peft_config", None)
        if config is None or not config.is_prompt_learning:
            return self.model, None
        if str(config.peft_type).endswith("PREFIX_TUNING"):
            return None
        return self.model.get_base_model(), self.model.get_prompt(batch_size=1)

    def level_probs(self, prompts: list[str]) -> np.ndarray:
        """See RiskLLM.level_probs: forward passes only, no generation (for scoring and evaluation).

        Every risk prompt starts with the same tokens (chat template, system instructions; a soft prompt before
        them), often half the prompt. That shared prefix runs once; its attention cache is copied into each batch,
        which then runs only the rest of each prompt (right-padded, read at each row's own last token, only those
        positions through the output layer). Written here because transformers' prefix caching lives in
        generate(), which would also run a generation step; the result equals one full forward pass per prompt
        (tests compare the two, a soft prompt included).
        """
        import copy

        import torch
        from transformers import DynamicCache

        if not prompts:
            return np.zeros((0, LEVELS))
        parts = self._forward_parts()
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        if parts is None:
            return self.level_probs_full(prompts, ids)
        model, soft = parts
        shared = _common_prefix(ids, at_most=min(len(i) for i in ids) - 1)  # leave each prompt >= 1 token
        out = np.zeros((len(prompts), LEVELS))
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            head = model.get_input_embeddings()(torch.tensor([ids[0][:shared]], device=self.device))
            if soft is not None:
                head = torch.cat([soft.to(head.dtype), head], dim=1)
            n_head = head.shape[1]
            cache = DynamicCache(config=model.config)
            if n_head:
                model(inputs_embeds=head, cache=cache, use_cache=True, logits_to_keep=1)
            order = np.argsort([len(i) for i in ids], kind="stable")
            for start in range(0, len(prompts), self.batch_size):
                idx = order[start : start + self.batch_size]
                tails = [ids[i][shared:] for i in idx]
                width = max(len(t) for t in tails)
                tail_ids = torch.tensor([t + [pad] * (width - len(t)) for t in tails], device=self.device)
                mask = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in tails], device=self.device)
                batch_cache = copy.deepcopy(cache)
                if n_head:
                    batch_cache.batch_repeat_interleave(len(idx))
                last = mask.sum(dim=1) - 1  # (batch,) each row's last real token, within the tail
                keep, row_pos = torch.unique(last, return_inverse=True)
                logits = model(
                    input_ids=tail_ids,
                    attention_mask=torch.cat(
                        [torch.ones(len(idx), n_head, dtype=mask.dtype, device=self.device), mask], dim=1
                    ),
                    position_ids=(n_head + torch.arange(width, device=self.device)).expand(len(idx), width),
                    cache=batch_cache,
                    use_cache=True,
                    logits_to_keep=keep,
                ).logits  # (batch, len(keep), vocab)
                out[idx] = self._digit_softmax(logits[torch.arange(len(idx)), row_pos])
        return out

    def level_probs_full(self, prompts: list[str], ids: list[list[int]]) -> np.ndarray:
        """level_probs without the shared-prefix cache: whole prompts, right-padded, batched by length. Used for
        prefix tuning (its prefixes are in the attention cache, not the sequence, so each row's last token is at its
        own length - 1) and as the reference bench/finance.py times level_probs against."""
        import torch

        order = np.argsort([len(i) for i in ids], kind="stable")
        out = np.zeros((len(prompts), LEVELS))
        self.tokenizer.padding_side = "right"
        try:
            for start in range(0, len(prompts), self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = self._encode([prompts[i] for i in idx])
                last = enc["attention_mask"].sum(dim=1) - 1  # (batch,)
                keep, row_pos = torch.unique(last, return_inverse=True)
                with torch.inference_mode():
                    logits = self.model(**enc, logits_to_keep=keep).logits  # (batch, len(keep), vocab)
                out[idx] = self._digit_softmax(logits[torch.arange(len(idx)), row_pos])
        finally:
            self.tokenizer.padding_side = "left"
        return out


def _common_prefix(ids: list[list[int]], *, at_most: int) -> int:
    """Length of the token prefix all of `ids` share, at most `at_most`."""
    n = min(at_most, len(ids[0]))
    for other in ids[1:]:
        n = next((k for k in range(min(n, len(other))) if other[k] != ids[0][k]), min(n, len(other)))
    return n


class OnnxLLM:
    """An exported model folder (`finmed export`, e.g. int4) as a RiskLLM that asks the serving layer for every answer.

    Answers are decoded under the risk format's regex (parser.answer_regex: a quantized model cannot leave the
    format; the strict parser still checks), greedily, with the level distribution read from the log-probabilities
    of the six digit tokens at the first answer position. The prompt's system turn is a cached prefix, computed once.
    Three ways to reach the engine, all through core/serving (its batcher, limits and metrics):

    - `OnnxLLM(folder)`: the folder served in-process by its own ServingState (CLI, benchmarks);
    - `OnnxLLM(folder, serving=state, model=name)`: a model the running server already serves (the finance route);
    - `OnnxLLM(folder, client=client, model=name)`: a model server over HTTP (core.serving.client.ServingClient).

    Args:
        folder: the exported model folder (its tokenizer files render the chat template exactly as training did).
        serving: an in-process ServingState serving `model`.
        client: a ServingClient of a server serving `model`.
        model: served model name (default: the folder's name).
        constrained: decode under the answer regex (False: free text, for measuring what the regex buys).
    """

    def __init__(
        self,
        folder: Path,
        *,
        serving: Any = None,
        client: Any = None,
        model: str | None = None,
        constrained: bool = True,
    ) -> None:
        from transformers import AutoTokenizer

        if serving is not None and client is not None:
            raise ValidationError("give serving or client, not both")
        folder = Path(folder)
        self.model = model or folder.name
        if serving is None and client is None:
            from core.serving.state import ServingState

            serving = ServingState.in_process({self.model: folder})
        self.serving, self.client = serving, client
        self.name = f"onnx:{self.model}"
        self.threshold = _export_threshold(folder)
        self.constrained = constrained
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        ids = [self.tokenizer(str(k), add_special_tokens=False)["input_ids"] for k in range(LEVELS)]
        self.digit_ids = [i[0] for i in ids] if all(len(i) == 1 for i in ids) else None
        self._prefixes: set[str] = set()  # rendered system turns seen by render(): shared prompt prefixes

    def render(self, messages: list[dict[str, str]]) -> str:
        """See RiskLLM.render; the system turn is remembered as a prefix the engine computes once."""
        if messages and messages[0]["role"] == "system" and len(messages) > 1:
            head = self.tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=False)
            self._prefixes.add(head)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _options(self, prompt: str, max_new_tokens: int, *, constrained: bool) -> dict[str, Any]:
        from domains.finance.parser import answer_regex
        from domains.finance.prompts import ANSWER_PREFIX

        options: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": 0, "stop": ["\n"]}
        if self.digit_ids is not None:
            options["score_token_ids"] = self.digit_ids
        shared = max((p for p in self._prefixes if prompt.startswith(p)), key=len, default=None)
        if shared is not None:
            options["cache_prefix"] = shared
        if constrained:
            language = next((k for k, v in ANSWER_PREFIX.items() if prompt.endswith(v)), None)
            if language is not None:
                options["guided_regex"] = answer_regex(language, after=ANSWER_PREFIX[language])
        return options

    def _ask(self, prompts: list[str], max_new_tokens: int, *, constrained: bool) -> list[tuple[str, Any]]:
        """(text, digit log-probabilities or None) per prompt, through the serving layer."""
        options = [self._options(p, max_new_tokens, constrained=constrained) for p in prompts]
        if self.serving is not None:
            done = self.serving.generate_many_blocking(self.model, prompts, options)
            return [(r.text, r.first_scores) for r in done]
        out = []
        for prompt, opts in zip(prompts, options, strict=True):
            completion = self.client.complete(self.model, prompt, **opts)
            scores = completion.token_scores
            out.append((completion.text, None if scores is None else np.asarray(scores)))
        return out

    @staticmethod
    def _probs(scores: Any) -> np.ndarray:
        if scores is None:
            return np.full(LEVELS, np.nan)
        logp = np.asarray(scores, dtype=np.float64)
        probs = np.exp(logp - logp.max())
        return probs / probs.sum()

    def answer(self, prompts: list[str], *, max_new_tokens: int = 32) -> list[LLMAnswer]:
        """See RiskLLM.answer."""
        answers = []
        for text, scores in self._ask(prompts, max_new_tokens, constrained=self.constrained):
            probs = self._probs(scores)
            answers.append(LLMAnswer(text.strip(), None if np.isnan(probs).any() else probs))
        return answers

    def level_probs(self, prompts: list[str]) -> np.ndarray:
        """See RiskLLM.level_probs (one generated token per prompt, unconstrained)."""
        if not prompts:
            return np.zeros((0, LEVELS))
        return np.stack([self._probs(s) for _, s in self._ask(prompts, 1, constrained=False)])
