"""Shared fixtures: real servers on loopback, real databases, a loopback
HTTP peer that serves files and records callbacks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

PG_ENV = "REELGATE_TEST_POSTGRES_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Databases


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"reelgate_test_{uuid.uuid4().hex[:10]}"
    admin = make_url(base).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs on SQLite and on PostgreSQL (a clean schema each time)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    from sqlalchemy import create_engine, text

    from reelgate.store.db import normalize_url

    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Any]:
    """A migrated store database, on each of the databases above."""
    from reelgate.store.db import Database

    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


# Servers


class Server:
    """`reelgate serve` in a subprocess on a loopback port."""

    def __init__(
        self, data_dir: Path, env: dict[str, str | None] | None = None, workers: int = 1
    ) -> None:
        """`env` adds variables; a None value removes one (e.g. the public URL)."""
        self.data_dir = data_dir
        self.port = free_port()
        self.workers = workers
        merged: dict[str, str | None] = {
            **os.environ,
            "REELGATE_DATA_DIR": str(data_dir),
            # separate `reelgate worker` processes must link to this server
            "REELGATE_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
            "REELGATE_DEFAULT_RESOLUTION": "540p",
            "REELGATE_ENCODER_PRESET": "ultrafast",
            "REELGATE_ALLOW_PRIVATE_NETWORKS": "true",
            "REELGATE_POLL_INTERVAL": "0.1",
            "REELGATE_CALLBACK_BACKOFF_SECONDS": "0.2",
            "REELGATE_CALLBACK_MAX_BACKOFF_SECONDS": "1",
            "REELGATE_RATE_LIMIT_PER_MINUTE": "0",
            "REELGATE_MAX_ACTIVE_TASKS": "0",
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
                "warning",
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


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """A started server, stopped on the way out."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
    """A tiny client for one token."""

    def __init__(self, server: Server, token: str) -> None:
        self.server = server
        self.client = httpx.Client(
            base_url=server.url, timeout=120, headers={"authorization": f"Bearer {token}"}
        )

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.client.post(path, json=body)

    def retrieve(self, task_id: str) -> httpx.Response:
        return self.post("/luma/tasks", {"id": task_id, "action": "retrieve"})

    def wait_done(self, task_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.retrieve(task_id).json()
            if item["response"]["state"] in ("completed", "failed"):
                return item
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} did not finish")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(Server(tmp_path_factory.mktemp("server") / "data", workers=2)) as srv:
        yield srv


@pytest.fixture(scope="session")
def api(server: Server) -> Api:
    return Api(server, server.create_token("alice"))


@pytest.fixture(scope="session")
def other_api(server: Server) -> Api:
    return Api(server, server.create_token("mallory"))


# A loopback peer: serves files, records POSTs


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
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

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


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.httpd.shutdown()
