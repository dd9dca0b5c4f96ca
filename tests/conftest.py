"""Shared fixtures: the app in process and real servers on loopback, real
databases, a loopback HTTP peer that serves files and records callbacks.
The helpers behind them live in `reelgate.testing` (benchmarks use them too)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.testing import Api, InProcess, Peer, SeaweedFS, Server, in_process, running

PG_ENV = "REELGATE_TEST_POSTGRES_URL"


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


# The app in this process (most dialect tests) and a real server (tests that
# need a process: a CLI client, a kill, a restart, a separate worker)


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """The app with two workers, in this process, shared by the session (its
    tokens keep each test's tasks apart)."""
    with in_process(tmp_path_factory.mktemp("app") / "data", workers=2) as inproc:
        yield inproc


@pytest.fixture(scope="session")
def http(app: InProcess) -> httpx.Client:
    """A client of the in-process app without a token: fetches its assets."""
    return app.http()


@pytest.fixture(scope="session")
def api(app: InProcess) -> Api:
    return Api(app, app.create_token("alice"))


@pytest.fixture(scope="session")
def other_api(app: InProcess) -> Api:
    return Api(app, app.create_token("mallory"))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`reelgate serve` in a subprocess, shared by the session."""
    with running(Server(tmp_path_factory.mktemp("server") / "data", workers=2)) as srv:
        yield srv


# An S3-compatible object store on loopback


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A SeaweedFS server shared by the session; each test takes a prefix."""
    store = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield store
    store.stop()


@pytest.fixture
def s3(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    """The store's credentials and endpoint in this process's environment, as
    an operator sets them (the S3 client reads the AWS_* variables itself)."""
    for name, value in seaweedfs.env.items():
        monkeypatch.setenv(name, value)
    return seaweedfs


# A loopback peer: serves files, records POSTs


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()
