"""The guarded client against real sockets on loopback: what it refuses,
what it allows, and that it connects to the address it checked."""

from __future__ import annotations

import pytest

from reelgate.config import Settings
from reelgate.media import fetch as fetch_module
from reelgate.media.fetch import FetchError, GuardedClient
from reelgate.testing import Peer

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
