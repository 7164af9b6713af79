"""Jobs service and worker on SQLite and PostgreSQL: submit (deduplicated), claim, progress, cancel, failure,
interruption, stale workers, role checks, and the audit-chain verification kind."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from core.auth.users import create_user
from core.db.base import utcnow
from core.db.engine import session_scope
from core.db.tables import Job, User
from core.errors import ConflictError, PermissionDenied, ValidationError
from core.jobs import service
from core.jobs.kinds import JobKind, register_kind
from core.jobs.worker import Worker

TEST_KINDS = ["test.count", "test.boom", "test.slow"]
started = threading.Event()
release = threading.Event()


def _count(ctx):  # type: ignore[no-untyped-def]
    n = int(ctx.params["n"])
    for i in range(n):
        ctx.progress((i + 1) / n, f"{i + 1} of {n}")
    return {"total": n * (n + 1) // 2}


def _boom(ctx):  # type: ignore[no-untyped-def]
    raise ValidationError(f"row {ctx.params['row']}: bad amount")


def _slow(ctx):  # type: ignore[no-untyped-def]
    started.set()
    for _ in range(200):
        release.wait(0.05)
        ctx.progress(0.5, "working")
    return {"done": True}


register_kind("test.count", JobKind(run=_count, roles=("analyst",), title="count"))
register_kind("test.boom", _boom)
register_kind("test.slow", _slow)


@pytest.fixture
def people(migrated_engine: Engine) -> dict[str, int]:
    with session_scope(migrated_engine) as session:
        ids = {}
        for role in ("analyst", "compliance", "admin", "engineer"):
            ids[role] = create_user(session, username=role, role=role, password="long-enough").id
        ids["analyst2"] = create_user(session, username="analyst2", role="analyst", password="long-enough").id
    return ids


def _user(session, ids: dict[str, int], who: str) -> User:  # type: ignore[no-untyped-def]
    return session.get(User, ids[who])


def test_submit_run_and_result(migrated_engine: Engine, people: dict[str, int]) -> None:
    with session_scope(migrated_engine) as session:
        job = service.submit(session, user=_user(session, people, "analyst"), kind="test.count", params={"n": 4})
        again = service.submit(session, user=_user(session, people, "analyst"), kind="test.count", params={"n": 4})
        assert again.id == job.id  # a reload or a double click does not queue the work twice
        other = service.submit(session, user=_user(session, people, "analyst"), kind="test.count", params={"n": 5})
        job_id, other_id = job.id, other.id
    worker = Worker(migrated_engine, name="w1", kinds=TEST_KINDS)
    assert worker.run_one() == job_id
    assert worker.run_one() == other_id
    assert worker.run_one() is None
    with session_scope(migrated_engine) as session:
        done = service.get_job(session, user=_user(session, people, "analyst"), job_id=job_id)
        assert (done.status, done.result, done.progress, done.worker, done.attempts) == (
            "succeeded",
            {"total": 10},
            1.0,
            "w1",
            1,
        )
        assert done.finished_at is not None and service.elapsed_s(done) >= 0
        # The same parameters after the first finished: a new job (the work is asked for again).
        assert service.submit(
            session, user=_user(session, people, "analyst"), kind="test.count", params={"n": 4}
        ).id not in (job_id, other_id)
        with pytest.raises(PermissionDenied, match="belongs to another user"):
            service.get_job(session, user=_user(session, people, "analyst2"), job_id=job_id)
        assert [j.id for j in service.list_jobs(session, user=_user(session, people, "analyst2"))] == []
        assert len(service.list_jobs(session, user=_user(session, people, "admin"))) == 3


def test_role_and_kind_are_checked(migrated_engine: Engine, people: dict[str, int]) -> None:
    with session_scope(migrated_engine) as session:
        with pytest.raises(PermissionDenied, match="start a 'test.count' job: role 'compliance'"):
            service.submit(session, user=_user(session, people, "compliance"), kind="test.count", params={"n": 1})
        with pytest.raises(ValidationError, match="unknown job kind 'nope'"):
            service.submit(session, user=_user(session, people, "analyst"), kind="nope")
        with pytest.raises(PermissionDenied, match="verify"):
            service.submit(session, user=_user(session, people, "analyst"), kind="audit.verify")
        with pytest.raises(ValidationError, match="must be JSON"):
            service.submit(session, user=_user(session, people, "analyst"), kind="test.boom", params={"x": object()})


def test_failure_is_recorded_and_worker_goes_on(migrated_engine: Engine, people: dict[str, int]) -> None:
    with session_scope(migrated_engine) as session:
        bad = service.submit(session, user=_user(session, people, "engineer"), kind="test.boom", params={"row": 7}).id
        good = service.submit(session, user=_user(session, people, "analyst"), kind="test.count", params={"n": 2}).id
    worker = Worker(migrated_engine, kinds=TEST_KINDS)
    assert worker.run_one() == bad and worker.run_one() == good
    with session_scope(migrated_engine) as session:
        assert (session.get(Job, bad).status, session.get(Job, bad).error) == ("failed", "row 7: bad amount")
        assert session.get(Job, good).status == "succeeded"


def test_cancel_queued_and_running(migrated_engine: Engine, people: dict[str, int]) -> None:
    with session_scope(migrated_engine) as session:
        analyst = _user(session, people, "analyst")
        queued = service.submit(session, user=analyst, kind="test.count", params={"n": 3})
        with pytest.raises(PermissionDenied):
            service.cancel(session, user=_user(session, people, "analyst2"), job_id=queued.id)
        assert service.cancel(session, user=analyst, job_id=queued.id).status == "cancelled"
        with pytest.raises(ConflictError, match="already cancelled"):
            service.cancel(session, user=analyst, job_id=queued.id)
        slow = service.submit(session, user=analyst, kind="test.slow").id
    started.clear()
    release.clear()
    worker = Worker(migrated_engine, kinds=TEST_KINDS)
    thread = threading.Thread(target=worker.run_one)
    thread.start()
    assert started.wait(10)
    with session_scope(migrated_engine) as session:
        assert service.cancel(session, user=_user(session, people, "admin"), job_id=slow).cancel_requested
    thread.join(20)
    with session_scope(migrated_engine) as session:
        assert session.get(Job, slow).status == "cancelled"


def test_stopping_worker_requeues_and_another_finishes(migrated_engine: Engine, people: dict[str, int]) -> None:
    with session_scope(migrated_engine) as session:
        slow = service.submit(session, user=_user(session, people, "analyst"), kind="test.slow").id
    started.clear()
    release.clear()
    first = Worker(migrated_engine, name="first", kinds=TEST_KINDS)
    thread = threading.Thread(target=first.run_one)
    thread.start()
    assert started.wait(10)
    first.stop()
    thread.join(20)
    with session_scope(migrated_engine) as session:
        job = session.get(Job, slow)
        assert (job.status, job.attempts, job.result) == ("queued", 1, {})
    release.set()
    assert Worker(migrated_engine, name="second", kinds=TEST_KINDS).run_one() == slow
    with session_scope(migrated_engine) as session:
        job = session.get(Job, slow)
        assert (job.status, job.worker, job.attempts, job.result) == ("succeeded", "second", 2, {"done": True})


def test_a_dead_workers_job_is_claimed_again_then_given_up(migrated_engine: Engine, people: dict[str, int]) -> None:
    with session_scope(migrated_engine) as session:
        job_id = service.submit(session, user=_user(session, people, "analyst"), kind="test.count", params={"n": 1}).id
        assert service.claim_next(session, worker="dead", kinds=TEST_KINDS).id == job_id
    with session_scope(migrated_engine) as session:
        assert service.claim_next(session, worker="w", kinds=TEST_KINDS) is None  # its heartbeat is fresh
        later = utcnow() + timedelta(minutes=5)
        job = service.claim_next(session, worker="w", kinds=TEST_KINDS, now=later)
        assert job is not None and job.attempts == 2
        job.attempts = service.MAX_ATTEMPTS
    with session_scope(migrated_engine) as session:
        assert service.claim_next(session, worker="w", kinds=TEST_KINDS, now=utcnow() + timedelta(minutes=10)) is None
        job = session.get(Job, job_id)
        assert job.status == "failed" and "stopped during 3 attempt(s)" in job.error


def test_two_workers_never_take_the_same_job(migrated_engine: Engine, people: dict[str, int]) -> None:
    with session_scope(migrated_engine) as session:
        ids = {
            service.submit(session, user=_user(session, people, "analyst"), kind="test.count", params={"n": i}).id
            for i in range(1, 9)
        }
    taken: list[int] = []
    lock = threading.Lock()

    def drain(name: str) -> None:
        worker = Worker(migrated_engine, name=name, kinds=TEST_KINDS)
        while (job_id := worker.run_one()) is not None:
            with lock:
                taken.append(job_id)

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(taken) == sorted(ids)


def test_audit_verification_job_is_shared_with_compliance(migrated_engine: Engine, people: dict[str, int]) -> None:
    with session_scope(migrated_engine) as session:
        job_id = service.submit(session, user=_user(session, people, "compliance"), kind="audit.verify").id
    assert Worker(migrated_engine).run_one() == job_id
    with session_scope(migrated_engine) as session:
        last = service.latest_finished(session, user=_user(session, people, "admin"), kind="audit.verify")
        assert last.id == job_id and last.result["ok"] is True and last.result["checked"] >= 6
    with migrated_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            pytest.skip("PostgreSQL refuses UPDATE on audit_events (trigger); the broken chain is tested on SQLite")
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
    with session_scope(migrated_engine) as session:
        job_id = service.submit(session, user=_user(session, people, "compliance"), kind="audit.verify").id
    Worker(migrated_engine).run_one()
    with session_scope(migrated_engine) as session:
        last = service.latest_finished(session, user=_user(session, people, "compliance"), kind="audit.verify")
        assert last.id == job_id and last.result["ok"] is False and last.result["broken_id"] == 2
