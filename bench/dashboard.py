"""Dashboard page load time with many scored transactions in the database.

Seeds a fresh SQLite database (in a temporary data folder) with N scored transactions (finance assessments), review
items for the flagged share, and their audit events, then opens each page the way a browser request would (the
app's main script through Streamlit's AppTest, as the signed-in role) and times the full server-side run, which is
what a browser waits for before it paints. The goal (issue 17): every page under 2 s with 100k scored rows.

The Risk scoring page shows the batch just scored, not the stored assessments, so it is also timed with an N-row
batch open: synthetic transactions are scored by a real `finance.score` job (submitted as the analyst, run by the
worker's own code with the LLM budget at 0, so no model is needed), and the page is opened the way the rerun after
submitting it does (the session remembers the job). Timed: that first load, a rerun after moving to the next page of
the assessments table (all levels, 1000 rows a page), then a rerun after setting the level filter to the levels an
analyst reviews.

    PYTHONPATH=. python bench/dashboard.py --rows 100000 --drafts 5000 --repeat 5

Prints the comparison table and writes bench/results/dashboard.md and .json (or into --out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bench.common import REPO, require_quiet

PAGES = (
    ("analyst", "status", "Status"),
    ("analyst", "finance", "Risk scoring"),
    ("radiologist", "medical", "Radiology worklist"),
    ("compliance", "compliance", "Review queue"),
    ("compliance", "audit", "Audit trail"),
    ("engineer", "operations", "Operations"),
    ("admin", "admin", "Users and API keys"),
)
FLAGGED_SHARE = 0.02
SCORED_FILTER = [3, 4, 5]  # the level filter the scored-batch timing sets: the levels an analyst reviews
ROWS_PER_ACCOUNT = 50  # about what synthetic.generate makes per account over SCORED_DAYS
SCORED_DAYS = 30


def seed(rows: int, drafts: int) -> dict[str, Any]:
    """Users, `rows` assessments, review items (with outputs and audit events) for the flagged ones, and `drafts`
    drafted impressions waiting in the radiologist queue (two hospitals)."""
    from core.audit.record import record_event
    from core.auth.users import create_user
    from core.db.base import utcnow
    from core.db.engine import get_engine, session_scope
    from core.db.migrate import upgrade
    from core.review.tables import ModelOutput, ReviewItem
    from domains.finance.tables import Assessment
    from domains.medical.tables import MedicalDraft

    engine = get_engine()
    upgrade(engine)
    now = utcnow()
    with session_scope(engine) as session:
        users = {
            r: create_user(session, username=r, role=r, password="bench-password")
            for r in ("analyst", "radiologist", "compliance", "engineer", "admin")
        }
        signed = {r: (u.id, u.username, u.role) for r, u in users.items()}
    batch = uuid.uuid4().hex
    chunk = 20_000
    for start in range(0, rows, chunk):
        with session_scope(engine) as session:
            session.execute(
                insert(Assessment),
                [
                    {
                        "batch_id": batch,
                        "transaction_id": f"T{i}",
                        "account_id": f"A{i % 5000}",
                        "model_version": "numeric:bench",
                        "numeric_score": (i % 100) / 100,
                        "numeric_level": i % 6,
                        "llm_level": None,
                        "llm_score": None,
                        "parse_ok": None,
                        "llm_answer": None,
                        "fused_score": (i % 100) / 100,
                        "risk_level": i % 6,
                        "disagreement": None,
                        "adjudicated": False,
                        "audit_sample": False,
                        "reasons": ["velocity"],
                        "created_at": now,
                    }
                    for i in range(start, min(rows, start + chunk))
                ],
            )
    flagged = int(rows * FLAGGED_SHARE)
    with session_scope(engine) as session:
        session.execute(
            insert(ModelOutput),
            [
                {
                    "domain": "finance",
                    "input_text": f"T{i}",
                    "system_prompt": "",
                    "prompt": f"score T{i}",
                    "raw_output": "risk level 5",
                    "parsed": {"risk_level": 5},
                    "parse_error": "",
                    "model_name": "numeric:bench",
                    "model_version": 1,
                    "precision": "",
                    "latency_ms": 1.0,
                    "context_ids": [],
                    "created_at": now,
                    "created_by": signed["analyst"][0],
                }
                for i in range(flagged)
            ],
        )
        ids = session.scalars(select(ModelOutput.id)).all()
        session.execute(
            insert(ReviewItem),
            [
                {
                    "output_id": i,
                    "domain": "finance",
                    "queue": "analyst",
                    "state": "pending",
                    "priority": 20,
                    "reasons": ["high_risk"],
                    "policy_name": "finance-default",
                    "policy_version": 1,
                    "policy_hash": "0" * 64,
                    "created_at": now,
                    "decision_reason": "",
                }
                for i in ids
            ],
        )
    _seed_drafts(engine, drafts, signed["radiologist"][0], now, ModelOutput, ReviewItem, MedicalDraft)
    for start in range(0, flagged, 1000):
        with session_scope(engine) as session:
            for i in range(start, min(flagged, start + 1000)):
                record_event(
                    session, actor="analyst", action="review.routed", subject_type="review_item", subject_id=str(i + 1)
                )
    return {"users": signed, "flagged": flagged}


def _seed_drafts(engine: Any, drafts: int, author: int, now: Any, output: Any, item: Any, draft: Any) -> None:
    """`drafts` drafted impressions, each with its model output and a pending radiologist review item."""
    from core.db.engine import session_scope

    study = {"indication": "Cough.", "findings": "The lungs are clear. No pleural effusion.", "comparison": ""}
    for start in range(0, drafts, 1000):
        chunk = range(start, min(drafts, start + 1000))
        with session_scope(engine) as session:
            first = session.scalar(select(output.id).order_by(output.id.desc()).limit(1)) or 0
            session.execute(
                insert(output),
                [
                    {
                        "domain": "medical", "input_text": f"S{i}", "system_prompt": "", "prompt": f"draft S{i}",
                        "raw_output": "No acute cardiopulmonary process.", "parsed": {}, "parse_error": "",
                        "model_name": "medical:bench", "model_version": 1, "precision": "int8", "latency_ms": 500.0,
                        "context_ids": [], "created_at": now, "created_by": author,
                    }
                    for i in chunk
                ],
            )  # fmt: skip
            outputs = session.scalars(select(output.id).where(output.id > first).order_by(output.id)).all()
            session.execute(
                insert(item),
                [
                    {
                        "output_id": o, "domain": "medical", "queue": "radiologist", "state": "pending",
                        "priority": 50, "reasons": ["draft"], "policy_name": "medical-default", "policy_version": 1,
                        "policy_hash": "0" * 64, "created_at": now, "decision_reason": "",
                    }
                    for o in outputs
                ],
            )  # fmt: skip
            items = session.scalars(select(item.id).where(item.output_id.in_(outputs)).order_by(item.id)).all()
            session.execute(
                insert(draft),
                [
                    {
                        "study_id": f"S{i}", "hospital": ("st_marys", "lakeside")[i % 2], "study": study,
                        "prompt": f"draft S{i}", "draft_text": "No acute cardiopulmonary process.",
                        "draft_labels": {"pleural effusion": "absent"}, "model_name": "medical:bench",
                        "model_version": 1, "precision": "int8", "latency_ms": 500.0, "context_ids": [],
                        "output_id": o, "review_item_id": it, "state": "drafted", "created_at": now,
                        "created_by": author,
                    }
                    for i, o, it in zip(chunk, outputs, items, strict=True)
                ],
            )  # fmt: skip


def scored_job(analyst: int, rows: int) -> dict[str, Any]:
    """A finished `finance.score` job of the analyst whose kept batch holds `rows` scored synthetic transactions.

    The numeric screen is fitted as `finmed up` fits it (smaller history); the transactions file is submitted with
    the mapping the page's form submits for canonical columns and LLM budget 0, and the worker's own `run_one`
    claims and runs the job, so the kept batch is exactly what a page finds after a real background scoring.
    """
    from core.db.engine import get_engine, session_scope
    from core.db.tables import User
    from core.jobs import service as jobs
    from core.jobs.worker import Worker
    from core.settings import get_settings
    from domains.finance.features import compute_features
    from domains.finance.ingest import CANONICAL
    from domains.finance.jobs import KIND
    from domains.finance.screen import fit_screen
    from domains.finance.service import default_numeric_path
    from domains.finance.synthetic import generate

    history = generate(200, seed=0, days=30, fraud_rate=0.2)
    fit_screen(history, history["is_fraud"].to_numpy(), compute_features(history), max_iter=40).save(
        default_numeric_path()
    )
    accounts = max(10, -(-rows * 6 // (5 * ROWS_PER_ACCOUNT)))  # 20% spare: never short of `rows`
    frame = generate(accounts, seed=7, days=SCORED_DAYS, fraud_rate=0.04).drop(columns=["is_fraud", "scheme"])
    if len(frame) < rows:
        raise SystemExit(f"synthetic.generate made {len(frame)} rows, fewer than --rows {rows}")
    path = get_settings().data_dir / "bench-transactions.parquet"
    frame.head(rows).to_parquet(path, index=False)
    params = {
        "path": str(path),
        "mapping": {name: name for name in CANONICAL if name in frame.columns},
        "llm_budget": 0,
        "adapter": "",
    }
    engine = get_engine()
    with session_scope(engine) as session:
        job_id = jobs.submit(session, user=session.get(User, analyst), kind=KIND, params=params).id
    t0 = time.perf_counter()
    if Worker(engine, kinds=[KIND]).run_one() != job_id:
        raise SystemExit(f"the worker did not run scoring job {job_id}")
    score_s = time.perf_counter() - t0
    with session_scope(engine) as session:
        job = jobs.get_job(session, user=session.get(User, analyst), job_id=job_id)
        status, error, result = job.status, job.error, dict(job.result or {})
    if status != "succeeded" or result["counts"]["scored"] != rows:
        raise SystemExit(f"scoring job {job_id} {status}: {error or result.get('counts')}")
    return {"job": job_id, "score_s": score_s, "counts": result["counts"]}


def time_scored_page(user: tuple[int, str, str], job: int, rows: int, repeat: int) -> list[dict[str, Any]]:
    """The Risk scoring page with job `job`'s scored batch open: first load, next table page, level filter rerun."""
    from streamlit.testing.v1 import AppTest
    from streamlit.util import calc_hash

    from apps.auth import SESSION_KEY, SignedIn
    from domains.finance.page import PAGE_SIZES

    def shown(at: AppTest, expect: str) -> None:
        if at.exception or [t.value for t in at.title] != ["Risk scoring"]:
            raise SystemExit(f"Risk scoring with job {job} open did not load: {at.exception}")
        if not any(expect in c.value for c in at.caption):
            raise SystemExit(f"Risk scoring with job {job} open: no caption with {expect!r}")

    steps: dict[str, list[float]] = {"first load": [], "next page": [], "level filter": []}
    for _ in range(repeat + 1):  # the first run imports modules: reported apart
        at = AppTest.from_file(str(REPO / "apps" / "main.py"), default_timeout=300)
        at.session_state[SESSION_KEY] = SignedIn(*user)
        at.session_state["finance_job_submitted"] = job  # the rerun after submitting: the session knows the job
        at.session_state["finance_job_opened"] = None
        at._page_hash = calc_hash("finance")
        start = time.perf_counter()
        at.run()
        steps["first load"].append(time.perf_counter() - start)
        shown(at, f"{rows} of {rows} assessments match")
        if "finance_page" not in [n.key for n in at.number_input]:
            raise SystemExit(f"{rows} rows fit on one table page: give --rows above {PAGE_SIZES[1]}")
        at.number_input(key="finance_page").set_value(2)
        start = time.perf_counter()
        at.run()
        steps["next page"].append(time.perf_counter() - start)
        shown(at, f"{rows} of {rows} assessments match")
        if at.number_input(key="finance_page").value != 2:
            raise SystemExit("the assessments table did not move to its page 2")
        at.multiselect(key="finance_f_levels").set_value(SCORED_FILTER)
        start = time.perf_counter()
        at.run()
        steps["level filter"].append(time.perf_counter() - start)
        shown(at, f"of {rows} assessments match")
        table = next(d.value for d in at.dataframe if "transaction_id" in d.value.columns)
        if not table["risk_level"].isin(SCORED_FILTER).all():
            raise SystemExit(f"the level filter {SCORED_FILTER} was not applied to the assessments table")
    return [
        {
            "page": f"finance ({rows}-row batch open: {step})",
            "role": user[2],
            "first_s": seconds[0],
            "median_s": statistics.median(seconds[1:]),
            "max_s": max(seconds[1:]),
        }
        for step, seconds in steps.items()
    ]


def time_pages(users: dict[str, tuple[int, str, str]], repeat: int) -> list[dict[str, Any]]:
    from streamlit.testing.v1 import AppTest
    from streamlit.util import calc_hash

    from apps.auth import SESSION_KEY, SignedIn

    app = str(REPO / "apps" / "main.py")
    rows = []
    for role, url, title in PAGES:
        seconds = []
        for _ in range(repeat + 1):  # the first run imports modules: reported apart
            at = AppTest.from_file(app, default_timeout=120)
            at.session_state[SESSION_KEY] = SignedIn(*users[role])
            at._page_hash = calc_hash(url)
            start = time.perf_counter()
            at.run()
            seconds.append(time.perf_counter() - start)
            shown = [t.value for t in at.title]
            if at.exception or shown != [title]:
                raise SystemExit(f"page {url} as {role} did not load: {shown} {at.exception}")
        rows.append(
            {
                "page": url,
                "role": role,
                "first_s": seconds[0],
                "median_s": statistics.median(seconds[1:]),
                "max_s": max(seconds[1:]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=100_000,
        help="scored transactions to seed, and rows of the scored batch opened on the Risk scoring page (over 1000)",
    )
    parser.add_argument("--drafts", type=int, default=5_000, help="drafted impressions in the radiologist queue")
    parser.add_argument("--repeat", type=int, default=5, help="timed loads per page (after one warm-up)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="folder for the result files")
    parser.add_argument("--allow-busy", action="store_true", help="run on busy cores (the results say so)")
    args = parser.parse_args()
    if args.rows <= 1000:
        parser.error("--rows must be over 1000: the scored batch needs a second table page (1000 rows a page)")
    machine = require_quiet(allow_busy=args.allow_busy)
    with tempfile.TemporaryDirectory(prefix="finmed-bench-dash-") as data:
        os.environ["FINMED_DATA_DIR"] = data
        t0 = time.perf_counter()
        seeded = seed(args.rows, args.drafts)
        seed_s = time.perf_counter() - t0
        rows = time_pages(seeded["users"], args.repeat)
        scoring = scored_job(seeded["users"]["analyst"][0], args.rows)
        rows += time_scored_page(seeded["users"]["analyst"], scoring["job"], args.rows, args.repeat)
    table = (
        "| page | role | first load (s) | median (s) | max (s) | under 2 s |\n| --- | --- | --- | --- | --- | --- |\n"
    )
    table += "".join(
        f"| {r['page']} | {r['role']} | {r['first_s']:.2f} | {r['median_s']:.2f} | {r['max_s']:.2f} | "
        f"{'yes' if r['max_s'] < 2 else 'NO'} |\n"
        for r in rows
    )
    head = (
        f"{args.rows} scored transactions, {seeded['flagged']} open finance review items, {args.drafts} drafts in "
        f"the radiologist queue (seeded in {seed_s:.0f} s); a {args.rows}-row batch scored by a `finance.score` job "
        f"(LLM budget 0, {scoring['counts']['flagged']} rows with odd fields; worker run {scoring['score_s']:.0f} s) "
        f"open on the Risk scoring page, then its table page 2, then levels {SCORED_FILTER} only; "
        f"{args.repeat} timed loads per page after one warm-up. Machine: {machine}"
    )
    print(head + "\n\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    command = f"PYTHONPATH=. python bench/dashboard.py --rows {args.rows} --drafts {args.drafts} --repeat {args.repeat}"
    (args.out / "dashboard.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "rows": args.rows,
                "drafts": args.drafts,
                "flagged": seeded["flagged"],
                "scoring_job": {"counts": scoring["counts"], "worker_s": scoring["score_s"]},
                "pages": rows,
            },
            indent=2,
        )
        + "\n"
    )
    (args.out / "dashboard.md").write_text(
        f"# Dashboard page loads\n\nCommand: `{command}`\n\n{head}\n\n{table}\n"
        "Times are the server-side run of each page (what the browser waits for), measured through AppTest.\n"
    )


if __name__ == "__main__":
    main()
