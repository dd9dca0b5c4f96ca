"""Structured logs: with `REELGATE_LOG_FORMAT=json` every line is one JSON
object carrying the request id, the task id and the token's name when they
are known (never a token's secret); one access line per request names its
route template; the request id comes back in `X-Request-ID` and in the
error bodies of the dialects that have a field for it."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reelgate import logs
from reelgate.testing import Api, Peer, Server, running


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """JSON lines of everything logged at INFO and above while the test runs."""
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def access_lines(captured: Captured, request_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in captured.lines()
        if line["logger"] == "reelgate.access" and line.get("request_id") == request_id
    ]


def test_a_requests_lines_carry_its_id_and_token_name_never_the_secret(
    api: Api, captured: Captured, peer: Peer
) -> None:
    # a task that fails at once (its image is missing) still has worker lines
    missing = peer.url("/missing.png")
    answer = api.post("/luma/videos", {"prompt": "logged", "async": True, "image_urls": [missing]})
    task_id = answer.json()["task_id"]
    api.wait_done(task_id)
    got = api.client.post(
        "/luma/tasks",
        json={"id": task_id, "action": "retrieve"},
        headers={"x-request-id": "trace-me-42"},
    )
    assert got.status_code == 200 and got.headers["x-request-id"] == "trace-me-42"

    (line,) = access_lines(captured, "trace-me-42")
    assert line["token"] == "alice" and line["level"] == "info"
    assert line["http"] == {
        "method": "POST",
        "route": "/luma/tasks",
        "status": 200,
        "duration_ms": line["http"]["duration_ms"],
    }
    assert line["message"].startswith("POST /luma/tasks 200 ")
    worked = [x for x in captured.lines() if x.get("task_id") == task_id]
    assert any("attempt 1" in x["message"] for x in worked), "the worker's lines name the task"
    assert api.token not in captured.text


def test_error_bodies_carry_the_request_id_where_the_dialect_has_a_field(
    api: Api, captured: Captured
) -> None:
    acedata = api.post("/luma/tasks", {"id": "no-such-task", "action": "retrieve"})
    assert acedata.status_code == 404
    assert acedata.json()["trace_id"] == acedata.headers["x-request-id"]
    (line,) = access_lines(captured, acedata.headers["x-request-id"])
    assert line["token"] == "alice" and line["http"]["status"] == 404

    generations = api.client.get("/luma/generations/nope", headers={"x-request-id": "gen-1"})
    assert generations.status_code == 404 and generations.headers["x-request-id"] == "gen-1"
    assert generations.json()["request_id"] == "gen-1"

    official = api.client.get("/dream-machine/v1/generations/nope", headers={"x-request-id": "o"})
    assert official.status_code == 404 and official.headers["x-request-id"] == "o"
    assert set(official.json()) == {"detail"}, "the official shape stays as it is"


def test_an_unfit_request_id_is_replaced(api: Api, captured: Captured) -> None:
    for unfit in ("has spaces", "x" * 200, '"quoted"'):
        answer = api.client.get("/luma/videos", headers={"x-request-id": unfit})
        chosen = answer.headers["x-request-id"]
        assert chosen != unfit and len(chosen) == 32 and chosen.isalnum()
        assert answer.json()["trace_id"] == chosen
        (line,) = access_lines(captured, chosen)
        assert "token" not in line, "no token was sent"
    assert "has spaces" not in captured.text


def test_unmatched_paths_are_logged_by_a_label_not_as_sent(api: Api, captured: Captured) -> None:
    api.client.get("/assets/secret-looking-key/video.mp4?signature=abc")
    api.client.get("/no/such/path?token=hunter2")
    server_side = [x for x in captured.lines() if x["logger"].startswith("reelgate")]
    assert "hunter2" not in str(server_side) and "signature=abc" not in str(server_side)
    routes = {x["http"]["route"] for x in server_side if x["logger"] == "reelgate.access"}
    assert routes == {"/assets/{key:path}", "unmatched"}


@pytest.mark.slow
def test_a_server_writes_json_lines_with_an_access_line_per_request(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"REELGATE_LOG_FORMAT": "json"}, log_level="info")
    with running(server):
        token = server.create_token("json-logs")
        api = Api(server, token)
        answer = api.post("/luma/videos", {"prompt": "json lines", "async": True})
        api.wait_done(answer.json()["task_id"])
        assert api.client.get("/healthz").status_code == 200
        time.sleep(0.2)
    lines = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert token not in server.log_path.read_text()
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(x["logger"].startswith("uvicorn") for x in lines), "uvicorn's lines are JSON too"
    access = [x for x in lines if x["logger"] == "reelgate.access"]
    created = [x for x in access if x["http"]["route"] == "/luma/videos"]
    assert len(created) == 1 and created[0]["token"] == "json-logs"
    assert created[0]["request_id"] and created[0]["http"]["status"] == 200
    task_id = answer.json()["task_id"]
    assert any(x.get("task_id") == task_id for x in lines)


@pytest.mark.slow  # over a second: the slow tier
def test_a_completed_task_logs_where_its_time_went(api: Api, captured: Captured) -> None:
    """Operators (and benchmarks/end_to_end.py) read one line per completed
    task: seconds from create to completed, and each stage's share."""
    answer = api.post("/luma/videos", {"prompt": "timed", "async": True})
    task_id = answer.json()["task_id"]
    assert api.wait_done(task_id)["response"]["state"] == "completed"
    (line,) = [
        x for x in captured.lines() if x.get("task_id") == task_id and "completed" in x["message"]
    ]
    total, stages = line["message"].split(" s after it was created (")
    seconds = dict(part.rsplit(" ", 2)[:2] for part in stages.rstrip(")").split(", "))
    assert list(seconds) == ["queued", "enhance", "render", "publish", "record"]
    assert 0 < float(seconds["render"]) <= float(total.rsplit(" ", 1)[1])
