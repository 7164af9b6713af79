"""Take the database's write lock at the start of a transaction, so read-then-write sequences cannot interleave.

PostgreSQL callers use row locks (`FOR UPDATE SKIP LOCKED`) or advisory locks instead. SQLite has one writer at a
time, but Python's sqlite3 driver opens a transaction only at the first INSERT/UPDATE/DELETE, so a SELECT before it
reads outside any transaction and another connection may commit in between. `BEGIN IMMEDIATE` takes the write lock
first (waiting up to the engine's busy_timeout), which is SQLite's documented way to serialise such sequences.
SQLAlchemy has no per-transaction switch for it, hence this small helper.
"""

from __future__ import annotations

from sqlalchemy.orm import Session


def begin_write(session: Session) -> None:
    """On SQLite, make the session's transaction an immediate (write-locked) one; elsewhere do nothing.

    When the driver connection is already inside a transaction, it either holds the write lock (a write came first)
    or is a deferred read transaction; in WAL mode the latter cannot commit over a newer write (SQLite answers
    SQLITE_BUSY_SNAPSHOT), so a stale read never turns into a silent overwrite.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        driver.execute("BEGIN IMMEDIATE")
