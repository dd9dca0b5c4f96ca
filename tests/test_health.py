"""Liveness and readiness: `/healthz` says the process is up, `/readyz`
whether it can serve (database reachable and migrated, storage writable, a
worker heartbeating for each engine, in this process or another), and when
not, which check fails and why."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from reelgate.config import Settings
from reelgate.runtime import Runtime
from reelgate.store.stats import head_revision
from reelgate.testing import InProcess, TcpProxy, in_process, postgres_database


def ready(app: InProcess) -> tuple[int, dict[str, Any]]:
    with app.http() as client:
        answer = client.get("/readyz")
    return answer.status_code, answer.json()


def test_liveness_and_readiness_of_a_process_with_workers(app: InProcess) -> None:
    with app.http() as client:
        live = client.get("/healthz")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    status, body = ready(app)
    assert status == 200 and body["ready"] is True, body
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["database"]["revision"]
    assert checks["storage"]["ok"]
    assert checks["workers"]["engines"]["preview"] == {"ok": True, "processes": 1, "slots": 2}


def test_an_api_process_is_ready_while_another_process_runs_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with in_process(data, workers=0) as api_only:
        status, body = ready(api_only)
        assert status == 503 and body["ready"] is False
        workers = body["checks"]["workers"]
        assert workers["ok"] is False and "preview" in workers["error"]
        assert workers["engines"]["preview"]["processes"] == 0
        assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]

        # a worker process on the same database (as `reelgate worker`)
        other = Runtime(Settings(data_dir=data, workers=1))
        try:
            other.start_workers(1, lambda dialect, task, event: {})
            status, body = ready(api_only)
            assert status == 200 and body["checks"]["workers"]["engines"]["preview"]["ok"]
        finally:
            other.close()
        status, body = ready(api_only)
        assert status == 503, "a worker that stops says so at once"


def test_a_silent_worker_stops_counting(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", workers=1, ready_heartbeat_seconds=0.2) as app:
        assert ready(app)[0] == 200
        app.runtime.workers.beat("ghost", "elsewhere", 1, ["preview"], 1, 0.0)
        app.runtime.stop_workers()  # its own heartbeat ends; the ghost never beats again
        time.sleep(0.25)
        status, body = ready(app)
    assert status == 503 and "0.2 s" in body["checks"]["workers"]["error"]


def test_unwritable_storage_and_an_unmigrated_database_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with in_process(tmp_path / "data", workers=1) as app:

        def refuse(key: str, data: bytes) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(app.runtime.storage, "write", refuse)
        with app.runtime.db.write() as s:
            s.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        status, body = ready(app)
        assert status == 503
        storage = {"ok": False, "error": "cannot write to the storage (PermissionError)"}
        assert body["checks"]["storage"] == storage
        database = body["checks"]["database"]
        assert database["ok"] is False and "revision 0001" in database["error"]
        assert body["checks"]["workers"]["ok"] is True
        monkeypatch.undo()
        with app.runtime.db.write() as s:
            s.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision()})
        assert ready(app)[0] == 200
        assert not list(app.runtime.storage.list_keys("readyz")), "the probe cleans up"


@pytest.mark.slow
@pytest.mark.postgres
def test_readiness_flips_while_the_database_is_unreachable(tmp_path: Path) -> None:
    base = os.environ.get("REELGATE_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("REELGATE_TEST_POSTGRES_URL is not set")
    from sqlalchemy.engine import make_url

    target = make_url(base)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    with postgres_database(base) as url:
        try:
            with in_process(tmp_path / "data", workers=1, database_url=proxy.url_for(url)) as app:
                assert ready(app)[0] == 200
                client = app.http(app.create_token("during-the-outage"))
                generation = client.post(
                    "/dream-machine/v1/generations", json={"prompt": "a lake"}
                ).json()["id"]
                proxy.go_down()
                started = time.monotonic()
                status, body = ready(app)
                assert time.monotonic() - started < 5
                database = body["checks"]["database"]
                assert status == 503 and database["ok"] is False
                assert database["error"] == "the database did not answer (OperationalError)"
                assert str(proxy.port) not in str(body), "no address in a public answer"
                assert body["checks"]["storage"]["ok"] is True
                get = client.get(f"/dream-machine/v1/generations/{generation}")
                assert get.status_code == 503, get.text  # not a 500: try again later
                assert "database" in get.json()["detail"]
                assert str(proxy.port) not in get.text
                proxy.come_up()
                deadline = time.monotonic() + 20
                while ready(app)[0] != 200:
                    assert time.monotonic() < deadline, "ready again once the database is back"
                    time.sleep(0.2)
        finally:
            proxy.close()
