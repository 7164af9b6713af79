"""Translators for back-translation: a local sequence-to-sequence folder (MarianMT, NLLB) or a prompted causal LM.

No zh<->en translation model ships offline here, so there is no default: back-translation needs a translator path.
A MarianMT pair is two folders (source -> pivot and pivot -> source); an NLLB folder translates both ways given
language codes. A causal LM is prompted to translate; the default model (SmolLM2-135M) is English-only and poor at
it, so use a multilingual instruct model. Generation is greedy, so the same input gives the same output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import NotFoundError

Translate = Callable[[list[str], str, str], list[str]]  # (texts, from language, to language) -> texts
NLLB_CODES = {"en": "eng_Latn", "zh": "zho_Hans", "fr": "fra_Latn", "de": "deu_Latn", "es": "spa_Latn"}
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "fr": "French", "de": "German", "es": "Spanish"}
NEEDS_TRANSLATOR = (
    "back-translation needs a translator: --translator PATH (a local MarianMT or NLLB folder, source -> pivot) and, "
    "for a Marian pair, --back-translator PATH (pivot -> source), or --kind causal --translator PATH (a multilingual "
    "instruct model). No zh<->en translation model ships offline here, and the default model (SmolLM2-135M) is "
    "English-only and translates poorly."
)


def _folder(path: str, option: str) -> Path:
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise NotFoundError(f"{option} {path}: no model folder there (expected {folder / 'config.json'})")
    return folder


class Seq2SeqTranslator:
    """One or two local sequence-to-sequence folders, loaded once, run greedily in small batches."""

    def __init__(
        self, forward: str, backward: str | None, *, source: str, batch_size: int = 8, max_new_tokens: int = 256
    ) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.models: dict[str, tuple[Any, Any]] = {}
        for role, path, option in (("forward", forward, "--translator"), ("backward", backward, "--back-translator")):
            if path is None:
                continue
            folder = _folder(path, option)
            model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
            self.models[role] = (model, AutoTokenizer.from_pretrained(folder))
        self.models.setdefault("backward", self.models["forward"])
        self.source = source

    def __call__(self, texts: list[str], source: str, target: str) -> list[str]:
        import torch

        role = "forward" if source == self.source else "backward"
        model, tokenizer = self.models[role]
        kwargs: dict[str, Any] = {}
        if hasattr(tokenizer, "src_lang") and source in NLLB_CODES and NLLB_CODES[target] in tokenizer.get_vocab():
            tokenizer.src_lang = NLLB_CODES[source]
            kwargs["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(NLLB_CODES[target])
        out: list[str] = []
        for i in range(0, len(texts), self.batch_size):
            batch = tokenizer(texts[i : i + self.batch_size], return_tensors="pt", padding=True, truncation=True)
            batch.pop("token_type_ids", None)
            with torch.no_grad():
                ids = model.generate(
                    **batch, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1, **kwargs
                )
            out.extend(t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True))
        return out


class CausalTranslator:
    """A causal LM prompted with "Translate from X to Y" through its chat template; greedy decoding."""

    def __init__(self, path: str, *, max_new_tokens: int = 256) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = _folder(path, "--translator")
        self.model = AutoModelForCausalLM.from_pretrained(folder).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.max_new_tokens = max_new_tokens

    def __call__(self, texts: list[str], source: str, target: str) -> list[str]:
        import torch

        out = []
        for text in texts:
            ask = (
                f"Translate the following text from {LANGUAGE_NAMES.get(source, source)} to "
                f"{LANGUAGE_NAMES.get(target, target)}. Answer with the translation only.\n\n{text}"
            )
            ids = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": ask}], add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            with torch.no_grad():
                gen = self.model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False)
            out.append(self.tokenizer.decode(gen[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip())
        return out
