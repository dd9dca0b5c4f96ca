"""Callbacks: signed with Standard Webhooks, durable, retried through an
outage, and fair: a slow receiver holds its share of the dispatcher, no more."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update
from standardwebhooks import Webhook

from reelgate.media.fetch import system_resolver
from reelgate.store.callbacks import SCAN_LIMIT, Busy, CallbackStore
from reelgate.store.db import Database
from reelgate.store.schema import CallbackRow, TaskRow
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.testing import Api, InProcess, Peer, in_process, new_task, serve_in_thread


@pytest.mark.slow  # retries through an outage
def test_callbacks_are_signed_and_survive_a_receiver_outage(
    app: InProcess, api: Api, peer: Peer
) -> None:
    secret = app.cli("webhook-secret").strip()
    assert secret.startswith("whsec_")
    peer.post_status = 503  # the receiver is down
    ids = [
        api.post(
            "/luma/videos", {"prompt": f"outage {i}", "callback_url": peer.url("/down")}
        ).json()["task_id"]
        for i in range(4)
    ]
    for task_id in ids:
        api.wait_done(task_id)
    assert len(peer.wait_posts("/down", count=8)) >= 8, "retried while down"
    peer.post_status = 200  # back up
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        accepted = {
            p["json"]["task_id"] for p in peer.posts if p["path"] == "/down" and p["status"] == 200
        }
        if accepted == set(ids):
            break
        time.sleep(0.2)
    assert accepted == set(ids), "every callback arrives once the receiver is back"

    verifier = Webhook(secret)
    for post in [p for p in peer.posts if p["path"] == "/down"]:
        headers = {k.lower(): v for k, v in post["headers"].items()}
        payload = verifier.verify(post["raw"], headers)
        assert payload["task_id"] in ids
    item = api.retrieve(ids[0]).json()
    [delivery] = item["callbacks"]
    assert delivery["state"] == "delivered" and delivery["attempts"] >= 2
    assert delivery["last_status"] == 200 and delivery["url"] == peer.url("/down")


@pytest.mark.slow  # over a second: the slow tier
def test_a_forged_signature_does_not_verify(app: InProcess, api: Api, peer: Peer) -> None:
    api.post("/luma/videos", {"prompt": "forge", "callback_url": peer.url("/forge")})
    [post] = peer.wait_posts("/forge")
    headers = {k.lower(): v for k, v in post["headers"].items()}
    other = Webhook("whsec_" + "A" * 43)
    body = post["raw"].decode()
    try:
        other.verify(body, headers)
    except Exception:
        pass
    else:
        raise AssertionError("a different secret must not verify")
    tampered = body.replace('"success":true', '"success":false')
    try:
        Webhook(app.cli("webhook-secret").strip()).verify(tampered, headers)
    except Exception:
        return
    raise AssertionError("a tampered body must not verify")


# A slow receiver: takes the callback, then drips its answer and never ends it


class Stalling:
    """A loopback callback receiver that reads each request, then sends its
    answer a byte every 0.2 s without ever finishing it: a per-read timeout
    never fires. It stops dripping (and drops the connection) when closed."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []  # (Host header, arrival)
        self.closed = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.seen.append((self.headers["host"], time.monotonic()))
                self.close_connection = True
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nx-wait: ")
                    while not receiver.closed.wait(0.2):
                        self.wfile.write(b".")
                except OSError:
                    pass  # the dispatcher hung up

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        serve_in_thread(self.httpd)

    def url(self, host: str) -> str:
        """A callback URL on `host`, a name the `hooks` app resolves to this receiver."""
        return f"http://{host}:{self.port}/hook"

    def wait_seen(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            assert time.monotonic() < deadline, f"only {len(self.seen)} callbacks arrived"
            time.sleep(0.05)

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stalling() -> Iterator[Stalling]:
    receiver = Stalling()
    yield receiver
    receiver.close()


@contextmanager
def hooks(tmp_path: Path, **overrides: Any) -> Iterator[InProcess]:
    """An app of its own (these tests jam its dispatcher on purpose) in which
    every `*.test` host name resolves to loopback, so one receiver can play
    several hosts."""

    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host.endswith(".test") else system_resolver(host, port)

    settings = {"callback_concurrency": 3, "callback_max_per_host": 2, "callback_max_per_token": 2}
    with in_process(tmp_path / "data", workers=2, **{**settings, **overrides}) as app:
        app.runtime.client.resolver = resolve
        yield app


def create_with_callback(api: Api, prompt: str, callback_url: str) -> str:
    response = api.post("/luma/videos", {"prompt": prompt, "callback_url": callback_url})
    task_id: str = response.json()["task_id"]
    return task_id


def assert_arrives_soon(api: Api, peer: Peer, path: str) -> None:
    """The callback of a task created now reaches `peer` within seconds of its end."""
    task_id = create_with_callback(api, "on time", peer.url(path))
    api.wait_done(task_id)
    assert peer.wait_posts(path, timeout=5), "a stalled receiver held up another's callback"


@pytest.mark.slow  # its own app; renders four clips
def test_a_tokens_stalled_receivers_do_not_delay_another_tokens_callbacks(
    tmp_path: Path, peer: Peer, stalling: Stalling
) -> None:
    with hooks(tmp_path, callback_timeout=30) as app:
        stalled = Api(app, app.create_token("stalled"))
        for i in range(3):  # three hosts, so only the token's share limits them
            create_with_callback(stalled, f"stall {i}", stalling.url(f"hook-{i}.test"))
        stalling.wait_seen(2)
        assert_arrives_soon(Api(app, app.create_token("patient")), peer, "/patient")
        assert len(stalling.seen) == 2, "one token never holds more than its share"


@pytest.mark.slow  # its own app; renders four clips
def test_a_stalled_host_does_not_delay_callbacks_to_other_hosts(
    tmp_path: Path, peer: Peer, stalling: Stalling
) -> None:
    with hooks(tmp_path, callback_timeout=30) as app:
        for i in range(3):  # three tokens, so only the host's share limits them
            api = Api(app, app.create_token(f"tenant {i}"))
            create_with_callback(api, f"stall {i}", stalling.url("hook.test"))
        stalling.wait_seen(2)
        assert_arrives_soon(Api(app, app.create_token("patient")), peer, "/patient")
        assert len(stalling.seen) == 2, "one host never holds more than its share"


@pytest.mark.slow  # waits out the delivery deadline
def test_a_dripping_receiver_is_cut_off_at_the_deadline_and_retried(
    tmp_path: Path, stalling: Stalling
) -> None:
    with hooks(tmp_path, callback_timeout=1.5) as app:
        api = Api(app, app.create_token("dripped"))
        task_id = create_with_callback(api, "drip", stalling.url("hook.test"))
        stalling.wait_seen(2, timeout=30)
        (_, first), (_, retry) = stalling.seen[:2]
        assert 1.4 < retry - first < 6, "cut off at 1.5 s in all, then retried"
        [delivery] = api.retrieve(task_id).json()["callbacks"]
        assert delivery["state"] == "pending" and delivery["attempts"] >= 1
        assert delivery["last_error"] == "the receiver did not answer within 1.5 s"


@pytest.mark.slow  # writes a backlog longer than a claim scans
def test_a_claim_passes_over_a_token_at_its_share_without_stranding_it(db: Database) -> None:
    """However many deliveries a token at its share has due (more than one
    claim would ever scan), another token's are found, and the passed-over
    ones are not leased: they go out as soon as there is room."""
    tokens, tasks, outbox = TokenStore(db), TaskStore(db), CallbackStore(db)
    busy, _ = tokens.create("busy")
    calm, _ = tokens.create("calm")
    calm_task = new_task(tasks, calm.id)
    backlog = SCAN_LIMIT + 100
    now = time.time()
    template = new_task(tasks, busy.id)
    with db.write() as s:
        row = s.get(TaskRow, template.id)
        columns = {c.name: getattr(row, c.name) for c in TaskRow.__table__.columns}
        s.execute(
            insert(TaskRow),
            [{**columns, "id": f"busy-{i}", "video_id": f"v-{i}"} for i in range(backlog)],
        )
        for i in range(backlog):  # one each, all older than the calm one
            s.add(outbox_row(f"busy-{i}", due=now - 5000 + i))
        s.add(outbox_row(calm_task.id, due=now - 1))
    asked: list[str | None] = []

    def admit(delivery: Any, owner: str | None) -> bool:
        asked.append(owner)
        return owner == calm.id

    [claimed] = outbox.claim_due(
        limit=5, lease_seconds=60, admit=admit, busy=Busy(owners=frozenset({busy.id}))
    )
    assert claimed.task_id == calm_task.id and asked == [calm.id]
    first = outbox.claim_due(limit=SCAN_LIMIT, lease_seconds=60)
    rest = outbox.claim_due(limit=SCAN_LIMIT, lease_seconds=60)
    assert len(first) + len(rest) == backlog, "none was leased"


def test_a_tasks_later_callback_waits_for_its_earlier_one(db: Database) -> None:
    """A "completed" due now does not overtake a "dreaming" waiting for its retry."""
    tokens, tasks, outbox = TokenStore(db), TaskStore(db), CallbackStore(db)
    owner, _ = tokens.create("ordered")
    task = new_task(tasks, owner.id)
    now = time.time()
    with db.write() as s:
        s.add(outbox_row(task.id, due=now + 30, created=now - 10))  # retrying later
        s.add(outbox_row(task.id, due=now - 1, created=now - 5))
    assert outbox.claim_due(limit=5, lease_seconds=60) == []
    with db.write() as s:
        s.execute(
            update(CallbackRow).where(CallbackRow.created_at < now - 8).values(state="delivered")
        )
    [later] = outbox.claim_due(limit=5, lease_seconds=60)
    assert later.created_at == pytest.approx(now - 5)


def outbox_row(task_id: str, due: float, created: float | None = None) -> CallbackRow:
    return CallbackRow(
        id=str(uuid.uuid4()),
        task_id=task_id,
        url="http://hook.test/x",
        host="hook.test",
        dialect="acedata",
        event="completed",
        state="pending",
        attempts=0,
        next_attempt_at=due,
        created_at=due if created is None else created,
    )


@pytest.mark.slow  # its own app; one clip and a slow receiver
def test_a_tasks_callbacks_go_out_one_at_a_time_in_order(tmp_path: Path) -> None:
    """Deliveries run concurrently, but never two of one task: a slow answer
    to "dreaming" holds back "completed" rather than letting it overtake."""
    calls: list[tuple[str, float, float]] = []  # (state, arrived, answered)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            arrived = time.monotonic()
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            time.sleep(3.0 if body["state"] == "dreaming" else 0.1)  # outlasts the render
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
            calls.append((body["state"], arrived, time.monotonic()))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    serve_in_thread(httpd)
    try:
        with hooks(tmp_path) as app:
            api = Api(app, app.create_token("ordered"))
            created = api.client.post(
                "/dream-machine/v1/generations",
                json={
                    "prompt": "in order",
                    "callback_url": f"http://127.0.0.1:{httpd.server_address[1]}/hook",
                },
            ).json()
            api.wait_done(created["id"])
            deadline = time.monotonic() + 20
            while len(calls) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert [state for state, _, _ in calls] == ["dreaming", "completed"]
        (_, _, first_answered), (_, second_arrived, _) = calls
        assert second_arrived >= first_answered - 0.01
    finally:
        httpd.shutdown()
        httpd.server_close()
