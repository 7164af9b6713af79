"""`finmed data filter|augment` as a user runs them: malformed input is rejected with reasons and exit 0; a missing
file, an unknown domain or a missing translator is one line, a non-zero exit and no output left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FINMED = str(Path(sys.executable).parent / "finmed")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([FINMED, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def finance_records(path: Path) -> list[bytes]:
    from domains.finance.synthetic import generate
    from domains.finance.training import training_records

    frame = generate(4, seed=2, days=8)
    return [json.dumps(r, ensure_ascii=False).encode() for r in training_records(frame, frame["is_fraud"].to_numpy())]


def test_filter_malformed_input_then_augment(tmp_path: Path) -> None:
    good = finance_records(tmp_path)[:6]
    lying = json.loads(good[0])
    lying["messages"][-1]["content"] = "Risk level: 5; Basis: night_time"  # contradicts its own features
    lines = [
        *good,
        good[1][: len(good[1]) // 2],  # truncated JSON line
        good[2].replace(b"median", b"m\xe9dian"),  # wrong encoding
        json.dumps({"prompt": "big " * 3_000_000, "completion": "ok"}).encode(),  # a 12 MB field
        bytes(b for b in range(256) if b not in (10, 13)) * 8,  # binary data on one line
        json.dumps(lying).encode(),
    ]
    (tmp_path / "raw.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "blob.bin").write_bytes(os.urandom(50_000))
    result = run(
        "data",
        "filter",
        "--in",
        "raw.jsonl",
        "--out",
        "out/clean.jsonl",
        "--domain",
        "finance",
        "--tokenizer",
        "words",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    rejected = [json.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    reasons = {r["line"]: r["reason"] for r in rejected}
    assert reasons[7] == "bad_json" and reasons[8] == "not_utf8" and reasons[9] == "too_large"
    assert reasons[10] in ("binary_data", "not_utf8") and reasons[11] == "reason_unsupported"
    assert report["records_in"] == len(lines) and report["records_out"] == 6
    assert "semantic" in result.stdout and "reason_unsupported" in result.stdout

    binary = run(
        "data",
        "filter",
        "--in",
        "blob.bin",
        "--out",
        "bin/clean.jsonl",
        "--domain",
        "finance",
        "--tokenizer",
        "words",
        cwd=tmp_path,
    )
    assert binary.returncode == 0, binary.stderr
    bin_report = json.loads((tmp_path / "bin" / "report.json").read_text())
    assert bin_report["records_out"] == 0 and bin_report["tiers"][0]["dropped"] == bin_report["records_in"] > 0

    aug = run(
        "data",
        "augment",
        "--in",
        "out/clean.jsonl",
        "--out",
        "out/aug.jsonl",
        "--domain",
        "finance",
        "--method",
        "kg-substitute",
        "--tokenizer",
        "words",
        cwd=tmp_path,
    )
    assert aug.returncode == 0, aug.stderr
    variants = [json.loads(x) for x in (tmp_path / "out" / "aug.jsonl").read_text().splitlines()]
    assert sum("augmented_from" in v["meta"] for v in variants) >= 1


def test_one_line_errors_and_no_output(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"prompt": "Which card payments were at night?", "completion": "none"}\n')
    missing = one_error_line(
        run("data", "filter", "--in", "nope.jsonl", "--out", "o/c.jsonl", "--domain", "finance", cwd=tmp_path)
    )
    assert "nope.jsonl" in missing
    unknown = one_error_line(
        run("data", "filter", "--in", "in.jsonl", "--out", "o/c.jsonl", "--domain", "legal", cwd=tmp_path)
    )
    assert "legal" in unknown and "finance" in unknown
    no_translator = one_error_line(
        run(
            "data",
            "augment",
            "--in",
            "in.jsonl",
            "--out",
            "o/a.jsonl",
            "--domain",
            "finance",
            "--method",
            "backtranslate",
            cwd=tmp_path,
        )
    )
    assert "needs a translator" in no_translator
    assert not (tmp_path / "o").exists()
