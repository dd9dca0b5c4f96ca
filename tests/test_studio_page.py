"""The studio page and the models endpoint, in process (the browser tests
are in test_studio.py): the page is HTML under a strict CSP, its files are
served, and `GET /reelgate/v1/models` lists what the preview engine can do."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reelgate.api.studio.routes import asset_origins, content_security_policy
from reelgate.config import Settings
from reelgate.testing import InProcess, in_process


@pytest.mark.parametrize("path", ["/", "/studio"])
def test_the_page_is_html_under_a_strict_policy(http: httpx.Client, path: str) -> None:
    page = http.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe" not in policy and "connect-src 'self'" in policy
    assert "media-src 'self' blob: http://testserver" in policy  # where asset links point
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert 'id="token"' in page.text and "<script>" not in page.text  # no inline script
    assert 'for="prompt">Prompt<' in page.text and ">Generate</button>" in page.text


def test_the_page_files_are_served(http: httpx.Client) -> None:
    page = http.get("/").text
    for name, kind in (("studio.js", "javascript"), ("studio.css", "text/css")):
        assert f"/studio/static/{name}?v=" in page
        answer = http.get(f"/studio/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert http.get("/studio/static/nothing.js").status_code == 404


def test_models_lists_the_engines_capabilities(app: InProcess, http: httpx.Client) -> None:
    refused = http.get("/reelgate/v1/models")
    assert refused.status_code == 401 and "bearer token" in refused.json()["detail"]

    with app.http(app.create_token("models")) as client:
        answer = client.get("/reelgate/v1/models").json()
    models = {m["model"]: m for m in answer["models"]}
    assert answer["default_model"] == "ray-2"
    assert {"ray-2", "ray-flash-2", "ray-1-6", "photon-1"} <= set(models)
    ray = models["ray-2"]
    assert ray["kind"] == "video" and ray["engine"] == "preview"
    assert ray["resolutions"] == ["540p", "720p", "1080p"]  # no 4k in the preview
    assert ray["durations"] == ["5s", "9s"] and "9:16" in ray["aspect_ratios"]
    assert {"start images", "end images", "extending a generation", "loops"} <= set(ray["inputs"])
    assert "video" in ray["generation_types"] and "pan_left" in ray["concepts"]
    assert models["photon-1"]["kind"] == "image"


def test_models_leaves_out_engines_not_enabled(tmp_path: Path) -> None:
    routes = {"ray-flash-2": "ltx", "my-model": "preview"}  # ltx has no weights here
    with in_process(tmp_path / "data", workers=0, model_engines=routes) as app:
        answer = app.http(app.create_token("models")).get("/reelgate/v1/models").json()
    names = [m["model"] for m in answer["models"]]
    assert "ray-flash-2" not in names
    assert {"ray-2", "my-model"} <= set(names)


def test_the_policy_names_where_asset_links_point() -> None:
    settings = Settings(
        public_base_url="https://video.example.com/base/",
        s3_public_base_url="https://user:secret@cdn.example.com:8443/bucket",
        s3_endpoint_url="not a url",
    )
    origins = asset_origins(settings, "https://bucket.s3.eu-west-1.amazonaws.com/k?X-Amz=1")
    assert origins == [
        "https://video.example.com",
        "https://cdn.example.com:8443",  # never the credentials
        "https://bucket.s3.eu-west-1.amazonaws.com",
    ]
    policy = content_security_policy(origins)
    assert "img-src 'self' data: blob: https://video.example.com https://cdn" in policy
