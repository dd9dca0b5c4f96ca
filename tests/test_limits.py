"""Per-token rate limits and caps, answered with 429, Retry-After and each
dialect's error shape (each on its own app, in this process)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from reelgate.testing import Api, InProcess, in_process, png_bytes, textured_image


def test_rate_limit_and_active_task_cap(tmp_path) -> None:
    with in_process(
        tmp_path / "data", workers=0, rate_limit_per_minute=3, max_active_tasks=0
    ) as app:
        api = Api(app, app.create_token("busy"))
        other = Api(app, app.create_token("calm"))
        for i in range(3):
            assert api.post("/luma/videos", {"prompt": f"ok {i}", "async": True}).status_code == 200
        limited = api.post("/luma/videos", {"prompt": "one too many", "async": True})
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "too_many_requests"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        official = api.client.post(
            "/dream-machine/v1/generations", json={"model": "ray-2", "prompt": "also limited"}
        )
        assert official.status_code == 429 and "detail" in official.json()
        assert "retry-after" in official.headers
        gateway = api.client.post("/luma/generations", json={"user_prompt": "limited"})
        assert gateway.status_code == 429 and gateway.json()["code"] == 429
        assert (
            other.post("/luma/videos", {"prompt": "another token", "async": True}).status_code
            == 200
        ), "limits are per token"

    with in_process(
        tmp_path / "data2", workers=0, rate_limit_per_minute=0, max_active_tasks=2
    ) as app:
        api = Api(app, app.create_token("queue"))
        for i in range(2):
            assert api.post("/luma/videos", {"prompt": f"q {i}", "async": True}).status_code == 200
        capped = api.post("/luma/videos", {"prompt": "third", "async": True})
        assert capped.status_code == 429 and capped.headers["retry-after"] == "5"
        assert "queued or running" in capped.json()["error"]["message"]
        assert app.http().get("/healthz").status_code == 200


def test_request_bodies_are_capped(tmp_path) -> None:
    with in_process(tmp_path / "data", workers=0, max_body_bytes=2000) as app:
        api = Api(app, app.create_token("big"))
        big = {"prompt": "x" * 3000}
        declared = api.post("/luma/videos", big)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"

        def chunks():
            yield b'{"user_prompt": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        chunked = api.client.post(
            "/luma/generations", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413 and chunked.json()["code"] == 413
        official = api.client.post(
            "/dream-machine/v1/generations", json={"model": "ray-2", "prompt": "z" * 3000}
        )
        assert official.status_code == 413 and "detail" in official.json()
        assert api.post("/luma/videos", {"prompt": "small", "async": True}).status_code == 200


def _concurrently(count: int, call: Callable[[int], int]) -> list[int]:
    with ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(call, range(count)))


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_limits_hold_under_concurrent_creates(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, Any] = {}
    if backend == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    with in_process(
        tmp_path / "data", workers=0, rate_limit_per_minute=60, max_active_tasks=16, **overrides
    ) as app:
        fresh = Api(app, app.create_token(f"fresh-{backend}"))
        answers = _concurrently(
            100,
            lambda i: fresh.post("/luma/videos", {"prompt": f"p{i}", "async": True}).status_code,
        )
        assert answers.count(200) == 16 and answers.count(429) == 84
        _, total = app.runtime.service.list(fresh_owner(app, fresh), 100, 0)
        assert total == 16

        # The per-minute limit, with the active cap out of the way.
        app.runtime.service.limits.max_active = 0
        burst = Api(app, app.create_token(f"burst-{backend}"))
        answers = _concurrently(
            200,
            lambda i: burst.post("/luma/videos", {"prompt": f"b{i}", "async": True}).status_code,
        )
        assert answers.count(200) == 60 and answers.count(429) == 140


def fresh_owner(app: InProcess, api: Api) -> str:
    info = app.runtime.tokens.authenticate(api.token)
    assert info is not None
    return info.id


@pytest.mark.slow
def test_uploads_count_against_the_rate_limit_and_a_quota_and_expire(tmp_path: Path) -> None:
    image = png_bytes(textured_image(400, 300))
    uri = "data:image/png;base64," + base64.b64encode(image).decode()
    with in_process(
        tmp_path / "data",
        workers=0,
        rate_limit_per_minute=4,
        upload_quota_bytes=len(image) * 2 + 10,
        upload_lifetime_seconds=2,
    ) as app:
        api = Api(app, app.create_token("uploader"))
        links = []
        for _ in range(2):
            answer = api.post("/luma/generations/file_upload", {"url": uri})
            assert answer.status_code == 200, answer.text
            links.append(answer.json()["public_url"])
        over_quota = api.post("/luma/generations/file_upload", {"url": uri})
        assert over_quota.status_code == 413 and "quota" in over_quota.json()["message"]
        # Only stored uploads count toward the rate limit.
        assert api.post("/luma/videos", {"prompt": "one", "async": True}).status_code == 200
        assert api.post("/luma/videos", {"prompt": "two", "async": True}).status_code == 200
        limited = api.post("/luma/videos", {"prompt": "three", "async": True})
        assert limited.status_code == 429, "two uploads and two creates make four this minute"
        http = app.http()
        assert http.get(links[0]).content == image

        time.sleep(2.2)
        assert app.runtime.uploads.sweep() == 2
        for link in links:  # the link expired with the upload, and the file is gone
            assert http.get(link).status_code == 403
            key = app.runtime.storage.key_in_path(link)
            assert key and not app.runtime.storage.exists(key)
        other = Api(app, app.create_token("other"))
        assert other.post("/luma/generations/file_upload", {"url": uri}).status_code == 200
