"""The operator's routes: `/readyz` always, `/metrics` when a metrics token is set.

`/metrics` answers this host's counters (every process writing to the same
multiprocess directory, `metrics.py`) plus gauges read from the database at
scrape time: the queue by state and engine, the oldest queued task's age,
the callback outbox, the workers alive. Those are the whole deployment's,
the same from every API process. It takes the metrics token only (never an
API token), compared in constant time; without a token set, there is no
route at all (404).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable
from typing import Any

from anyio.to_thread import run_sync
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from reelgate.core.readiness import Readiness
from reelgate.domain.errors import Unauthorized
from reelgate.domain.models import State
from reelgate.metrics import PrometheusMetrics, bearer_matches
from reelgate.store.stats import UNFINISHED, OpsStats
from reelgate.store.workers import WorkerRegistry

log = logging.getLogger(__name__)

METRICS_ROUTE = "/metrics"
READY_ROUTE = "/readyz"


class DatabaseCollector:
    """Gauges read from the database when Prometheus scrapes. If the database
    does not answer, `reelgate_database_up` says 0 and the rest are left out
    (a scrape still answers the counters)."""

    def __init__(
        self,
        stats: OpsStats,
        workers: WorkerRegistry,
        engines: Collection[str],
        heartbeat_limit: float,
    ) -> None:
        self.stats = stats
        self.workers = workers
        self.engines = engines
        self.heartbeat_limit = heartbeat_limit

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("reelgate_database_up", "1 when the database answered this scrape.")
        try:
            queue = self.stats.queue()
            outbox = self.stats.outbox()
            beats = self.workers.alive(self.heartbeat_limit)
        except Exception as exc:
            log.warning("metrics: the database did not answer (%s)", exc.__class__.__name__)
            up.add_metric([], 0.0)
            return [up]
        up.add_metric([], 1.0)
        engines = sorted({*self.engines, *(d.engine for d in queue)})
        depth = GaugeMetricFamily(
            "reelgate_queue_tasks",
            "Unfinished tasks by state and engine.",
            labels=["state", "engine"],
        )
        counts = {(d.state, d.engine): d.count for d in queue}
        for state in UNFINISHED:
            for engine in engines:
                depth.add_metric([state, engine], float(counts.get((state, engine), 0)))
        oldest = GaugeMetricFamily(
            "reelgate_queue_oldest_age_seconds",
            "Seconds since the oldest queued task was created (0: none is queued).",
            labels=["engine"],
        )
        ages = {d.engine: d.oldest_age for d in queue if d.state == State.QUEUED.value}
        for engine in engines:
            oldest.add_metric([engine], ages.get(engine, 0.0))
        pending = GaugeMetricFamily(
            "reelgate_callbacks_outbox_pending", "Callbacks waiting to be delivered."
        )
        pending.add_metric([], float(outbox.pending))
        outbox_age = GaugeMetricFamily(
            "reelgate_callbacks_outbox_oldest_age_seconds",
            "Seconds since the oldest undelivered callback was queued (0: none is).",
        )
        outbox_age.add_metric([], outbox.oldest_age)
        alive = GaugeMetricFamily(
            "reelgate_workers_alive",
            "Processes running a worker of the engine whose heartbeat is recent.",
            labels=["engine"],
        )
        for engine in engines:
            alive.add_metric([engine], float(sum(engine in b.engines for b in beats)))
        return [up, depth, oldest, pending, outbox_age, alive]


def install(
    app: FastAPI,
    readiness: Readiness,
    metrics: PrometheusMetrics | None,
    token: str | None,
    collector: DatabaseCollector,
) -> None:
    """Add `/readyz`, and `/metrics` when `metrics` is on (with its `token`)."""

    @app.get(READY_ROUTE, include_in_schema=False)
    async def readyz() -> Response:
        """200 when this process can serve, else 503; either way each check
        says how it stands (`core/readiness.py`)."""
        ready, checks = await run_sync(readiness.check)
        if not ready:
            failing = ", ".join(f"{n}: {c.get('error')}" for n, c in checks.items() if not c["ok"])
            log.warning("not ready: %s", failing)
        body = {"ready": ready, "checks": checks, "time": time.time()}
        return JSONResponse(body, status_code=200 if ready else 503)

    if metrics is None or not token:
        return

    from prometheus_client import CONTENT_TYPE_LATEST

    @app.get(METRICS_ROUTE, include_in_schema=False)
    async def scrape(request: Request) -> Response:
        if not bearer_matches(request.headers.get("authorization"), token):
            raise Unauthorized("/metrics takes the metrics token (REELGATE_METRICS_TOKEN)")
        body = await run_sync(metrics.scrape, [collector])
        return Response(body, media_type=CONTENT_TYPE_LATEST)
