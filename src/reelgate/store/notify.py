"""Push, not poll, on PostgreSQL: NOTIFY where work appears or a task ends,
and one LISTEN connection per process that turns them into wake-ups.

A notification is queued inside the transaction that makes a task claimable
(`reelgate_work`, payload: the engine) or finishes it (`reelgate_done`,
payload: the task id), so PostgreSQL sends it at commit and never for a
rolled-back change. Notifications are hints: one sent while a listener is
disconnected is lost, so after every (re)connect the listener fires its
catch-up callbacks, and polling stays on, slower, as the safety net.
SQLite has no NOTIFY: there `notify` does nothing and in-process events and
polling do the work, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from reelgate.domain.retry import Backoff

log = logging.getLogger(__name__)

WORK_CHANNEL = "reelgate_work"
"""A task became claimable; the payload is its engine."""
DONE_CHANNEL = "reelgate_done"
"""A task reached a terminal state or was deleted; the payload is its id."""
CHANNELS = (WORK_CHANNEL, DONE_CHANNEL)

APPLICATION_NAME = "reelgate-listener"
"""How the listening connection shows in pg_stat_activity."""

TICK = 0.5
"""Seconds the listener waits for notifications before looking at its stop flag."""

RECONNECT = Backoff(0.2, cap=10.0)
"""Waits between attempts to get the listening connection back."""

# Keepalives notice a peer that vanished without closing the connection
# (a dropped network path) in about 25 s instead of the kernel's hours.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def notify(session: Session, channel: str, payload: str) -> None:
    """Queue a notification in `session`'s transaction (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
    )


def work_queued(session: Session, engine: str) -> None:
    """A task of `engine` can be claimed once this transaction commits."""
    notify(session, WORK_CHANNEL, engine)


def task_done(session: Session, task_id: str) -> None:
    """The task is finished (or gone) once this transaction commits."""
    notify(session, DONE_CHANNEL, task_id)


class Listener:
    """One thread holding one LISTEN connection for the whole process; it
    calls the callbacks subscribed to each channel, and the `on_connect`
    ones after every (re)connect, since what was sent meanwhile is lost."""

    def __init__(self, connect_params: Mapping[str, Any]) -> None:
        """`connect_params`: psycopg.connect keyword arguments (with the
        password: never log them)."""
        self._params = {
            **_KEEPALIVES,
            **connect_params,
            "autocommit": True,
            "application_name": APPLICATION_NAME,
            "connect_timeout": 5,
        }
        self._subscribers: dict[str, list[Callable[[str], None]]] = {c: [] for c in CHANNELS}
        self._on_connect: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        """Set while notifications can arrive: polls may then be rarer."""

    @classmethod
    def for_engine(cls, engine: Engine) -> Listener:
        """A listener on the database `engine` connects to, with the same
        parameters (host, user, password, TLS options) the engine would use."""
        _, params = engine.dialect.create_connect_args(engine.url)
        return cls(params)

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(payload)` for each notification on `channel`;
        returns what undoes the subscription."""
        with self._lock:
            self._subscribers[channel].append(callback)
        return lambda: self._discard(self._subscribers[channel], callback)

    def on_connect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` after every (re)connect, to catch up on what
        was missed; returns what undoes it."""
        with self._lock:
            self._on_connect.append(callback)
        return lambda: self._discard(self._on_connect, callback)

    def _discard(self, callbacks: list[Any], callback: Any) -> None:
        with self._lock:
            if callback in callbacks:
                callbacks.remove(callback)

    def start(self) -> None:
        """Start listening (again); does nothing while already listening."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="db-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():  # else a later start() must not add a second one
                self._thread = None

    def _run(self) -> None:
        delay = RECONNECT.base
        while not self._stop.is_set():
            try:
                self._listen()
                delay = RECONNECT.base  # it was up: the next loss retries at once
            except Exception as exc:
                log.warning("database listener: %s; reconnecting in %.1f s", _reason(exc), delay)
                self._stop.wait(delay)
                delay = RECONNECT.next(delay)
            finally:
                self.connected.clear()

    def _listen(self) -> None:
        """One connection's life: LISTEN, catch up, relay until stopped or lost."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(**self._params) as conn:
            for channel in CHANNELS:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self.connected.set()
            with self._lock:
                catch_up = list(self._on_connect)
            for callback in catch_up:
                _call(callback)
            while not self._stop.is_set():
                for note in conn.notifies(timeout=TICK):
                    with self._lock:
                        subscribers = list(self._subscribers.get(note.channel, ()))
                    for subscriber in subscribers:
                        _call(subscriber, note.payload)


def _call(callback: Callable[..., None], *args: str) -> None:
    """Run a callback; one that fails must not end the listener."""
    try:
        callback(*args)
    except Exception:
        log.exception("database listener callback failed")


def _reason(exc: Exception) -> str:
    """Why the connection failed, on one line (psycopg never puts the password in it)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__
