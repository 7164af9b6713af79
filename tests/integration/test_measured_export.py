"""core.models.measured.export_measured on the tiny LoRA run: int8 measured beside fp32, one folder kept, the other's
figures left in report.json; a version registered from it passes (or, with fp32 kept, trivially passes) the gate."""

from __future__ import annotations

import json
from pathlib import Path

from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import User
from core.models.measured import export_measured
from core.models.registry import check_accuracy_gate, register_version


def test_int8_kept_when_within_the_gate_and_registered_with_its_row(
    tmp_path: Path, lora_run_dir: Path, chat_jsonl: Path
) -> None:
    out = tmp_path / "export"
    measured = export_measured(eval_path=chat_jsonl, out_dir=out, precision="int8", run_dir=lora_run_dir,
                               max_drop_pts=100.0)  # fmt: skip
    assert measured.precision == "int8" and measured.path == out / "models" / "int8"
    assert (measured.path / "genai_config.json").is_file() and not (out / "models" / "fp32").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["precisions"]["fp32"]["path"] is None and report["precisions"]["fp32"]["task_metric"] is not None
    assert measured.metrics["task_drop_pts"] == report["precisions"]["int8"]["task_drop_pts"]
    assert measured.note.startswith("int8 kept") and "vs fp32" in measured.note
    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        admin = User(username="eng", role="engineer", password_hash="-")
        session.add(admin)
        session.flush()
        version = register_version(session, user=admin, name="m", base_model=measured.base_model,
                                   method=measured.method, precision=measured.precision, path=measured.path,
                                   metrics=measured.metrics)  # fmt: skip
        assert check_accuracy_gate(version, max_drop_pts=100.0).ok


def test_fp32_kept_when_the_precision_fails_the_gate(tmp_path: Path, lora_run_dir: Path, chat_jsonl: Path) -> None:
    out = tmp_path / "export"
    # A gate below zero: no measured drop can pass it, so the fp32 reference must be kept and the note says why.
    measured = export_measured(eval_path=chat_jsonl, out_dir=out, precision="int8", run_dir=lora_run_dir,
                               max_drop_pts=-1.0)  # fmt: skip
    assert measured.precision == "fp32" and (out / "models" / "fp32" / "genai_config.json").is_file()
    assert not (out / "models" / "int8").exists()
    assert measured.note.startswith("fp32 kept: int8 lost") and "over the gate of -1.00" in measured.note
    assert measured.metrics["task_drop_pts"] == 0.0 and measured.metrics["report_label"] == "fp32"
