"""Per-token rate limits and caps, answered with 429, Retry-After and each
dialect's error shape (each on its own app, in this process)."""

from __future__ import annotations

from reelgate.testing import Api, in_process


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
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "bad_request"

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
