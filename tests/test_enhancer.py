"""Prompt enhancement by a language model behind an OpenAI-compatible
chat-completions endpoint (a server on 127.0.0.1 that speaks that contract:
its status codes, error bodies, slow answers and garbage), in the worker:
the create answers at once, the enhanced prompt is kept once and reused by
retries, and every failure falls back to the built-in enhancer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reelgate.core.enhance import DetailEnhancer, OpenAIEnhancer
from reelgate.domain.errors import Unavailable
from reelgate.domain.models import MAX_PROMPT_CHARS, State
from reelgate.testing import in_process, new_task, serve_in_thread
from reelgate.worker.inputs import InputResolver
from reelgate.worker.runner import Worker
from tests.test_engine_contract import Scripted, world  # noqa: F401  (a fixture)

GOOD = "A red fox trots through fresh snow at dawn, low sun, slow tracking shot, 35mm lens."


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    """A dict (sent as JSON), bytes (sent as they are), or None: a completion of `content`."""
    content: Any = GOOD
    delay: float = 0.0


@dataclass
class ChatServer:
    """Answers `POST /v1/chat/completions` from a script, then with `GOOD`."""

    replies: list[Reply] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self.lock:
            self.seen.append(body)
            self.headers.append(headers)
            return self.replies.pop(0) if self.replies else Reply()


def _completion(content: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    }


def _error(status: int, message: str, kind: str) -> Reply:
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})


@pytest.fixture
def chat() -> Iterator[tuple[ChatServer, str]]:
    script = ChatServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/v1/chat/completions":
                reply = _error(404, f"Invalid URL (POST {self.path})", "invalid_request_error")
            else:
                reply = script.next(body, {k.lower(): v for k, v in self.headers.items()})
            time.sleep(reply.delay)
            payload = reply.body if reply.body is not None else _completion(reply.content)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    serve_in_thread(server)
    yield script, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def enhancer(url: str, timeout: float = 2.0) -> OpenAIEnhancer:
    return OpenAIEnhancer(url, "tiny", "sk-test", timeout=timeout, fallback=DetailEnhancer())


def test_the_model_writes_the_prompt(chat: tuple[ChatServer, str]) -> None:
    script, url = chat
    assert enhancer(url).enhance("a fox in the snow") == GOOD
    body, headers = script.seen[0], script.headers[0]
    assert body["model"] == "tiny" and body["messages"][-1] == {
        "role": "user",
        "content": "a fox in the snow",
    }
    system = body["messages"][0]["content"]
    assert body["messages"][0]["role"] == "system"
    assert "language" in system and "text overlays" in system and "brand" in system
    assert headers["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(
    ("replies", "asked"),
    [
        ([_error(500, "The server had an error", "server_error")], 2),
        ([_error(429, "Rate limit reached", "requests")], 2),
        ([Reply(content="  \n ")], 2),
        ([Reply(body=b"<html>502 Bad Gateway</html>")], 2),
    ],
    ids=["500", "429", "empty", "garbage"],
)
def test_one_failure_is_retried_once(
    chat: tuple[ChatServer, str], replies: list[Reply], asked: int
) -> None:
    script, url = chat
    script.replies = replies
    assert enhancer(url).enhance("a fox in the snow") == GOOD
    assert len(script.seen) == asked


@pytest.mark.parametrize(
    "reply",
    [
        _error(401, "Incorrect API key provided", "invalid_request_error"),
        _error(503, "Service unavailable", "server_error"),
        Reply(content="I'm sorry, but I can't help with that request."),
        Reply(content="x" * (MAX_PROMPT_CHARS + 1)),
        Reply(content=None),
        Reply(body={"choices": []}),
        Reply(body=b"not json"),
    ],
    ids=["401", "503", "refusal", "too long", "no text", "no choices", "not json"],
)
def test_nonsense_twice_falls_back_to_the_built_in_enhancer(
    chat: tuple[ChatServer, str], reply: Reply
) -> None:
    script, url = chat
    script.replies = [reply, reply]
    out = enhancer(url).enhance("a fox in the snow")
    assert out == DetailEnhancer().enhance("a fox in the snow") and len(script.seen) == 2


@pytest.mark.slow  # over a second: the slow tier
def test_a_slow_endpoint_falls_back_within_its_timeouts(chat: tuple[ChatServer, str]) -> None:
    script, url = chat
    script.replies = [Reply(delay=3.0), Reply(delay=3.0)]
    started = time.monotonic()
    out = enhancer(url, timeout=0.5).enhance("a fox in the snow")
    assert out == DetailEnhancer().enhance("a fox in the snow")
    assert time.monotonic() - started < 2.5, "two tries of 0.5 s, not two of 3 s"


def test_an_unreachable_endpoint_falls_back() -> None:
    out = enhancer("http://127.0.0.1:9/v1", timeout=0.5).enhance("a fox")
    assert out == DetailEnhancer().enhance("a fox")


def test_the_worker_enhances_once_and_retries_reuse_it(
    world: Any,  # noqa: F811  (the fixture imported above)
    chat: tuple[ChatServer, str],
) -> None:
    settings, db, owner, tasks, storage, client = world
    from reelgate.store.follow import FollowStore
    from reelgate.store.uploads import UploadStore

    script, url = chat
    engine = Scripted([Unavailable("the GPU is busy", retryable=True)])
    worker = Worker(
        settings,
        tasks,
        storage,
        {"scripted": engine},
        InputResolver(tasks, storage, client, settings, UploadStore(db)),
        FollowStore(db),
        enhancer=enhancer(url),
    )
    task = new_task(tasks, owner, engine="scripted", model="scripted-1", enhance=True)
    for _ in range(5):
        if not worker.run_once():
            break
    done = tasks.get(task.id)
    assert done.state is State.COMPLETED and done.attempts == 2
    assert done.enhanced_prompt == GOOD and done.prompt == task.prompt
    assert len(script.seen) == 1, "the second attempt reused the kept prompt"


@pytest.mark.slow
def test_a_create_answers_at_once_and_shows_the_enhanced_prompt(
    tmp_path: Path, chat: tuple[ChatServer, str]
) -> None:
    script, url = chat
    script.replies = [Reply(delay=1.5)]
    with in_process(
        tmp_path / "data",
        workers=1,
        enhancer="openai",
        enhancer_base_url=url,
        enhancer_model="tiny",
        enhancer_timeout=10,
    ) as app:
        http = app.http(app.create_token("enhance"))
        started = time.monotonic()
        created = http.post(
            "/luma/generations",
            json={"user_prompt": "a fox", "expand_prompt": True, "resolution": "540p"},
        )
        assert created.status_code == 201, created.text
        assert time.monotonic() - started < 1.0, "the create does not wait for the model"
        task_id = created.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = http.get(f"/luma/generations/{task_id}").json()
            if got["state"] in ("completed", "failed"):
                break
            time.sleep(0.2)
        assert got["state"] == "completed" and got["enhanced_prompt"] == GOOD
        assert got["request"]["prompt"] == "a fox"
        acedata = http.post("/luma/tasks", json={"action": "retrieve", "id": task_id}).json()
        assert acedata["enhanced_prompt"] == GOOD
