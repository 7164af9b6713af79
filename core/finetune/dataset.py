"""Records -> token ids with answer-only labels, a seeded train/eval split, packing and padded batches.

Each record is rendered with the model's own chat template; the prompt is everything up to the generation
prompt, the answer is the rest (final assistant turn and its end-of-turn token). Labels are -100 on the prompt
so the loss is computed on the answer tokens only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from core.data.records import Record
from core.errors import ValidationError

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One tokenized training example (lists of equal length)."""

    input_ids: list[int]
    labels: list[int]


def encode_record(record: Record, tokenizer: Any, max_length: int) -> Example:
    """Render `record` with the chat template and mask the prompt.

    When too long, the prompt is cut from the left (the answer is what we learn), then the answer from the right.

    Raises:
        ValidationError: the tokenizer has no chat template or renders the prompt inconsistently.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValidationError("the base model's tokenizer has no chat template; add one to tokenizer_config.json")
    prompt_text = tokenizer.apply_chat_template(record.prompt_messages, add_generation_prompt=True, tokenize=False)
    full_text = tokenizer.apply_chat_template(
        record.prompt_messages + [{"role": "assistant", "content": record.answer}], tokenize=False
    )
    if not full_text.startswith(prompt_text):
        raise ValidationError("the chat template renders the prompt differently with and without the answer")
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full_text[len(prompt_text) :].rstrip("\n"), add_special_tokens=False)["input_ids"]
    answer_ids = answer_ids[: max(1, max_length // 2) if len(prompt_ids) + len(answer_ids) > max_length else None]
    room = max_length - len(answer_ids)
    prompt_ids = prompt_ids[-room:] if room > 0 else []
    return Example(prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + list(answer_ids))


def split_records(records: list[Record], eval_fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Seeded shuffle, then hold out `eval_fraction` (at least one record when the fraction is > 0).

    Raises:
        ValidationError: fewer than two records while an eval split is asked for.
    """
    if eval_fraction > 0 and len(records) < 2:
        raise ValidationError(f"the dataset has {len(records)} record; need at least 2 for a train/eval split")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(records) * eval_fraction)) if eval_fraction > 0 else 0
    eval_idx, train_idx = order[:n_eval], order[n_eval:]
    return [records[i] for i in train_idx], [records[i] for i in eval_idx]


def pack(examples: list[Example], block: int) -> list[Example]:
    """Concatenate examples into blocks of exactly `block` tokens (the tail shorter than a block is dropped).

    Examples in one block attend to each other (no block-diagonal mask); labels keep their answer-only masking.
    """
    ids: list[int] = []
    labels: list[int] = []
    for example in examples:
        ids.extend(example.input_ids)
        labels.extend(example.labels)
    return [Example(ids[i : i + block], labels[i : i + block]) for i in range(0, len(ids) - block + 1, block)]


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of examples.

    Returns:
        input_ids (batch, seq), attention_mask (batch, seq), labels (batch, seq) with -100 on padding.
    """
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch: a pure function of (seed, epoch), so a resumed run sees the same order."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def batches(
    examples: list[Example], batch_size: int, order: list[int], pad_id: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Micro-batches in `order` (the last one may be smaller)."""
    for start in range(0, len(order), batch_size):
        yield collate([examples[i] for i in order[start : start + batch_size]], pad_id)


def encode_all(records: list[Record], tokenizer: Any, max_length: int, *, packing: bool = False) -> list[Example]:
    """Encode every record (and pack when asked).

    Raises:
        ValidationError: nothing is left to train on (e.g. packing with fewer tokens than one block).
    """
    examples = [encode_record(r, tokenizer, max_length) for r in records]
    if packing:
        examples = pack(examples, max_length)
    if not examples:
        raise ValidationError(
            f"no training examples after encoding (packing needs at least {max_length} tokens); "
            "add records or lower dataset.max_length"
        )
    return examples
