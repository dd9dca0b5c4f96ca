"""Worker heartbeats: one row per process that runs workers, written every
few seconds while it runs and removed when it stops.

Readiness needs to know that each engine has a worker alive somewhere, in
this process or in any other (`serve --workers 0` beside `reelgate worker`
processes). Tasks' leases say so only while a task runs, so an idle worker
would look dead; a row per process costs one write every few seconds. A
process killed without cleaning up leaves its row, which stops counting once
its `last_seen` is too old and is removed a while later.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select

from reelgate.store.db import Database
from reelgate.store.schema import WorkerRow

FORGET_AFTER = 86_400.0
"""Seconds after which a row nobody updates (a killed process) is removed."""


@dataclass(frozen=True)
class WorkerBeat:
    id: str
    host: str
    pid: int
    engines: tuple[str, ...]
    slots: int
    started_at: float
    last_seen: float


class WorkerRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def beat(
        self,
        worker_id: str,
        host: str,
        pid: int,
        engines: Sequence[str],
        slots: int,
        started_at: float,
    ) -> None:
        """Say this process is alive, with the engines its workers run (and
        forget processes silent for a day)."""
        now = time.time()
        with self.db.write() as s:
            row = s.get(WorkerRow, worker_id)
            if row is None:
                s.add(
                    WorkerRow(
                        id=worker_id,
                        host=host[:255],
                        pid=pid,
                        engines=list(engines),
                        slots=slots,
                        started_at=started_at,
                        last_seen=now,
                    )
                )
            else:
                row.engines = list(engines)
                row.slots = slots
                row.last_seen = now
            s.execute(delete(WorkerRow).where(WorkerRow.last_seen < now - FORGET_AFTER))

    def gone(self, worker_id: str) -> None:
        """The process stops: it no longer counts."""
        with self.db.write() as s:
            s.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))

    def alive(self, within: float) -> list[WorkerBeat]:
        """Processes whose last heartbeat is at most `within` seconds old."""
        with self.db.read() as s:
            rows = s.scalars(
                select(WorkerRow).where(WorkerRow.last_seen >= time.time() - within)
            ).all()
            return [
                WorkerBeat(
                    r.id,
                    r.host,
                    r.pid,
                    tuple(r.engines or ()),
                    r.slots,
                    r.started_at,
                    r.last_seen,
                )
                for r in rows
            ]
