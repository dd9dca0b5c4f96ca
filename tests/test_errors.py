"""Errors the framework raises before a route runs (a method the path does
not take, a body over the cap) read like every other error of the dialect:
its shape, its code, the real HTTP status."""

from __future__ import annotations

from pathlib import Path

from reelgate.testing import Api, in_process


def test_a_wrong_method_is_a_405_in_each_dialects_shape(api: Api) -> None:
    acedata = api.client.get("/luma/videos")
    assert acedata.status_code == 405 and "POST" in acedata.headers["allow"]
    body = acedata.json()
    assert body["success"] is False and body["trace_id"]
    assert body["error"]["code"] == "method_not_allowed"
    assert "GET" in body["error"]["message"] and "POST" in body["error"]["message"]

    generations = api.client.put("/luma/generations")
    assert generations.status_code == 405 and "POST" in generations.headers["allow"]
    body = generations.json()
    assert body["code"] == 405 and body["data"] is None and body["request_id"]
    assert "PUT" in body["message"]

    official = api.client.put("/dream-machine/v1/ping")
    assert official.status_code == 405 and "GET" in official.headers["allow"]
    assert set(official.json()) == {"detail"} and "PUT" in official.json()["detail"]


def test_a_body_over_the_cap_is_a_413_in_each_dialects_shape(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", workers=0, max_body_bytes=2000) as app:
        api = Api(app, app.create_token("big"))
        big = "x" * 3000

        acedata = api.post("/luma/videos", {"prompt": big})
        assert acedata.status_code == 413
        body = acedata.json()
        assert body["success"] is False and body["error"]["code"] == "payload_too_large"
        assert "2000 bytes" in body["error"]["message"]

        generations = api.post("/luma/generations", {"user_prompt": big})
        assert generations.status_code == 413
        body = generations.json()
        assert body["code"] == 413 and body["data"] is None and "2000 bytes" in body["message"]

        official = api.post("/dream-machine/v1/generations", {"model": "ray-2", "prompt": big})
        assert official.status_code == 413
        assert set(official.json()) == {"detail"} and "2000 bytes" in official.json()["detail"]
