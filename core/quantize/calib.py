"""Read calibration and held-out text: chat records (JSONL with "messages") or plain text, one sample per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import NotFoundError, ValidationError


def read_chat_records(path: Path) -> list[list[dict[str, str]]]:
    """The "messages" lists of a JSONL file of chat records.

    Raises:
        NotFoundError: the file does not exist.
        ValidationError: naming the first bad line (not JSON, no messages, bad roles, empty file).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"file {path} does not exist")
    records: list[list[dict[str, str]]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path} line {number}: not JSON ({exc.msg})") from None
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not messages:
            raise ValidationError(f'{path} line {number}: expected a chat record {{"messages": [...]}}')
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("content"), str) or "role" not in message:
                raise ValidationError(f"{path} line {number}: each message needs a 'role' and a string 'content'")
        records.append(messages)
    if not records:
        raise ValidationError(f"{path} holds no records")
    return records


def read_texts(path: Path, tokenizer: Any) -> list[str]:
    """Calibration or perplexity texts: chat JSONL rendered with the model's chat template, else one text per line.

    Raises:
        NotFoundError: the file does not exist.
        ValidationError: the file is empty or a JSONL line is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"file {path} does not exist")
    if path.suffix == ".jsonl":
        return [tokenizer.apply_chat_template(m, tokenize=False) for m in read_chat_records(path)]
    texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise ValidationError(f"{path} holds no text")
    return texts
