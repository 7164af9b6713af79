"""Operations and admin pages through AppTest: empty states, a run folder's charts, promotion refused by the
accuracy gate, rollback, users and API keys; and the status page's jobs."""

from __future__ import annotations

import json

import pytest

from apps.auth import SignedIn
from core.db.engine import get_engine, session_scope
from core.db.tables import ModelVersion, User
from core.settings import get_settings

from .conftest import open_app


def test_empty_states_say_what_to_do(people: dict[str, SignedIn]) -> None:
    at = open_app(people["engineer"], "operations")
    assert not at.exception, at.exception
    texts = [i.value for i in at.info]
    assert any("finmed train" in t for t in texts) and any("finmed quant-report" in t for t in texts)
    assert any("No model versions registered" in t for t in texts)
    assert any("finmed data filter" in t for t in texts)


def test_run_charts_and_gate_refusal_and_rollback(people: dict[str, SignedIn]) -> None:
    run = get_settings().data_dir / "runs" / "lora-a"
    run.mkdir(parents=True)
    rows = [
        {
            "step": s,
            "loss": 2.0 / s,
            "grad_norm": 1.0 + s,
            "vanishing_ratio": 0.5,
            "tiny_grad_share": 0.0,
            "layer_grad_norm": {"layer_0": 0.1 * s, "layer_1": 0.2 * s},
        }
        for s in range(1, 6)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with session_scope(get_engine()) as session:
        for version, status, drop in ((1, "retired", 0.2), (2, "promoted", 0.5), (3, "registered", 4.0)):
            session.add(
                ModelVersion(
                    name="fin",
                    version=version,
                    base_model="b",
                    method="lora",
                    precision="int8",
                    path="/x",
                    status=status,
                    metrics={"task_drop_pts": drop},
                )
            )
    at = open_app(people["engineer"], "operations")
    assert not at.exception, at.exception
    assert at.dataframe[0].value["run"].tolist() == ["runs/lora-a"]
    assert len(at.get("vega_lite_chart")) == 3  # loss, gradient health, per-layer norms
    at.selectbox(key="ops_version").select(3).run()
    at.button(key="ops_promote").click().run()
    assert "Refused: model fin v3 (int8) loses 4.00 accuracy points vs fp32, over the gate" in at.error[0].value
    at.button(key="ops_rollback").click().run()
    assert at.success[0].value == "fin v1 is now promoted."
    with session_scope(get_engine()) as session:
        states = {v.version: v.status for v in session.query(ModelVersion).all()}
    assert states == {1: "promoted", 2: "retired", 3: "registered"}


def _create(at) -> None:  # type: ignore[no-untyped-def]
    next(b for b in at.button if b.label == "Create user").click().run()


def test_admin_creates_users_and_keys(people: dict[str, SignedIn]) -> None:
    at = open_app(people["admin"], "admin")
    assert not at.exception, at.exception
    assert "No API keys yet" in at.info[0].value
    at.text_input(key="admin_username").input("rita")
    at.text_input(key="admin_password").input("short")
    _create(at)
    assert "too short" in at.error[0].value
    at.text_input(key="admin_username").input("rita")
    at.selectbox(key="admin_role").select("radiologist")
    at.text_input(key="admin_password").input("long-enough-1")
    _create(at)
    assert "User rita (radiologist) created." in at.success[0].value
    at.selectbox(key="admin_who").select("analyst")
    at.button(key="admin_disable").click().run()
    with session_scope(get_engine()) as session:
        assert session.get(User, people["analyst"].id).active is False
    at.text_input(key="admin_key_name").input("batch-client")
    at.button(key="admin_key_add").click().run()
    assert at.code[0].value.startswith("fm-")


def test_status_lists_jobs(people: dict[str, SignedIn]) -> None:
    at = open_app(people["analyst"])
    assert any("No background jobs yet" in i.value for i in at.info)
    from core.jobs import service

    with session_scope(get_engine()) as session:
        service.submit(session, user=session.get(User, people["compliance"].id), kind="audit.verify")
    at = open_app(people["compliance"])
    jobs = at.dataframe[1].value
    assert jobs[["kind", "status"]].to_dict("records") == [{"kind": "audit.verify", "status": "queued"}]


def test_data_filter_report_tab(people: dict[str, SignedIn]) -> None:
    """A report `finmed data filter`'s code wrote under the data folder: its tiers and reasons show, counts intact."""
    from core.data.checks import DataChecks
    from core.data.filter import FilterOptions, run_filter
    from core.data.reports import list_filter_reports
    from core.errors import PermissionDenied

    def record(user: str, answer: str) -> str:
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return json.dumps({"messages": messages})

    good = record("Score the card payment of 12.00 EUR at noon.", "Risk level: 0; Basis: none")
    folder = get_settings().data_dir / "data" / "march"
    folder.mkdir(parents=True)
    src = folder / "records.jsonl"
    src.write_text("\n".join([good, good, good[:-5], record("Another payment of 40.00 EUR.", "Risk level: 1")]) + "\n")
    out = folder / "clean.jsonl"
    run_filter(src, out, out.with_name("report.json"), checks=DataChecks(languages=("en",)), domain="test",
               options=FilterOptions())  # fmt: skip
    at = open_app(people["engineer"], "operations")
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    tiers = next(f for f in frames if "tier" in f and "passed" in f)
    assert (tiers["passed"] + tiers["dropped"] == tiers["input"]).all() and tiers["input"].iloc[0] == 4
    reasons = next(f for f in frames if "reason" in f)
    assert set(reasons["reason"]) >= {"exact_duplicate", "bad_json"}
    assert reasons.set_index("reason").loc["bad_json", "example line"] == 3
    assert any("4 records in, 2 kept" in c.value for c in at.caption)
    with session_scope(get_engine()) as session, pytest.raises(PermissionDenied):
        list_filter_reports(user=session.get(User, people["analyst"].id), root=get_settings().data_dir)
