"""What the edge refuses before anything is stored: text that cannot be
stored or sent back, callback URLs the server would never call, sources that
cannot be extended; and rows an older version stored are repaired."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from reelgate.store.db import Database
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.testing import Api, InProcess, in_process

SURROGATE = "m\ud800"
NUL = "a\x00b"


def _raw(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST JSON as a client library would write it (surrogates escaped as \\uXXXX)."""
    content = json.dumps(body)  # ensure_ascii: "\ud800" goes out as an escape
    return client.post(path, content=content, headers={"content-type": "application/json"})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def edge_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InProcess]:
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("database_url_pg")
    with in_process(tmp_path / "data", workers=0, **overrides) as app:
        yield app


@pytest.fixture
def database_url_pg(postgres_url: str) -> str:
    return postgres_url


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"k": [value]}
    return value


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("/luma/videos", {"prompt": "t", "async": True, "model": SURROGATE}, "model"),
    ("/luma/videos", {"prompt": f"p{SURROGATE}", "async": True}, "prompt"),
    ("/luma/videos", {"prompt": NUL, "async": True}, "prompt"),
    ("/luma/videos", {"prompt": "t", "timeout": float("inf")}, "timeout"),
    ("/luma/videos", {"prompt": "t", "async": True, "callback_url": NUL}, "callback_url"),
    ("/luma/videos", {"action": "extend", "video_id": NUL, "prompt": "x"}, "video_id"),
    ("/luma/tasks", {"action": "retrieve", "id": NUL}, "id"),
    ("/luma/tasks", {"ids": ["ok", SURROGATE]}, "ids[1]"),
    ("/luma/generations", {"user_prompt": "t", "model_name": SURROGATE}, "model_name"),
    ("/luma/generations", {"user_prompt": NUL}, "user_prompt"),
    ("/luma/generations", {"user_prompt": "t", "notify_hook": SURROGATE}, "notify_hook"),
    ("/dream-machine/v1/generations", {"prompt": f"abc{SURROGATE}"}, "prompt"),
    ("/dream-machine/v1/generations", {"prompt": "abc", "model": NUL}, "model"),
    (
        "/dream-machine/v1/generations",
        {"prompt": "abc", "keyframes": {"frame0": {"type": "image", "url": f"http://x/{NUL}"}}},
        "keyframes.frame0.url",
    ),
    ("/dream-machine/v1/generations", {"prompt": "abc", "concepts": [{"key": NUL}]}, "key"),
    ("/dream-machine/v1/generations", {"prompt": "abc", "concepts": [{"k": float("nan")}]}, "k"),
    ("/dream-machine/v1/generations", {"prompt": "abc", "concepts": [_deep(300)]}, "nested"),
]


def _message(path: str, answer: httpx.Response) -> str:
    body = answer.json()
    if path.startswith(("/luma/videos", "/luma/tasks")):
        assert body["success"] is False and body["error"]["code"] == "bad_request"
        return str(body["error"]["message"])
    if path.startswith("/luma/generations"):
        assert body["code"] == 400
        return str(body["message"])
    return str(body["detail"])


def test_unstorable_text_and_numbers_get_a_400_in_the_dialects_shape(edge_app: InProcess) -> None:
    api = Api(edge_app, edge_app.create_token("edge"))
    for path, body, field in CASES:
        answer = _raw(api.client, path, body)
        assert answer.status_code == 400, (path, body, answer.text)
        message = _message(path, answer)
        assert field in message, (field, message)
        assert any(w in message for w in ("surrogate", "NUL", "finite", "nested")), message
    for path in ("/dream-machine/v1/generations/abc%00", "/luma/generations/x%00y"):
        answer = api.client.get(path)
        assert answer.status_code == 400 and "NUL" in answer.text, answer.text
    # Nothing was stored, and every read of the token still answers.
    assert api.client.get("/dream-machine/v1/generations").json()["count"] == 0
    assert api.post("/luma/videos", {"prompt": "fine after all", "async": True}).status_code == 200
    assert api.client.get("/dream-machine/v1/generations").status_code == 200
    assert api.post("/luma/tasks", {"ids": []}).status_code == 200


def test_rows_stored_by_an_older_version_are_repaired(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate("0003")
        owner, _ = TokenStore(db).create("old")
        bad = json.dumps({"prompt": "t", "model": SURROGATE, "note": "x\x00y"})
        with db.write() as s:
            s.execute(
                text(
                    "INSERT INTO tasks (id, video_id, owner_id, origin, kind, prompt, loop,"
                    " aspect_ratio, resolution, duration, model, engine, seed, origin_request,"
                    " state, progress, attempts, not_before, created_at, updated_at,"
                    " callback_on_start, upstream_unclear_creates) VALUES ('t1', 'v1', :owner,"
                    " 'acedata', 'generate', 't', false, '16:9', '720p', '5s', 'preview',"
                    " 'preview', 1, :request, 'queued', 0, 0, :now, :now, :now, false, 0)"
                ),
                {"owner": owner.id, "request": bad, "now": time.time()},
            )
        db.migrate()
        task = TaskStore(db).get("t1")
        assert task is not None
        assert task.origin_request["model"] == "m\ufffd"
        assert task.origin_request["note"] == "xy"
        json.dumps(task.origin_request).encode("utf-8")  # can be sent back
    finally:
        db.dispose()


@pytest.mark.slow  # over a second: the slow tier
def test_callback_urls_the_server_would_not_call_are_refused_up_front(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", workers=0, allow_private_networks=False) as app:
        api = Api(app, app.create_token("hooks"))
        for url in (
            "http://127.0.0.1:9/hook",
            "http://10.1.2.3/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
        ):
            refused = api.post("/luma/videos", {"prompt": "x", "async": True, "callback_url": url})
            assert refused.status_code == 400, url
            assert "callback URL refused" in refused.json()["error"]["message"]
            official = api.client.post(
                "/dream-machine/v1/generations", json={"prompt": "abc", "callback_url": url}
            )
            assert official.status_code == 400 and "callback URL" in official.json()["detail"]
        assert app.http().get("/luma/videos").status_code in (404, 405)
        assert api.client.get("/dream-machine/v1/generations").json()["count"] == 0
    with in_process(tmp_path / "open", workers=0, allow_private_networks=True) as app:
        api = Api(app, app.create_token("lan"))
        metadata = "http://169.254.169.254/hook"
        answer = api.post("/luma/videos", {"prompt": "x", "async": True, "callback_url": metadata})
        assert answer.status_code == 400, "metadata addresses stay refused"
        lan = api.post(
            "/luma/videos", {"prompt": "x", "async": True, "callback_url": "http://10.1.2.3/h"}
        )
        assert lan.status_code == 200


def test_a_failed_source_is_not_said_to_be_unready(app: InProcess, api: Api) -> None:
    failed = api.post(
        "/luma/videos",
        {"prompt": "x", "async": True, "start_image_url": "http://127.0.0.1:9/gone.png"},
    )
    task_id = failed.json()["task_id"]
    api.wait_done(task_id)
    extend = api.client.post(
        "/dream-machine/v1/generations",
        json={"prompt": "more", "keyframes": {"frame0": {"type": "generation", "id": task_id}}},
    )
    assert extend.status_code == 400
    assert "yet" not in extend.json()["detail"]
    assert "failed" in extend.json()["detail"]
