"""When the object store is down, nothing hangs and nothing leaks: API
requests that need it answer 503 in the dialect's shape, a task's attempt
ends as `unavailable` with a message that names the operation only (never
the endpoint, the bucket or the credentials)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from reelgate.testing import Api, free_port, in_process, png_bytes, textured_image

pytestmark = pytest.mark.slow


@pytest.fixture
def down(monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials for a store at a port where nothing listens."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOUTAGE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "outage-secret-key")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return f"http://127.0.0.1:{free_port()}"


def test_a_store_outage_is_a_clear_503_and_a_clean_failure(tmp_path: Path, down: str) -> None:
    with in_process(
        tmp_path / "data",
        workers=1,
        storage_url="s3://reelgate/outage",
        s3_endpoint_url=down,
        s3_timeout=5,
        max_attempts=1,
    ) as app:
        api = Api(app, app.create_token("outage"))
        image = (
            "data:image/png;base64," + base64.b64encode(png_bytes(textured_image(64, 48))).decode()
        )
        started = time.monotonic()
        official = api.post(
            "/dream-machine/v1/generations",
            {"prompt": "a still", "keyframes": {"frame0": {"type": "image", "url": image}}},
        )
        assert official.status_code == 503, official.text
        assert "object store" in official.json()["detail"]
        acedata = api.post("/luma/videos", {"prompt": "a still", "start_image_url": image})
        assert acedata.status_code == 503
        assert acedata.json()["error"]["code"] == "service_unavailable"
        upload = api.post("/luma/generations/file_upload", {"url": image})
        assert upload.status_code == 503 and upload.json()["code"] == 503
        assert time.monotonic() - started < 30, "each answer comes within the store's timeout"

        proxied = app.http().get("/assets/0b5f0a4e-1111-4222-8333-944455556666/run/video.mp4")
        assert proxied.status_code == 503

        # a task without inline inputs is queued, renders, and cannot be published
        created = api.post("/dream-machine/v1/generations", {"prompt": "no store"})
        assert created.status_code == 201
        api.wait_done(created.json()["id"], timeout=120)
        generation = api.client.get(f"/dream-machine/v1/generations/{created.json()['id']}")
        assert generation.json()["state"] == "failed"
        reason = generation.json()["failure_reason"] or ""
        assert "object store could not" in reason
        for leak in ("127.0.0.1", "reelgate/outage", "AKIDOUTAGE", "outage-secret-key"):
            assert leak not in reason and leak not in official.text
