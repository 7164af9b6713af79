"""Training records: the three accepted shapes, line-numbered errors, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.data.records import Message, Record, load_records, parse_record, write_records
from core.errors import NotFoundError, ValidationError


def _write(path: Path, *lines: object) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_three_shapes_become_messages(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "r.jsonl",
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "meta": {"id": 1}},
        "",
        {"instruction": "do", "input": "this", "output": "done"},
        {"prompt": "p", "completion": "c"},
    )
    records = load_records(path)
    assert [r.answer for r in records] == ["a", "done", "c"]
    assert records[0].meta == {"id": 1}
    assert records[1].prompt_messages == [{"role": "user", "content": "do\n\nthis"}]
    assert records[2].messages == (Message("user", "p"), Message("assistant", "c"))


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ({"instruction": "do", "input": "x"}, "line 2: no assistant answer"),
        ({"prompt": "p", "completion": "  "}, "line 2: no assistant answer"),
        ({"messages": [{"role": "user", "content": "q"}]}, "line 2: no assistant answer"),
        ({"messages": [{"role": "bot", "content": "q"}]}, "messages[0].role is 'bot'"),
        ({"messages": [{"role": "assistant", "content": "a"}]}, "no user message"),
        ({"text": "free"}, "no 'messages', 'instruction' or 'prompt' field"),
        ({"prompt": 3, "completion": "c"}, "field 'prompt' must be a string"),
        ("{not json", "line 2: not valid JSON"),
    ],
)
def test_bad_line_is_named(tmp_path: Path, line: object, needle: str) -> None:
    path = _write(tmp_path / "records.jsonl", {"prompt": "p", "completion": "c"}, line)
    with pytest.raises(ValidationError, match="records.jsonl line 2") as info:
        load_records(path)
    assert needle in str(info.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ValidationError, match="empty.jsonl: the dataset is empty"):
        load_records(tmp_path / "empty.jsonl")
    with pytest.raises(NotFoundError, match="does not exist"):
        load_records(tmp_path / "nope.jsonl")


def test_write_then_read_roundtrip(tmp_path: Path) -> None:
    records = [
        parse_record({"instruction": "i", "output": "o"}),
        Record((Message("user", "u"), Message("assistant", "a")), {"k": 1}),
    ]
    path = write_records(tmp_path / "sub" / "out.jsonl", records)
    assert load_records(path) == records
    assert [p.name for p in path.parent.iterdir()] == ["out.jsonl"]  # no temporary file left
