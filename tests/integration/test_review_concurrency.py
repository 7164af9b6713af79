"""Acceptance on SQLite and PostgreSQL with real separate connections: concurrent claims, concurrent audit appends."""

from __future__ import annotations

import os
import threading
from collections import Counter

import pytest
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from core.audit.record import GENESIS, record_event
from core.audit.tables import AuditEvent
from core.audit.verify import verify_chain
from core.db.base import utcnow
from core.db.engine import session_scope
from core.db.tables import User
from core.review.queue import claim_next, decide
from core.review.tables import ModelOutput, ReviewDecision, ReviewItem

N_ITEMS = int(os.environ.get("FINMED_TEST_CLAIM_ITEMS", "5000"))
N_WORKERS = 8


def _seed(engine: Engine, n: int) -> list[int]:
    """`n` pending finance items (bulk-inserted) and 8 analysts; returns the analysts' ids."""
    now = utcnow()
    with session_scope(engine) as session:
        users = [User(username=f"worker{i}", role="analyst", password_hash="-") for i in range(N_WORKERS)]
        session.add_all(users)
        session.flush()
        session.execute(
            insert(ModelOutput),
            [
                {
                    "domain": "finance",
                    "input_text": f"transaction {i}",
                    "system_prompt": "",
                    "prompt": f"score transaction {i}",
                    "raw_output": "risk_level: 4",
                    "parsed": {"risk_level": 4},
                    "parse_error": "",
                    "model_name": "m",
                    "precision": "fp32",
                    "latency_ms": 1.0,
                    "context_ids": [],
                    "created_at": now,
                }
                for i in range(n)
            ],
        )
        output_ids = session.scalars(select(ModelOutput.id).order_by(ModelOutput.id)).all()
        session.execute(
            insert(ReviewItem),
            [
                {
                    "output_id": oid,
                    "domain": "finance",
                    "queue": "analyst",
                    "state": "pending",
                    "priority": oid % 3,
                    "reasons": ["high_risk"],
                    "policy_name": "finance-default",
                    "policy_version": 1,
                    "policy_hash": "0" * 64,
                    "created_at": now,
                    "decision_reason": "",
                }
                for oid in output_ids
            ],
        )
        return [u.id for u in users]


@pytest.fixture
def fast_engine(migrated_engine: Engine) -> Engine:
    """`migrated_engine` with commit durability relaxed for speed: SQLite `synchronous=NORMAL` (what SQLite
    recommends with WAL), PostgreSQL `synchronous_commit=off`. Locking and isolation are unchanged, and those are
    what these tests exercise; the fsync per commit would otherwise dominate 10,000 commits on a shared disk.
    """
    setting = "PRAGMA synchronous=NORMAL" if migrated_engine.dialect.name == "sqlite" else "SET synchronous_commit=off"

    def relax(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute(setting)
        cursor.close()

    event.listen(migrated_engine, "connect", relax)
    migrated_engine.dispose()
    return migrated_engine


def test_concurrent_workers_decide_each_item_exactly_once(fast_engine: Engine) -> None:
    migrated_engine = fast_engine
    user_ids = _seed(migrated_engine, N_ITEMS)
    decided: list[list[int]] = [[] for _ in user_ids]
    errors: list[BaseException] = []

    def work(slot: int, user_id: int) -> None:
        try:
            with session_scope(migrated_engine) as session:
                user = session.get(User, user_id)  # kept detached: the role checks read only its columns
            while True:
                with session_scope(migrated_engine) as session:
                    item = claim_next(session, user=user)
                    item_id = item.id if item else None
                if item_id is None:
                    return
                with session_scope(migrated_engine) as session:
                    decide(
                        session,
                        user=user,
                        item_id=item_id,
                        decision="approved" if item_id % 2 else "edited",
                        edited_text=None if item_id % 2 else f"edited by {user_id}",
                    )
                decided[slot].append(item_id)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, uid)) for i, uid in enumerate(user_ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    every = [i for worker in decided for i in worker]
    assert len(every) == N_ITEMS and len(set(every)) == N_ITEMS  # none lost, none twice
    assert sum(1 for worker in decided if worker) > 1  # the work really was shared
    with session_scope(migrated_engine) as session:
        states = Counter(session.scalars(select(ReviewItem.state)).all())
        assert states == {"approved": N_ITEMS // 2 + N_ITEMS % 2, "edited": N_ITEMS // 2}
        per_item = Counter(session.scalars(select(ReviewDecision.item_id)).all())
        assert set(per_item.values()) == {2}  # one claim and one decision each
        report = verify_chain(session)
        assert report.ok and report.checked == 2 * N_ITEMS


def test_concurrent_appenders_never_fork_the_chain(fast_engine: Engine) -> None:
    migrated_engine = fast_engine
    per_thread = 40
    errors: list[BaseException] = []
    barrier = threading.Barrier(N_WORKERS)

    def append(slot: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with session_scope(migrated_engine) as session:
                    if i % 2:  # half the transactions write something else first, half start with the event
                        session.add(User(username=f"u{slot}-{i}", role="engineer", password_hash="-"))
                        session.flush()
                    record_event(session, actor=f"t{slot}", action="test.append", payload={"i": i})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(s,)) for s in range(N_WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    with session_scope(migrated_engine) as session:
        report = verify_chain(session)
        assert report.ok and report.checked == N_WORKERS * per_thread
        prevs = session.scalars(select(AuditEvent.prev_hash)).all()
        assert len(prevs) == len(set(prevs)) and GENESIS in prevs


def test_database_refuses_a_forked_row(migrated_engine: Engine) -> None:
    with session_scope(migrated_engine) as session:
        first = record_event(session, actor="a", action="x")
        record_event(session, actor="a", action="y")
        first_hash = first.hash
    with pytest.raises(IntegrityError):
        with migrated_engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_events (created_at, actor, action, subject_type, subject_id, payload, prev_hash,"
                    " hash) VALUES (:t, 'mallory', 'fork', '', '', '{}', :prev, :h)"
                ),
                {"t": utcnow(), "prev": first_hash, "h": "f" * 64},
            )
    with session_scope(migrated_engine) as session:
        assert session.scalar(select(func.count(AuditEvent.id))) == 2
