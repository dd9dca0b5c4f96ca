"""The composition root: builds every long-lived part once, from settings.

`serve` and `worker` both start here; tests build one to reach the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
from standardwebhooks import Webhook

from reelgate.config import Settings
from reelgate.core.enhance import load_enhancer
from reelgate.core.inputs import InlineInputs, UploadService
from reelgate.core.limits import Limits
from reelgate.core.readiness import Readiness
from reelgate.core.retention import Retention
from reelgate.core.service import TaskService
from reelgate.core.upstream_links import UpstreamCallbackLinks
from reelgate.domain.models import Task
from reelgate.engines.base import EngineServices, FileEngine
from reelgate.engines.registry import build_engines
from reelgate.media.fetch import GuardedClient
from reelgate.metrics import PrometheusMetrics, open_metrics, serve_metrics
from reelgate.storage import open_storage
from reelgate.storage.base import UrlSigner
from reelgate.store.callbacks import CallbackStore
from reelgate.store.db import Database
from reelgate.store.follow import FollowStore
from reelgate.store.notify import DONE_CHANNEL, WORK_CHANNEL, Listener
from reelgate.store.queue import QueueStats
from reelgate.store.stats import OpsStats
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.store.uploads import UploadStore
from reelgate.store.upstream_keys import UpstreamKeyStore
from reelgate.store.workers import WorkerRegistry
from reelgate.worker.callbacks import CallbackDispatcher
from reelgate.worker.inputs import InputResolver
from reelgate.worker.runner import Worker

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0
HEARTBEAT_SECONDS = 5.0
"""How often a process with workers says so in the database (at most)."""
POOLS = {"worker": "render", "upstream": "upstream"}
"""Thread name prefix -> the pool's name in metrics."""


def _stored_secret(data_dir: Path) -> str:
    """The deployment's webhook signing secret, made once and kept (0600) in
    the data directory so every process of the deployment signs alike."""
    path = data_dir / "webhook_secret"
    if not path.exists():
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        draft = data_dir / f".webhook_secret.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        try:
            os.link(draft, path)  # atomic: the first process to start wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.resolved_database_url, pool_size=settings.database_pool_size)
        self.db.migrate()
        self.tasks = TaskStore(self.db, settings.priority_aging_seconds)
        self.tokens = TokenStore(self.db)
        self.callbacks = CallbackStore(self.db)
        self.upstream_keys = UpstreamKeyStore(self.db)
        self.follows = FollowStore(self.db)
        self.webhook_secret = settings.webhook_secret or _stored_secret(settings.data_dir)
        self.upstream_links = UpstreamCallbackLinks(self.webhook_secret, settings.public_base_url)
        signer = UrlSigner(
            hmac.new(self.webhook_secret.encode(), b"asset-urls", hashlib.sha256).digest()
        )
        self.storage = open_storage(settings, signer)
        self.client = GuardedClient(settings.fetch_limits)
        self.metrics = open_metrics(settings.resolved_metrics_dir)  # NO_METRICS while off
        self.engines = build_engines(
            settings, EngineServices(key_pool=self.upstream_keys, metrics=self.metrics)
        )
        self.stats = OpsStats(self.db)
        self.workers = WorkerRegistry(self.db)
        self.readiness = Readiness(
            self.stats, self.storage, self.workers, self.engines, settings.ready_heartbeat_seconds
        )
        self.work_available = threading.Event()
        limits = Limits(settings)
        self.upload_store = UploadStore(self.db)
        self.uploads = UploadService(
            self.storage,
            self.client,
            self.upload_store,
            limits,
            settings.image_max_pixels,
            settings.upload_lifetime_seconds,
        )
        self.enhancer = load_enhancer(settings.enhancer, settings)
        self.service = TaskService(
            settings,
            self.tasks,
            self.engines,
            wake_workers=self.work_available.set,
            delete_assets=self.storage.delete_prefix,
            callbacks=self.callbacks,
            cancel_upstream=self.cancel_upstream,
            limits=limits,
            inline_inputs=InlineInputs(
                self.storage, settings.fetch_max_bytes, settings.image_max_pixels
            ),
            check_address=self.client.target,
            queue=QueueStats(self.db, priority_aging_seconds=settings.priority_aging_seconds),
            storage=self.storage,
            uploads=self.upload_store,
        )
        self.retention = Retention(
            self.tasks,
            self.storage,
            self.uploads,
            settings.asset_retention_days,
            deleted_grace=settings.callback_window_seconds,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._uninterruptible: dict[threading.Thread, threading.Event] = {}
        self._slots: dict[str, int] = {}
        self._stop_metrics: Callable[[], None] = lambda: None
        self.callbacks_due = threading.Event()
        self.listener = self._listener()

    def _listener(self) -> Listener | None:
        """PostgreSQL's notifications wake this process's idle workers and
        callback dispatcher (the API's waiting clients subscribe too); not
        started until something here waits (`listen`). SQLite (or a driver
        other than the psycopg 3 we ship): none, and polls stay short."""
        if self.db.url.drivername != "postgresql+psycopg":
            return None
        listener = Listener.for_engine(self.db.write_engine)
        listener.subscribe(WORK_CHANNEL, self._work_queued)
        listener.subscribe(DONE_CHANNEL, lambda task_id: self.callbacks_due.set())
        listener.on_connect(self._catch_up)
        return listener

    def listen(self) -> Listener | None:
        """Start this process's one listener (PostgreSQL), if not yet started."""
        if self.listener is not None:
            self.listener.start()
        return self.listener

    def _work_queued(self, engine: str) -> None:
        if engine in self.engines:  # another machine's engine is not our work
            self.work_available.set()

    def _catch_up(self) -> None:
        """After a (re)connect: look now for what arrived unannounced."""
        self.work_available.set()
        self.callbacks_due.set()

    def poll_interval(self) -> float:
        """How long idle loops sleep unless woken: longer while notifications
        arrive (they wake them), the short poll otherwise."""
        if self.listener is not None and self.listener.connected.is_set():
            return self.settings.notify_poll_interval
        return self.settings.poll_interval

    def cancel_upstream(self, task: Task) -> None:
        engine = self.engines.get(task.engine)
        if task.upstream_id and isinstance(engine, FileEngine):
            engine.cancel(task.upstream_id, task.upstream_key)

    def asset_url(self, key: str) -> str:
        return self.storage.url(key)

    def start_workers(
        self,
        count: int,
        render_callback: Callable[[str, Task, str], Any],
        on_finished: Callable[[str], None] = lambda task_id: None,
        deliver_callbacks: bool = True,
        metrics_port: int | None = None,
    ) -> None:
        """Start `count` render workers, the followers (when a file engine is
        enabled), one callback dispatcher (unless `deliver_callbacks` is
        false: a worker that cannot make right links leaves callbacks to the
        API processes) and the janitor, as threads; with `count` 0 (an
        API-only process) only the last two. And the listener, and with
        `metrics_port` (a process without the API) a `/metrics` listener."""
        self.listen()
        if metrics_port is not None:
            self._stop_metrics = self._serve_metrics(metrics_port)
        if count and self.settings.opencv_threads:
            cv2.setNumThreads(self.settings.opencv_threads)  # process-wide
        inputs = InputResolver(
            self.tasks, self.storage, self.client, self.settings, self.upload_store
        )

        def finished(task_id: str) -> None:
            self.callbacks_due.set()
            on_finished(task_id)

        # Following a file engine's job is mostly waiting, so those tasks get
        # their own (larger) pool and never hold up a render worker, or the reverse.
        # Each pool claims only tasks for engines this process has.
        followed = [n for n, e in self.engines.items() if isinstance(e, FileEngine)]
        render = [n for n in self.engines if n not in followed]
        pools = [("worker", count, render)]
        if count and followed:
            pools.append(("upstream", self.settings.upstream_workers, followed))
        for prefix, size, engines in pools:
            for i in range(size):
                worker = Worker(
                    self.settings,
                    self.tasks,
                    self.storage,
                    self.engines,
                    inputs,
                    self.follows,
                    on_finished=finished,
                    upstream_callback_url=self.upstream_links.url,
                    only=engines,
                    poll_interval=self.poll_interval,
                    metrics=self.metrics,
                    pool=POOLS[prefix],
                    enhancer=self.enhancer,
                )
                thread = self._spawn(f"{prefix}-{i}", worker.run, self.work_available)
                self._uninterruptible[thread] = worker.uninterruptible
            self._slots[POOLS[prefix]] = size
            self.metrics.slots(POOLS[prefix], size)
        if count:
            served = [engine for _, _, engines in pools for engine in engines]
            slots = sum(size for _, size, _ in pools)
            self._spawn("heartbeat", self._heartbeat(served, slots), threading.Event())
        dispatcher = CallbackDispatcher(
            self.settings,
            self.callbacks,
            self.tasks,
            self.client,
            render_callback,
            Webhook(self.webhook_secret),
            metrics=self.metrics,
        )
        if deliver_callbacks:
            self._spawn("callbacks", dispatcher.run, self.callbacks_due)
        self._spawn("janitor", self._sweep, threading.Event())

    def _heartbeat(
        self, engines: list[str], slots: int
    ) -> Callable[[threading.Event, threading.Event], None]:
        """The thread that tells the database this process's workers are alive
        (`store/workers.py`, read by `/readyz` in every process), often enough
        that a missed beat or two still leaves it well within the limit."""
        worker_id = uuid.uuid4().hex
        started = time.time()
        interval = min(HEARTBEAT_SECONDS, self.settings.ready_heartbeat_seconds / 3)

        host = socket.gethostname()

        def once() -> None:
            try:
                self.workers.beat(worker_id, host, os.getpid(), engines, slots, started)
            except Exception as exc:
                log.warning("worker heartbeat failed: %s", exc.__class__.__name__)

        def beat(stop: threading.Event, wake: threading.Event) -> None:
            while not stop.wait(interval):
                once()
            try:
                self.workers.gone(worker_id)
            except Exception as exc:
                log.warning("could not remove the worker heartbeat: %s", exc.__class__.__name__)

        once()  # before the call returns: ready as soon as the workers run
        return beat

    def _serve_metrics(self, port: int) -> Callable[[], None]:
        """Serve this host's metrics on `port` when metrics are on; returns what stops it."""
        token = self.settings.metrics_token
        if not isinstance(self.metrics, PrometheusMetrics) or token is None:
            return lambda: None
        scrape = self.metrics.scrape
        stop = serve_metrics(self.settings.host, port, token.get_secret_value(), scrape)
        log.info("metrics on http://%s:%d/metrics", self.settings.host, port)
        return stop

    def _sweep(self, stop: threading.Event, wake: threading.Event) -> None:
        """Housekeeping that no request waits for: expired uploads (every
        minute) and, every `gc_interval_seconds`, expired tasks' files."""
        next_gc = time.monotonic()
        while not stop.is_set():
            try:
                self.uploads.sweep()
            except Exception:
                log.exception("sweeping expired uploads failed")
            if time.monotonic() >= next_gc:
                next_gc = time.monotonic() + self.settings.gc_interval_seconds
                try:
                    self.retention.expire_tasks()
                    self.retention.purge_deleted()
                except Exception:
                    log.exception("deleting expired tasks' files failed")
            stop.wait(min(SWEEP_SECONDS, self.settings.gc_interval_seconds))

    def _spawn(
        self,
        name: str,
        target: Callable[[threading.Event, threading.Event], None],
        wake: threading.Event,
    ) -> threading.Thread:
        thread = threading.Thread(target=target, args=(self._stop, wake), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def stop_workers(self, timeout: float = 10.0) -> None:
        """Stop every worker thread within one shared `timeout`, and the
        listener (renders and followers hand their tasks back at once)."""
        self._stop.set()
        self.work_available.set()
        if self.listener is not None:
            self.listener.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        # A step that must not be abandoned (a create on the wire would make a
        # generation nobody records) gets its engine's grace to finish.
        busy = [
            t
            for t in self._threads
            if t.is_alive() and self._uninterruptible.get(t, threading.Event()).is_set()
        ]
        grace = max(
            (e.shutdown_grace for e in self.engines.values() if isinstance(e, FileEngine)),
            default=0.0,
        )
        deadline = time.monotonic() + grace
        for thread in busy:
            thread.join(max(0.0, deadline - time.monotonic()))
        if left := [t.name for t in self._threads if t.is_alive()]:
            log.warning("stopping: left running past the deadline: %s", ", ".join(left))
        self._threads.clear()
        self._uninterruptible.clear()
        for pool, size in self._slots.items():
            self.metrics.slots(pool, -size)
        self._slots.clear()
        self._stop_metrics()
        self._stop_metrics = lambda: None

    def close(self) -> None:
        self.stop_workers()
        self.client.close()
        self.db.dispose()
