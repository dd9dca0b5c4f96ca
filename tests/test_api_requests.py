"""What the API's request path costs in database work, and that its shortcut
for tokens never lets a revoked one through (timings: benchmarks/api_overhead.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

import reelgate.store.db as db_module
from reelgate.store.db import normalize_url
from reelgate.testing import InProcess, in_process


@pytest.fixture
def idle(database_url: str, tmp_path: Path) -> Iterator[InProcess]:
    """The app without workers, on SQLite and on PostgreSQL."""
    with in_process(tmp_path / "data", workers=0, database_url=database_url) as app:
        yield app


class Statements:
    """The SQL statements the app's database runs while counting."""

    def __init__(self, app: InProcess) -> None:
        db = app.runtime.db
        self.engines = {db.read_engine, db.write_engine}
        self.seen: list[str] = []

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    def __enter__(self) -> Statements:
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._record)

    def queries(self) -> list[str]:
        """The statements that read or write rows (not BEGIN, ROLLBACK and the like)."""
        return [
            s
            for s in self.seen
            if s.lstrip().split()[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}
        ]


def test_a_revoked_token_is_refused_at_once_even_right_after_it_was_used(
    idle: InProcess,
) -> None:
    token = idle.create_token("leaving-soon")
    client = idle.http(token)
    task_id = client.post("/luma/videos", json={"prompt": "x", "async": True}).json()["task_id"]
    generation = client.post("/dream-machine/v1/generations", json={"prompt": "a lake"}).json()[
        "id"
    ]
    for _ in range(2):  # a second use is the one a cache of verified tokens would answer
        assert client.post("/luma/tasks", json={"id": task_id}).status_code == 200
        assert client.get(f"/dream-machine/v1/generations/{generation}").status_code == 200
        assert client.post("/luma/videos", json={"prompt": "y", "async": True}).status_code == 200
        assert client.post("/luma/tasks", json={"ids": [task_id]}).status_code == 200
    idle.cli("tokens", "revoke", "leaving-soon")

    retrieve = client.post("/luma/tasks", json={"id": task_id})
    assert retrieve.status_code == 401 and retrieve.json()["error"]["code"] == "invalid_token"
    get = client.get(f"/dream-machine/v1/generations/{generation}")
    assert get.status_code == 401
    create = client.post("/luma/videos", json={"prompt": "z", "async": True})
    assert create.status_code == 401 and create.json()["error"]["code"] == "invalid_token"
    for body in (
        {"ids": [task_id]},
        {"action": "cancel", "id": task_id},
        {"action": "retrieve_batch", "ids": [task_id]},
    ):
        assert client.post("/luma/tasks", json=body).status_code == 401, body
    assert client.get("/dream-machine/v1/generations").status_code == 401
    assert idle.runtime.tasks.get(task_id).state.value == "queued"  # not cancelled


def test_a_retrieve_and_a_get_are_one_database_query(idle: InProcess) -> None:
    token = idle.create_token("counted")
    client = idle.http(token)
    task_id = client.post(
        "/luma/videos",
        json={"prompt": "x", "async": True, "callback_url": "http://127.0.0.1:9/hook"},
    ).json()["task_id"]
    generation = client.post("/dream-machine/v1/generations", json={"prompt": "a lake"}).json()[
        "id"
    ]
    client.post("/luma/tasks", json={"id": task_id})  # the token is verified once
    # the callback dispatcher and the janitor poll the database on their own
    # clock: stopped, so only the requests' own statements are counted
    idle.runtime.stop_workers()

    with Statements(idle) as retrieve:
        answer = client.post("/luma/tasks", json={"id": task_id})
    assert answer.status_code == 200 and answer.json()["id"] == task_id
    assert len(retrieve.queries()) == 1, retrieve.queries()

    with Statements(idle) as get:
        answer = client.get(f"/dream-machine/v1/generations/{generation}")
    assert answer.status_code == 200 and answer.json()["id"] == generation
    assert len(get.queries()) == 1, get.queries()


def test_a_create_reads_the_tokens_usage_in_three_statements(idle: InProcess) -> None:
    """The limits are read under the token's lock as the token's row, the
    counts, and only the newest creates its per-minute limit looks at,
    however many it made. On SQLite (one writer at a time) they are read once
    before that, unlocked, so that a token past its limits is refused without
    taking the write lock from anyone; on PostgreSQL the lock is the token's
    own row, and they are read once."""
    sqlite = idle.runtime.db.is_sqlite
    token = idle.create_token("creating")
    idle.cli("tokens", "limits", "creating", "--creates-per-minute", "3")
    client = idle.http(token)
    idle.runtime.stop_workers()
    for _ in range(3):
        assert client.post("/luma/videos", json={"prompt": "x", "async": True}).status_code == 200

    with Statements(idle) as refused:
        answer = client.post("/luma/videos", json={"prompt": "y", "async": True})
    assert answer.status_code == 429, answer.text
    assert len(refused.queries()) == 3, refused.queries()
    writes = [s for s in refused.seen if "IMMEDIATE" in s.upper() or "FOR UPDATE" in s.upper()]
    assert bool(writes) is not sqlite, refused.seen
    idle.cli("tokens", "limits", "creating", "--creates-per-minute", "0")
    with Statements(idle) as create:
        answer = client.post("/luma/videos", json={"prompt": "z", "async": True})
    assert answer.status_code == 200 and answer.json()["task_id"]
    # on PostgreSQL the insert also wakes the workers (`pg_notify`)
    queries = [q for q in create.queries() if "pg_notify" not in q]
    # no limit to the rate: no recent creates read
    assert len(queries) == (5 if sqlite else 3), queries
    assert [q.lstrip().split()[0].upper() for q in queries][-1] == "INSERT"


def _kill_connections(database_url: str) -> int:
    """Close, from the server's side, every connection to the app's database
    (what a PostgreSQL restart does to a pool)."""
    killer = create_engine(normalize_url(database_url))
    with killer.begin() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    killer.dispose()
    return int(killed or 0)


def test_pooled_connections_that_died_while_idle_are_replaced_unseen(
    idle: InProcess, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a pooled connection idle for a while is pinged before use
    (a server restart leaves dead ones in the pool), so no request fails."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite connections do not die")
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.05)
    client = idle.http(idle.create_token("pinged"))
    generation = client.post("/dream-machine/v1/generations", json={"prompt": "a lake"}).json()[
        "id"
    ]
    assert client.get(f"/dream-machine/v1/generations/{generation}").status_code == 200
    idle.runtime.stop_workers()
    assert _kill_connections(database_url), "the app's pooled connections were closed"
    time.sleep(0.2)

    for _ in range(3):
        answer = client.get(f"/dream-machine/v1/generations/{generation}")
        assert answer.status_code == 200, answer.text
    create = client.post("/dream-machine/v1/generations", json={"prompt": "a sea"})
    assert create.status_code == 201, create.text


def test_a_read_that_finds_its_pooled_connection_dead_is_made_again(
    idle: InProcess, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a connection that died less than the ping's idle time
    after its last use fails its statement; a retrieve's or a get's one read
    is then made again on a fresh connection, so the client never sees it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite connections do not die")
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 3600.0)  # no pings at all
    client = idle.http(idle.create_token("retried"))
    task_id = client.post("/luma/videos", json={"prompt": "x", "async": True}).json()["task_id"]
    assert client.post("/luma/tasks", json={"id": task_id}).status_code == 200
    idle.runtime.stop_workers()
    assert _kill_connections(database_url), "the app's pooled connections were closed"

    answer = client.post("/luma/tasks", json={"id": task_id})
    assert answer.status_code == 200 and answer.json()["id"] == task_id, answer.text
