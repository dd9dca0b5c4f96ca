"""The guarded client against real sockets on loopback: what it refuses,
what it allows, and that it connects to the address it checked."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reelgate.config import Settings
from reelgate.media import fetch as fetch_module
from reelgate.media.fetch import FetchError, GuardedClient
from reelgate.testing import Api, Peer, in_process, png_bytes, serve_in_thread, textured_image

BLOCKED = [
    "http://127.0.0.1:{port}/x",
    "http://localhost:{port}/x",
    "http://[::1]:{port}/x",
    "http://10.1.2.3/x",
    "http://172.16.0.1/x",
    "http://192.168.1.1/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://100.64.0.1/x",
    "http://0.0.0.0:{port}/x",
    "http://224.0.0.1/x",
    "http://240.0.0.1/x",
    "http://[::ffff:127.0.0.1]:{port}/x",
    "http://2130706433:{port}/x",
    "http://0x7f000001:{port}/x",
    "file:///etc/passwd",
    "ftp://example.com/x",
    "gopher://127.0.0.1/x",
    "http:///nohost",
]


def client(allow_private: bool, **kw) -> GuardedClient:
    return GuardedClient(Settings(allow_private_networks=allow_private, **kw).fetch_limits)


@pytest.mark.parametrize("template", BLOCKED)
def test_private_targets_are_refused_by_default(template: str, peer: Peer) -> None:
    peer.serve("/x", b"secret", "text/plain")
    with pytest.raises(FetchError):
        client(False).fetch(template.format(port=peer.port))
    assert not peer.gets, "nothing reached the private server"


def test_private_targets_allowed_by_setting_but_never_metadata(peer: Peer) -> None:
    peer.serve("/x", b"hello", "text/plain")
    guard = client(True)
    assert guard.fetch(peer.url("/x")) == b"hello"
    assert guard.fetch(f"http://localhost:{peer.port}/x") == b"hello"
    with pytest.raises(FetchError, match="metadata"):
        guard.fetch("http://169.254.169.254/latest/meta-data/")


@pytest.fixture
def loopback_one_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend 127.0.0.1 is a public server, so a redirect from it to another
    loopback address plays a public host redirecting to a private one."""
    real = fetch_module.is_public_address
    monkeypatch.setattr(fetch_module, "is_public_address", lambda a: a == "127.0.0.1" or real(a))


def test_redirects_are_checked_again(peer: Peer, loopback_one_is_public) -> None:
    peer.serve("/inside", b"private data", "text/plain")
    peer.redirects["/go"] = f"http://127.0.0.2:{peer.port}/inside"
    with pytest.raises(FetchError, match="non-public"):
        client(False).fetch(peer.url("/go"))
    assert [g["path"] for g in peer.gets] == ["/go"]
    peer.redirects["/loop"] = "/loop"
    with pytest.raises(FetchError, match="redirected more than"):
        client(False, fetch_max_redirects=3).fetch(peer.url("/loop"))


def test_dns_rebinding_cannot_switch_the_address(peer: Peer, loopback_one_is_public) -> None:
    answers = iter([["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    peer.serve("/img", b"public bytes", "image/png")
    guard = GuardedClient(Settings(allow_private_networks=False).fetch_limits, resolver=rebinding)
    assert guard.fetch(f"http://rebind.example:{peer.port}/img") == b"public bytes"
    assert calls == ["rebind.example"], "resolved once, then connected to that address"
    headers = {k.lower(): v for k, v in peer.gets[-1]["headers"].items()}
    assert headers["host"] == f"rebind.example:{peer.port}"
    with pytest.raises(FetchError, match="non-public"):
        guard.fetch(f"http://rebind.example:{peer.port}/img")  # the next answer is private


def test_size_caps(peer: Peer) -> None:
    peer.serve("/big", b"x" * 5000, "application/octet-stream")
    guard = client(True, fetch_max_bytes=1000)
    with pytest.raises(FetchError, match="larger than"):
        guard.fetch(peer.url("/big"))
    with pytest.raises(FetchError, match="larger than"):
        guard.fetch("data:text/plain;base64," + "QUFB" * 1000)
    with pytest.raises(FetchError, match="Base64"):
        guard.fetch("data:image/png;base64,@@@@")
    assert guard.fetch("data:text/plain;base64,aGVsbG8=") == b"hello"
    with pytest.raises(FetchError, match="HTTP 404"):
        guard.fetch(peer.url("/missing"))


# A server that drips: every read gets a byte in time, the whole never comes


def _answer(status: str, body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in (f"HTTP/1.1 {status}", *headers))
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


IMAGE = png_bytes(textured_image(64, 48))
DRIPS: dict[str, tuple[float, bytes, int]] = {
    # path: (pause before answering, the raw answer, bytes of it sent at once)
    "/slow-headers": (0, _answer("200 OK", b"ok", "x-pad: " + "." * 60), 0),
    "/slow-body": (0, _answer("200 OK", IMAGE[:80]), len(_answer("200 OK", b""))),
    "/slow-image": (0, _answer("200 OK", IMAGE), len(_answer("200 OK", IMAGE)) - 100),
    **{
        f"/hop/{n}": (0.6, _answer("302 Found", b"", f"location: /hop/{n - 1}"), 1 << 20)
        for n in range(1, 4)
    },
    "/hop/0": (0.6, _answer("200 OK", b"arrived"), 1 << 20),
}


class Dripping:
    """A loopback server that answers `DRIPS`, the rest a byte every 0.1 s
    (so anything dripped takes seconds), as a slow or hostile host does."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                pause, raw, at_once = DRIPS[self.path]
                self.close_connection = True
                try:
                    time.sleep(pause)
                    self.wfile.write(raw[:at_once])
                    for i in range(at_once, len(raw)):
                        if server.closed.wait(0.1):
                            return
                        self.wfile.write(raw[i : i + 1])
                except OSError:
                    pass  # the client hung up

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        serve_in_thread(self.httpd)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def dripping() -> Iterator[Dripping]:
    server = Dripping()
    yield server
    server.close()


@pytest.mark.slow  # over a second: the slow tier
@pytest.mark.parametrize("path", ["/slow-headers", "/slow-body", "/hop/3"])
def test_a_fetch_ends_at_its_deadline_however_slowly_the_bytes_come(
    dripping: Dripping, path: str
) -> None:
    """Headers or body a byte at a time, or redirects each well within the
    limit: the time limit is for the whole fetch, not for each read."""
    guard = client(True, fetch_timeout=1.5)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"took longer than 1\.5 s"):
        guard.fetch(dripping.url(path))
    assert 1.4 < time.monotonic() - started < 4


@pytest.mark.slow  # over a second: the slow tier
def test_a_fetch_within_its_deadline_follows_redirects(dripping: Dripping) -> None:
    assert client(True, fetch_timeout=5).fetch(dripping.url("/hop/1")) == b"arrived"


@pytest.mark.slow  # its own app; waits out the deadline
def test_a_dripping_start_image_fails_its_task_at_the_deadline(
    tmp_path: Path, dripping: Dripping
) -> None:
    with in_process(tmp_path / "data", workers=1, fetch_timeout=1.5) as app:
        api = Api(app, app.create_token("dripped"))
        started = time.monotonic()
        response = api.post(
            "/luma/videos", {"prompt": "x", "start_image_url": dripping.url("/slow-image")}
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 400
    assert "took longer than 1.5 s" in response.json()["error"]["message"]
    assert elapsed < 10, "the task failed at the deadline instead of running on"
