"""Callbacks: signed with Standard Webhooks, durable, retried through an outage."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook

from reelgate.testing import Api, InProcess, Peer


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
