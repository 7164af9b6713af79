"""`finmed quant-report` and `finmed export` end to end on the tiny model, through the real CLI entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from core.cli import main


def _finmed(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["finmed", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _torch_perplexity(run_dir: Path, eval_path: Path, tmp_path: Path) -> float:
    """exp(mean next-token NLL) of the merged run in PyTorch over the eval conversations, as the report tokenises."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.quantize.calib import read_chat_records
    from core.quantize.merge import merge_run
    from core.quantize.report import MAX_PPL_TOKENS

    merged = merge_run(run_dir, tmp_path / "merged").path
    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).eval()
    nll, count = 0.0, 0
    for messages in read_chat_records(eval_path):
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:MAX_PPL_TOKENS]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].double()  # (seq - 1, vocab)
        nll += float(torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum"))
        count += len(ids) - 1
    return float(torch.exp(torch.tensor(nll / count)))


def test_quant_report_end_to_end(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lora_run_dir: Path, chat_jsonl: Path
) -> None:
    out = tmp_path / "report"
    code = _finmed(
        monkeypatch,
        "quant-report",
        "--run",
        str(lora_run_dir),
        "--eval",
        str(chat_jsonl),
        "--calib",
        str(chat_jsonl),
        "--precisions",
        "fp32,fp16,int8,int4,gptq",
        "--out",
        str(out),
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["metric"] == "exact_match" and report["n_eval"] == 12 and report["method"] == "lora"
    rows = report["precisions"]
    assert list(rows) == ["fp32", "fp16", "int8", "int4", "gptq"]
    assert "CUDA precision" in rows["fp16"]["skipped"]
    for label in ("fp32", "int8", "int4", "gptq"):
        row = rows[label]
        for key in (
            "size_mb",
            "task_metric",
            "task_drop_pts",
            "perplexity",
            "peak_mem_mb",
            "ttft_ms",
            "decode_tps_b1",
            "decode_tps_b8",
        ):
            assert isinstance(row[key], float | int), (label, key)
        assert 0 <= row["task_metric"] <= 1 and row["perplexity"] > 1 and row["decode_tps_b8"] > 0
        assert (out / "models" / label / "genai_config.json").is_file()
    assert rows["fp32"]["task_drop_pts"] == 0
    assert rows["int4"]["size_mb"] < rows["fp32"]["size_mb"]
    # fp32 ONNX is the merged model: its perplexity is what PyTorch gives on the same tokens, within tolerance.
    assert rows["fp32"]["perplexity"] == pytest.approx(_torch_perplexity(lora_run_dir, chat_jsonl, tmp_path), rel=1e-3)
    table = (out / "report.md").read_text()
    assert "| int4 |" in table and "skipped" in table
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".report-*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "int4"], "holds no peft adapter"),
        (["--precision", "int3"], "unknown precision 'int3'"),
        (["--precision", "gptq"], "needs calibration data"),
        (["--precision", "fp16"], "fp16 is a CUDA precision"),
    ],
)
def test_export_bad_input_is_one_line_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tiny_model_dir: Path,
    lora_run_dir: Path,
    args: list[str],
    message: str,
) -> None:
    run = tiny_model_dir if message == "holds no peft adapter" else lora_run_dir
    out_root = tmp_path / "exports"
    out_root.mkdir()
    code = _finmed(monkeypatch, "export", "--run", str(run), "--out", str(out_root / "m"), *args)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert list(out_root.iterdir()) == []
