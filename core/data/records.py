"""The canonical training record (chat messages whose last assistant message is the target) and its JSONL files.

One record per line: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...], "meta": {...}}``.
The LAST message must come from the assistant: it is the answer the model learns (loss only on its tokens).
Alpaca-style ``{"instruction", "input"?, "output"}`` and ``{"prompt", "completion"}`` lines are accepted and
converted on load, so every consumer sees one shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_file
from core.errors import NotFoundError, ValidationError

ROLES = ("system", "user", "assistant")
NO_ANSWER = "no assistant answer ('output', 'completion' or a final assistant message)"


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: str
    content: str


@dataclass(frozen=True)
class Record:
    """One training example: a conversation whose final assistant message is the target.

    Attributes:
        messages: the turns; the last one has role 'assistant'.
        meta: free-form provenance (source, id, labels); never shown to the model.
    """

    messages: tuple[Message, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """Every turn before the answer, as dicts for `tokenizer.apply_chat_template`."""
        return [{"role": m.role, "content": m.content} for m in self.messages[:-1]]

    @property
    def answer(self) -> str:
        """The target text (content of the final assistant message)."""
        return self.messages[-1].content

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON object for this record."""
        out: dict[str, Any] = {"messages": [{"role": m.role, "content": m.content} for m in self.messages]}
        if self.meta:
            out["meta"] = self.meta
        return out


def _text(obj: dict[str, Any], key: str, where: str, *, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ValidationError(f"{where}: missing field '{key}'")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    return value


def _from_messages(obj: dict[str, Any], where: str) -> tuple[Message, ...]:
    raw = obj["messages"]
    if not isinstance(raw, list) or not raw:
        raise ValidationError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    messages = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValidationError(f"{where}: messages[{i}] must be an object with 'role' and 'content'")
        role = _text(item, "role", f"{where}: messages[{i}]", required=True)
        content = _text(item, "content", f"{where}: messages[{i}]", required=True)
        if role not in ROLES:
            raise ValidationError(f"{where}: messages[{i}].role is {role!r}; use one of {', '.join(ROLES)}")
        messages.append(Message(role, content))  # type: ignore[arg-type]
    if messages[-1].role != "assistant" or not messages[-1].content.strip():
        raise ValidationError(f"{where}: {NO_ANSWER}")
    if not any(m.role == "user" for m in messages[:-1]):
        raise ValidationError(f"{where}: no user message before the assistant answer")
    return tuple(messages)


def _from_alpaca(obj: dict[str, Any], where: str) -> tuple[Message, ...]:
    instruction = _text(obj, "instruction", where, required=True) or ""
    extra = _text(obj, "input", where, required=False)
    output = _text(obj, "output", where, required=False)
    if not output or not output.strip():
        raise ValidationError(f"{where}: {NO_ANSWER}")
    user = f"{instruction}\n\n{extra}" if extra else instruction
    return (Message("user", user), Message("assistant", output))


def _from_prompt_completion(obj: dict[str, Any], where: str) -> tuple[Message, ...]:
    prompt = _text(obj, "prompt", where, required=True) or ""
    completion = _text(obj, "completion", where, required=False)
    if not completion or not completion.strip():
        raise ValidationError(f"{where}: {NO_ANSWER}")
    return (Message("user", prompt), Message("assistant", completion))


def parse_record(obj: Any, where: str = "record") -> Record:
    """Validate one decoded JSON object and convert it to a `Record`.

    Args:
        obj: the decoded line.
        where: how to name this record in error messages (e.g. "records.jsonl line 7").

    Raises:
        ValidationError: naming `where` and the missing or bad field.
    """
    if not isinstance(obj, dict):
        raise ValidationError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "messages" in obj:
        messages = _from_messages(obj, where)
    elif "instruction" in obj:
        messages = _from_alpaca(obj, where)
    elif "prompt" in obj:
        messages = _from_prompt_completion(obj, where)
    else:
        raise ValidationError(f"{where}: no 'messages', 'instruction' or 'prompt' field; see core/data/records.py")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValidationError(f"{where}: 'meta' must be an object")
    return Record(messages, meta)


def load_records(path: str | Path) -> list[Record]:
    """Read and validate a JSONL file of training records (blank lines are skipped).

    Raises:
        NotFoundError: the file does not exist.
        ValidationError: a line is not JSON or not a valid record (names file and line), or the file has no records.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"dataset file {path} does not exist")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            records.append(parse_record(obj, where))
    if not records:
        raise ValidationError(f"{path.name}: the dataset is empty (no records); add JSONL lines with an answer")
    return records


def write_records(path: str | Path, records: Iterable[Record]) -> Path:
    """Write records as canonical JSONL, atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    return path
