"""Benchmark: review-queue claim/decide throughput by worker count on SQLite and PostgreSQL, and audit verify speed.

Each run seeds N pending items into a fresh database (SQLite file in a temporary folder; a private schema on the
PostgreSQL server), then W threads, each with its own connection, claim and decide until the queue is empty (two
transactions per item, each appending to the audit chain). It checks every item was decided exactly once and the
chain verifies, then times `verify_chain` over the resulting 2N events. Commit durability is the engines' default.

    PYTHONPATH=$PWD python bench/review_queue.py [--items 600] [--workers 1 4 8] [--pg-url URL]

Prints the comparison table and writes bench/results/review_queue.json and bench/results/review_queue.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, text

from core.audit.verify import verify_chain
from core.db.base import utcnow
from core.db.engine import make_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import User
from core.review.queue import claim_next, decide
from core.review.tables import ModelOutput, ReviewItem

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def seed(engine: Engine, n_items: int, n_workers: int) -> list[User]:
    now = utcnow()
    with session_scope(engine) as session:
        users = [User(username=f"w{i}", role="analyst", password_hash="-") for i in range(n_workers)]
        session.add_all(users)
        session.flush()
        base = {
            "domain": "finance",
            "system_prompt": "",
            "raw_output": "risk_level: 4",
            "parse_error": "",
            "model_name": "m",
            "precision": "fp32",
            "latency_ms": 1.0,
            "context_ids": [],
            "created_at": now,
        }
        session.execute(
            insert(ModelOutput),
            [{**base, "input_text": f"t{i}", "prompt": f"p{i}", "parsed": {"risk_level": 4}} for i in range(n_items)],
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
                    "priority": i % 3,
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
        return users


def run_workers(engine: Engine, users: list[User]) -> tuple[float, list[int]]:
    decided: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(user: User) -> None:
        try:
            while True:
                with session_scope(engine) as session:
                    item = claim_next(session, user=user)
                    item_id = item.id if item else None
                if item_id is None:
                    return
                with session_scope(engine) as session:
                    decide(session, user=user, item_id=item_id, decision="approved")
                with lock:
                    decided.append(item_id)
        except BaseException as exc:  # noqa: BLE001  (reported after join)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start, decided


def one_run(make: Any, db: str, n_items: int, n_workers: int) -> dict[str, Any]:
    with make() as engine:
        upgrade(engine)
        users = seed(engine, n_items, n_workers)
        seconds, decided = run_workers(engine, users)
        counts = Counter(decided)
        exactly_once = len(counts) == n_items and set(counts.values()) == {1}
        with session_scope(engine) as session:
            start = time.perf_counter()
            report = verify_chain(session)
            verify_s = time.perf_counter() - start
        return {
            "db": db,
            "workers": n_workers,
            "items": n_items,
            "seconds": round(seconds, 2),
            "items_per_s": round(n_items / seconds, 1),
            "exactly_once": exactly_once,
            "chain_ok": report.ok,
            "events": report.checked,
            "verify_events_per_s": round(report.checked / verify_s),
        }


class _Sqlite:
    def __enter__(self) -> Engine:
        self.dir = tempfile.TemporaryDirectory()
        self.engine = make_engine(f"sqlite:///{self.dir.name}/bench.db")
        return self.engine

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()
        self.dir.cleanup()


class _Postgres:
    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> Engine:
        self.schema = f"finmed_bench_{uuid.uuid4().hex[:8]}"
        self.admin = make_engine(self.url)
        with self.admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        sep = "&" if "?" in self.url else "?"
        self.engine = make_engine(f"{self.url}{sep}options=-csearch_path%3D{self.schema}")
        return self.engine

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()
        with self.admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self.admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--pg-url", default="postgresql+psycopg://root@127.0.0.1:5432/test")
    args = parser.parse_args()
    backends: list[tuple[str, Any]] = [("sqlite", _Sqlite)]
    try:
        with _Postgres(args.pg_url):
            pass
        backends.append(("postgresql", lambda: _Postgres(args.pg_url)))
    except Exception as exc:  # noqa: BLE001  (the table says PostgreSQL was skipped and why)
        print(f"PostgreSQL skipped: {str(exc).splitlines()[0]}")
    rows = [one_run(make, db, args.items, w) for db, make in backends for w in args.workers]
    header = "| db | workers | items | seconds | items/s | vs 1 worker | exactly once | chain ok | verify events/s |"
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        single = next(x for x in rows if x["db"] == r["db"] and x["workers"] == args.workers[0])
        ratio = r["items_per_s"] / single["items_per_s"]
        lines.append(
            f"| {r['db']} | {r['workers']} | {r['items']} | {r['seconds']} | {r['items_per_s']} | {ratio:.2f}x | "
            f"{r['exactly_once']} | {r['chain_ok']} | {r['verify_events_per_s']} |"
        )
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "review_queue.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    workers = " ".join(map(str, args.workers))
    command = f"PYTHONPATH=$PWD python bench/review_queue.py --items {args.items} --workers {workers}"
    (RESULTS / "review_queue.md").write_text(f"# Review queue benchmark\n\nCommand: `{command}`\n\n{table}\n")


if __name__ == "__main__":
    main()
