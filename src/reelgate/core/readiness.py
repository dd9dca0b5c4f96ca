"""Whether this process can serve: what `/readyz` answers.

Three checks, each saying what is wrong in words an operator can act on:

- `database`: it answers (the query reads the schema's revision) and its
  schema is the one this code expects (Alembic's head);
- `storage`: a small object can be written and deleted through `Storage`;
- `workers`: for each engine this process accepts tasks for, some process
  (this one or another) runs a worker of it and sent its heartbeat
  (`store/workers.py`) within `heartbeat_limit` seconds, so an API process
  with no workers of its own is ready while others work.

Each check runs in a thread of its own and is waited for at most `timeout`:
a database or store that hangs makes the check fail in time instead of
holding the probe. While a hung check is still running, later probes wait
on that same one rather than starting more.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from reelgate.domain.errors import StorageUnavailable
from reelgate.storage.base import Storage
from reelgate.store.stats import OpsStats, head_revision
from reelgate.store.workers import WorkerBeat, WorkerRegistry

TIMEOUT = 3.0
"""Seconds one check may take before it counts as failed."""

PROBE_PREFIX = "readyz"
"""Where the storage check writes (and at once deletes) its probe object."""


@dataclass
class Check:
    ok: bool
    error: str | None = None
    """What is wrong, when something is."""
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"ok": self.ok, **self.detail}
        if self.error:
            answer["error"] = self.error
        return answer


class _Probe:
    """One blocking check, run in a daemon thread, one at a time."""

    def __init__(self, name: str, run: Callable[[], Check]) -> None:
        self.name = name
        self.run = run
        self._lock = threading.Lock()
        self._running: Future[Check] | None = None

    def start(self) -> Future[Check]:
        with self._lock:
            if self._running is not None and not self._running.done():
                return self._running
            future: Future[Check] = Future()

            def work() -> None:
                try:
                    future.set_result(self.run())
                except Exception as exc:
                    future.set_exception(exc)

            threading.Thread(target=work, name=f"readyz-{self.name}", daemon=True).start()
            self._running = future
            return future


WHAT_FAILED = {
    "database": "the database did not answer",
    "storage": "cannot write to the storage",
    "workers": "cannot read the workers' heartbeats",
}
"""How each check's failure reads. `/readyz` answers anyone who asks, so it
says what failed and the kind of error, never the error's own text (a
driver's names hosts and users; an object store's can carry much more)."""


def _failed(check: str, exc: BaseException) -> str:
    if isinstance(exc, StorageUnavailable):  # its message is fit to show (domain/errors.py)
        return f"{WHAT_FAILED[check]}: {exc.message}"
    return f"{WHAT_FAILED[check]} ({exc.__class__.__name__})"


class Readiness:
    def __init__(
        self,
        stats: OpsStats,
        storage: Storage,
        workers: WorkerRegistry,
        engines: Collection[str],
        heartbeat_limit: float,
        timeout: float = TIMEOUT,
    ) -> None:
        self.stats = stats
        self.storage = storage
        self.workers = workers
        self.engines = sorted(engines)
        self.heartbeat_limit = heartbeat_limit
        self.timeout = timeout
        self._database = _Probe("database", self._check_database)
        self._storage = _Probe("storage", self._check_storage)
        self._workers = _Probe("workers", self._check_workers)

    def check(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """(ready, each check as a dict: `ok`, details, `error` when not ok)."""
        probes = {"database": self._database, "storage": self._storage, "workers": self._workers}
        started = {name: probe.start() for name, probe in probes.items()}
        checks: dict[str, Check] = {}
        for name, future in started.items():
            try:
                checks[name] = future.result(self.timeout)
            except FutureTimeout:
                checks[name] = Check(False, f"no answer within {self.timeout:g} s")
            except Exception as exc:
                checks[name] = Check(False, _failed(name, exc))
        ready = all(c.ok for c in checks.values())
        return ready, {name: c.as_dict() for name, c in checks.items()}

    def _check_database(self) -> Check:
        revision = self.stats.revision()
        head = head_revision()
        if revision != head:
            return Check(
                False,
                f"the database schema is at revision {revision or 'none'}, this server "
                f"expects {head}: run the newer reelgate's migration (any process does at start)",
                {"revision": revision},
            )
        return Check(True, detail={"revision": revision})

    def _check_storage(self) -> Check:
        key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}"
        self.storage.write(key, b"ok")
        self.storage.delete(key)
        return Check(True)

    def _check_workers(self) -> Check:
        beats = self.workers.alive(self.heartbeat_limit)
        engines: dict[str, Any] = {}
        missing: list[str] = []
        for engine in self.engines:
            serving: list[WorkerBeat] = [b for b in beats if engine in b.engines]
            engines[engine] = {
                "ok": bool(serving),
                "processes": len(serving),
                "slots": sum(b.slots for b in serving),
            }
            if not serving:
                missing.append(engine)
        if missing:
            names = ", ".join(missing)
            return Check(
                False,
                f"no worker of {names} has sent a heartbeat in the last "
                f"{self.heartbeat_limit:g} s (start `reelgate worker`, or `serve` with workers)",
                {"engines": engines},
            )
        return Check(True, detail={"engines": engines})
