"""Engines, sessions and migrations for SQLite (embedded) and PostgreSQL.

SQLite allows one writer at a time. A transaction that starts as a reader
and later writes can fail at once with "database is locked" (the busy
timeout does not apply to a lock upgrade), so write transactions begin with
`BEGIN IMMEDIATE` on a separate engine, and readers use plain `BEGIN`, which
WAL lets run beside the writer. Writers of one process also take turns on a
lock of the process before `BEGIN IMMEDIATE`: the busy timeout of a writer
that finds the database locked sleeps in steps of up to 100 ms, so 32 threads
contending for it left the database idle most of the time. Writers of other
processes (the CLI, `reelgate worker`) still wait in the busy timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Executable, Row, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_KEY = 0x5265656C  # "Reel": serialises concurrent PostgreSQL migrations


def normalize_url(url: str) -> URL:
    """Plain `postgresql://` URLs use psycopg 3, the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


SINGLE_STATEMENT = "reelgate_single_statement"
"""An execution option: on SQLite, no explicit `BEGIN` (each statement is its
own read transaction, which for one statement is the same thing)."""

POOL_SIZE = 40
"""Connections a process keeps open for reuse, by default: as many as the
API's request threads (anyio's default of 40). Beyond the pool, connections
are opened for a burst and closed after it; measured under 32 requests at
once with a pool of 8 (SQLite) or 10 (PostgreSQL), that churn opened a new
connection every few requests and doubled a read's CPU."""
OVERFLOW = 10
"""Connections opened beyond the pool at once, at most (then a thread waits)."""


def _sqlite_engine(url: URL, *, immediate: bool, pool_size: int) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": 30, "check_same_thread": False},
        # writers take turns (below), so few of their connections are ever in use
        pool_size=min(8, pool_size) if immediate else pool_size,
        max_overflow=OVERFLOW,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if not conn.get_execution_options().get(SINGLE_STATEMENT):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


IDLE_PING_SECONDS = 1.0
"""A pooled PostgreSQL connection idle for longer is pinged before use."""


def _ping_when_idle(engine: Engine) -> None:
    """Before a pooled connection that sat idle is used, check that it still
    works (a server restart or a dropped link leaves dead connections in the
    pool); a dead one is replaced, so the request that gets it does not fail.
    A connection returned less than `IDLE_PING_SECONDS` ago is used as it is:
    SQLAlchemy's `pool_pre_ping` pings every checkout, a round trip that cost
    as much CPU as a retrieve's own query. A connection that dies within that
    second fails its statement, and SQLAlchemy then replaces every pooled
    connection as old as it."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < IDLE_PING_SECONDS:
            return  # new, or just used
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection is dead: {exc}") from exc


class Database:
    """Owns the engines; hands out short transactions."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(self.url, immediate=True, pool_size=pool_size)
            self.read_engine = _sqlite_engine(self.url, immediate=False, pool_size=pool_size)
        else:
            self.write_engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=OVERFLOW,
                # an unreachable host (not one that refuses) fails in seconds,
                # not after the operating system's connect timeout
                connect_args={"connect_timeout": 10},
            )
            _ping_when_idle(self.write_engine)
            self.read_engine = self.write_engine
        # SQLite: this process's writers take turns here (see the module's docstring)
        self._write_turn = threading.RLock() if self.is_sqlite else None
        self._writer = sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on error."""
        if self._write_turn is None:
            with self._writer.begin() as session:
                yield session
            return
        with self._write_turn, self._writer.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    def rows(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Row[Any]]:
        """The rows of one read-only Core statement. No ORM session: its
        bookkeeping cost more than the statement (measured: 140 against 87 us
        for a retrieve's read on SQLite). No transaction around it (on
        PostgreSQL, autocommit: no `BEGIN` and `ROLLBACK` round trips): a
        single statement reads one consistent snapshot anyway. A pooled
        connection found dead (the database restarted since it was last
        pinged, `_ping_when_idle`) is replaced and the read made once more:
        a read is safe to repeat."""
        try:
            return self._rows(statement, params)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return self._rows(statement, params)

    def _rows(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Row[Any]]:
        with self.read_engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(**{SINGLE_STATEMENT: True})
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT")
            return conn.execute(statement, params).all()

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to the newest revision, or to `revision` (safe to
        call at every start)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.write_engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()
