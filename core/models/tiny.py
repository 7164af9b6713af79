"""Tiny random Llama models and a byte-level BPE tokenizer built locally, so tests of training, export and
serving run in seconds with no download. Same architecture family and chat format as the default model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.atomic import atomic_dir

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# A small bilingual corpus in the suite's domains; enough for a tokenizer that splits real prompts sensibly.
_CORPUS = [
    "Risk level: 3; Basis: large_amount, night_time, new_location",
    "风险等级:4, 依据:大额转账,异地登录,夜间操作",
    "Transaction of 1250.00 USD at merchant M123 via card from DE at 02:14 local time.",
    "Account A42 made 7 transactions in the last hour; previous interval was 35 seconds.",
    "Findings: No focal consolidation, pleural effusion or pneumothorax. Heart size is normal.",
    "Impression: No acute cardiopulmonary abnormality.",
    "Indication: cough and fever. Comparison: chest radiograph from last year.",
    "You are a careful assistant. Answer in the exact format requested.",
    "system user assistant The quick brown fox jumps over the lazy dog 0123456789 .,;:!?()[]{}<>-_/+=*%$#@",
]


def build_tiny_tokenizer(vocab_size: int = 512) -> Any:
    """A deterministic byte-level BPE tokenizer with ChatML special tokens and chat template.

    Returns:
        transformers.PreTrainedTokenizerFast
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_config(vocab_size: int, **overrides: Any) -> Any:
    """A 2-layer Llama config (hidden 64, 4 heads, 2 KV heads); dimensions divisible by 32 so 4-bit
    block quantisation applies to every linear layer."""
    from transformers import LlamaConfig

    values: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,  # a finance risk prompt is ~520 byte-level tokens
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    values.update(overrides)
    return LlamaConfig(**values)


def build_tiny_model(seed: int = 0, **config_overrides: Any) -> tuple[Any, Any]:
    """(model, tokenizer): a randomly initialised tiny LlamaForCausalLM with deterministic weights for `seed`."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = tiny_config(len(tokenizer), **config_overrides)
    config.bos_token_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config.pad_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    model.eval()
    return model, tokenizer


def save_tiny_model(out_dir: Path, seed: int = 0, **config_overrides: Any) -> Path:
    """Write a tiny model folder (safetensors, tokenizer, chat template) to `out_dir` atomically."""
    out_dir = Path(out_dir)
    model, tokenizer = build_tiny_model(seed, **config_overrides)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir
