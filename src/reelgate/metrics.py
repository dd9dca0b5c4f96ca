"""What the server counts for Prometheus, decided here once: every counted
metric's name, labels and buckets, and how one host's processes add up (the
gauges read from the database at scrape time are `api/operations.py`'s).

Every part that counts something (the worker loop, the frame runner, the
luma engine, the callback dispatcher, the API's middleware) is handed a
`Metrics` and calls it; the one it gets while metrics are off
(`NO_METRICS`) records nothing, so an unmonitored server pays a method call.

With metrics on (`PrometheusMetrics`), prometheus-client runs in its
multiprocess mode: each process writes its counters into memory-mapped files
of its own in one directory per host, and a scrape of any process of that
host adds up the files of all of them (the API processes, their worker
threads, `reelgate worker` processes beside them). The mode is chosen here,
before the first metric exists, instead of through the environment at
import time, so the order of imports never matters. A process that starts
folds the counters of processes that are gone into one archive file (and
drops their busy-slot gauges), so the directory does not grow with every
restart and totals never go down.

Labels stay few and bounded: engines, pools, outcomes, failure codes, route
templates, methods, status codes, upstream key fingerprints. Never a task
id, a token or a URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hmac
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelgate.domain.processes import pid_alive

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
"""Seconds from a task's creation until a worker first claims it."""
RUN_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
"""Seconds one attempt runs (renders take seconds, upstream generations minutes)."""
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
"""Seconds a render or an encode takes."""
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""Seconds an HTTP request takes (sync creates wait for their video)."""
CALLBACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Seconds one callback delivery takes (capped by `callback_timeout`)."""

FINISHED = ("completed", "failed")
"""Attempt outcomes that finish the task; the others leave it to another attempt:
`retry` (queued again after the backoff), `lease_lost` (presumed dead, taken
over), `handed_back` (the worker is stopping), `superseded` (another run won)."""

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

ARCHIVE = "archive"
"""The file name part that holds the folded counters of processes that are gone."""


class Metrics:
    """The recorder every part is handed. This one records nothing: metrics are off."""

    enabled = False

    def task_claimed(self, engine: str, waited: float | None) -> None:
        """A worker claimed a task; `waited`: seconds since it was created, on
        its first claim only (a retry's wait is mostly its backoff)."""

    def attempt_ended(self, engine: str, outcome: str, seconds: float, code: str | None) -> None:
        """An attempt ended with `outcome` after `seconds`; `code`: the failure
        code when the task failed."""

    @contextlib.contextmanager
    def busy(self, pool: str) -> Iterator[None]:
        """A worker slot of `pool` is busy for the duration."""
        yield

    def slots(self, pool: str, count: int) -> None:
        """This process runs `count` worker slots in `pool`."""

    def rendered(self, engine: str, seconds: float) -> None:
        """A frame engine spent `seconds` making a clip's (or a still's) pictures."""

    def encoded(self, engine: str, seconds: float) -> None:
        """The encoder spent `seconds` compressing a clip."""

    def upstream_request(self, engine: str, key: str, outcome: str) -> None:
        """One HTTP request to an upstream API with the key of fingerprint `key`."""

    def callback_delivered(self, outcome: str, seconds: float) -> None:
        """One callback attempt: `delivered`, `retry`, `gave_up` or `task_gone`."""

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request answered by the API, by route template."""


NO_METRICS = Metrics()


def outcome_of_status(status: int | None) -> str:
    """An upstream answer as an outcome label (None: no answer at all)."""
    if status is None:
        return "error"
    if status < 400:
        return "ok"
    if status == 429:
        return "rate_limited"
    return "client_error" if status < 500 else "server_error"


def method_label(method: str) -> str:
    """HTTP methods as sent are unbounded; the label is one of the usual few."""
    return method if method in HTTP_METHODS else "other"


class PrometheusMetrics(Metrics):
    """Metrics written to this host's multiprocess directory."""

    enabled = True

    def __init__(self, directory: Path) -> None:
        from prometheus_client import Counter, Gauge, Histogram, values

        self.directory = directory
        prepare(directory)
        # The multiprocess mode, by hand: values of the metrics made below go
        # to files named by this process in `directory`.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        values.ValueClass = _untyped(values).MultiProcessValue()

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return Counter(name, doc, labels, registry=None)

        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: Any) -> Any:
            return Histogram(name, doc, labels, registry=None, buckets=buckets)

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return Gauge(name, doc, labels, registry=None, multiprocess_mode="livesum")

        self._wait = histogram(
            "reelgate_task_wait_seconds",
            "Seconds from a task's creation until a worker first claimed it.",
            ("engine",),
            WAIT_BUCKETS,
        )
        self._run = histogram(
            "reelgate_task_run_seconds",
            "Seconds one attempt ran, by how it ended.",
            ("engine", "outcome"),
            RUN_BUCKETS,
        )
        self._finished = counter(
            "reelgate_tasks_finished",
            "Tasks finished by a worker: completed, or failed with a failure code.",
            ("engine", "outcome", "code"),
        )
        self._lost = counter(
            "reelgate_leases_lost",
            "Attempts that lost their lease (the task was deleted or taken over).",
            ("engine",),
        )
        self._busy = gauge(
            "reelgate_worker_busy_slots", "Worker slots running a task now.", ("pool",)
        )
        self._slots = gauge("reelgate_worker_slots", "Worker slots started.", ("pool",))
        self._render = histogram(
            "reelgate_engine_render_seconds",
            "Seconds a frame engine spent making a clip's pictures.",
            ("engine",),
            STEP_BUCKETS,
        )
        self._encode = histogram(
            "reelgate_engine_encode_seconds",
            "Seconds the H.264 encoder spent on a clip.",
            ("engine",),
            STEP_BUCKETS,
        )
        self._upstream = counter(
            "reelgate_upstream_requests",
            "HTTP requests to an upstream API, by outcome and key fingerprint.",
            ("engine", "key", "outcome"),
        )
        self._callbacks = counter(
            "reelgate_callback_deliveries", "Callback delivery attempts.", ("outcome",)
        )
        self._callback_seconds = histogram(
            "reelgate_callback_delivery_seconds",
            "Seconds one callback delivery attempt took.",
            ("outcome",),
            CALLBACK_BUCKETS,
        )
        self._http = counter(
            "reelgate_http_requests",
            "HTTP requests answered, by route template.",
            ("route", "method", "status"),
        )
        self._http_seconds = histogram(
            "reelgate_http_request_duration_seconds",
            "Seconds from a request's arrival until its answer was sent.",
            ("route", "method"),
            HTTP_BUCKETS,
        )

    def task_claimed(self, engine: str, waited: float | None) -> None:
        if waited is not None:
            self._wait.labels(engine).observe(max(0.0, waited))

    def attempt_ended(self, engine: str, outcome: str, seconds: float, code: str | None) -> None:
        self._run.labels(engine, outcome).observe(seconds)
        if outcome in FINISHED:
            self._finished.labels(engine, outcome, code or "none").inc()
        elif outcome == "lease_lost":
            self._lost.labels(engine).inc()

    @contextlib.contextmanager
    def busy(self, pool: str) -> Iterator[None]:
        gauge = self._busy.labels(pool)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def slots(self, pool: str, count: int) -> None:
        self._slots.labels(pool).inc(count)

    def rendered(self, engine: str, seconds: float) -> None:
        self._render.labels(engine).observe(seconds)

    def encoded(self, engine: str, seconds: float) -> None:
        self._encode.labels(engine).observe(seconds)

    def upstream_request(self, engine: str, key: str, outcome: str) -> None:
        self._upstream.labels(engine, key, outcome).inc()

    def callback_delivered(self, outcome: str, seconds: float) -> None:
        self._callbacks.labels(outcome).inc()
        self._callback_seconds.labels(outcome).observe(seconds)

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method_label(method)
        self._http.labels(route, method, str(status)).inc()
        self._http_seconds.labels(route, method).observe(seconds)

    def scrape(self, collectors: Iterable[Collector] = ()) -> bytes:
        """The text exposition of this host's processes, plus `collectors`
        (gauges read at scrape time)."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry()
        registry.register(_HostCollector(self.directory))
        for collector in collectors:
            registry.register(collector)
        return generate_latest(registry)


_opened: dict[Path, PrometheusMetrics] = {}
_opening = threading.Lock()


def open_metrics(directory: Path | None) -> Metrics:
    """The recorder for this process: `NO_METRICS` without a directory
    (metrics off), else the one for that directory (a process has one; in
    tests a later directory takes over from an earlier one)."""
    if directory is None:
        return NO_METRICS
    directory = directory.resolve()
    with _opening:
        if directory not in _opened:
            _opened.clear()
            _opened[directory] = PrometheusMetrics(directory)
        return _opened[directory]


# The directory: one per host, shared by its processes


@contextlib.contextmanager
def _flock(directory: Path, mode: int) -> Iterator[None]:
    """Scrapes read (shared) while a starting process folds files (exclusive),
    so no scrape sees a counter twice or not at all."""
    with (directory / ".lock").open("a") as f:
        fcntl.flock(f, mode)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _HostCollector:
    """The counters of this host's processes, added up under the directory's
    shared lock. The busy-slot gauges of processes that are gone are left
    out (a process killed mid-task never counted its slot free)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Any]:
        from prometheus_client import multiprocess

        with _flock(self.directory, fcntl.LOCK_SH):
            files = [
                f
                for f in glob.glob(str(self.directory / "*.db"))
                if not Path(f).name.startswith("gauge_live") or _running(_pid_of(f))
            ]
            return list(_untyped(multiprocess).MultiProcessCollector.merge(files))


def _untyped(module: object) -> Any:
    """A prometheus-client module whose functions carry no annotations."""
    return module


def _running(pid: str) -> bool:
    return pid.isdigit() and (int(pid) == os.getpid() or pid_alive(int(pid)))


def _pid_of(path: str) -> str:
    """`counter_123.db`, `gauge_livesum_123.db` -> "123"."""
    return Path(path).name.removesuffix(".db").rsplit("_", 1)[-1]


def prepare(directory: Path) -> None:
    """Make the directory, and tidy what processes that are gone left in it:
    their busy-slot gauges go (nothing of theirs is busy now), their counters
    and histograms are folded into one archive file per type (so totals stay
    as they were). This process's own pid counts as gone: a pid can be reused
    after a reboot or in a container, and its files must not be taken for ours."""
    from prometheus_client import mmap_dict
    from prometheus_client import multiprocess as typed_multiprocess

    multiprocess = _untyped(typed_multiprocess)
    directory.mkdir(parents=True, exist_ok=True)
    with _flock(directory, fcntl.LOCK_EX):
        files = glob.glob(str(directory / "*.db"))
        pids = {_pid_of(f) for f in files} - {ARCHIVE}
        gone = {pid for pid in pids if pid == str(os.getpid()) or not _running(pid)}
        for pid in gone:
            multiprocess.mark_process_dead(pid, str(directory))
        for kind in ("counter", "histogram"):
            folded = [f for f in files if Path(f).name.startswith(kind + "_")]
            folded = [f for f in folded if _pid_of(f) in gone]
            if not folded:
                continue
            archive = directory / f"{kind}_{ARCHIVE}.db"
            sources = [*folded, str(archive)] if archive.exists() else folded
            merged = multiprocess.MultiProcessCollector.merge(sources, accumulate=False)
            draft = directory / f"{kind}_{ARCHIVE}.draft"
            draft.unlink(missing_ok=True)
            out = _untyped(mmap_dict).MmapedDict(str(draft))
            try:
                for metric in merged:
                    for sample in metric.samples:
                        names, values = list(sample.labels), list(sample.labels.values())
                        key = mmap_dict.mmap_key(
                            metric.name, sample.name, names, values, metric.documentation
                        )
                        out.write_value(key, sample.value, 0.0)
            finally:
                out.close()
            os.replace(draft, archive)
            for f in folded:
                Path(f).unlink(missing_ok=True)


# `reelgate worker` on a host of its own: a listener for /metrics alone


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token` (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def serve_metrics(
    host: str, port: int, token: str, scrape: Callable[[], bytes]
) -> Callable[[], None]:
    """Serve `GET /metrics` (the bearer `token` required) on `host:port` in a
    daemon thread; returns what stops it."""
    from prometheus_client import CONTENT_TYPE_LATEST

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            if status == 401:
                self.send_header("www-authenticate", "Bearer")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self._answer(404, b"not found\n", "text/plain")
            elif not bearer_matches(self.headers.get("authorization"), token):
                self._answer(401, b"a metrics token is required\n", "text/plain")
            else:
                try:
                    body = scrape()
                except Exception:
                    log.exception("metrics scrape failed")
                    self._answer(500, b"scrape failed\n", "text/plain")
                    return
                self._answer(200, body, CONTENT_TYPE_LATEST)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
