"""The official dialect, driven by the official `lumaai` SDK (sync and async)
against the app with its workers in this process."""

from __future__ import annotations

import asyncio

import httpx
import lumaai
import pytest
from lumaai import LumaAI

from reelgate.domain.models import frame_count, frame_size
from reelgate.media.images import cover_fit
from reelgate.testing import (
    Api,
    InProcess,
    Peer,
    decode_mp4,
    luma_async_sdk,
    luma_sdk,
    png_bytes,
    psnr,
    textured_image,
    wait_generation,
)

FRAMES = frame_count("5s")


@pytest.fixture(scope="module")
def luma(app: InProcess) -> LumaAI:
    return luma_sdk(app, app.create_token("sdk"))


def frames_of(http: httpx.Client, url: str):
    return decode_mp4(http.get(url, timeout=30).content).frames


@pytest.mark.slow
def test_text_generation_with_callbacks_on_every_state_change(
    luma: LumaAI, http: httpx.Client, peer: Peer
) -> None:
    created = luma.generations.create(
        model="ray-2",
        prompt="a lighthouse in a storm",
        aspect_ratio="9:16",
        callback_url=peer.url("/luma"),
    )
    assert created.state == "queued" and created.generation_type == "video"
    assert created.request.prompt == "a lighthouse in a storm"
    done = wait_generation(luma, created.id)
    assert done.state == "completed" and done.failure_reason is None
    frames = frames_of(http, done.assets.video)
    assert len(frames) == FRAMES
    assert frames[0].shape[:2][::-1] == frame_size("9:16", "540p")
    assert http.get(done.assets.image).headers["content-type"] == "image/jpeg"
    posts = peer.wait_posts("/luma", count=2)
    assert [p["json"]["state"] for p in posts] == ["dreaming", "completed"]
    assert all(p["json"]["id"] == created.id for p in posts)
    assert posts[-1]["json"]["assets"]["video"] == done.assets.video


@pytest.mark.slow
def test_image_keyframes(luma: LumaAI, http: httpx.Client, peer: Peer) -> None:
    start, end = textured_image(640, 480, seed=21), textured_image(640, 480, seed=22)
    g = luma.generations.create(
        model="ray-flash-2",
        prompt="morph between two pictures",
        aspect_ratio="4:3",
        keyframes={
            "frame0": {"type": "image", "url": peer.serve("/a.png", png_bytes(start), "image/png")},
            "frame1": {"type": "image", "url": peer.serve("/b.png", png_bytes(end), "image/png")},
        },
    )
    frames = frames_of(http, wait_generation(luma, g.id).assets.video)
    w, h = frame_size("4:3", "540p")
    assert psnr(frames[0], cover_fit(start, w, h)) >= 30
    assert psnr(frames[-1], cover_fit(end, w, h)) >= 30


@pytest.mark.slow
def test_generation_keyframes_extend_reverse_and_interpolate(
    luma: LumaAI, http: httpx.Client
) -> None:
    a = wait_generation(luma, luma.generations.create(model="ray-2", prompt="clip a one").id)
    b = wait_generation(luma, luma.generations.create(model="ray-2", prompt="clip b two").id)
    a_frames, b_frames = frames_of(http, a.assets.video), frames_of(http, b.assets.video)

    ext = luma.generations.create(
        model="ray-2", prompt="and then", keyframes={"frame0": {"type": "generation", "id": a.id}}
    )
    ext_frames = frames_of(http, wait_generation(luma, ext.id).assets.video)
    assert len(ext_frames) == len(a_frames) + FRAMES
    assert psnr(ext_frames[0], a_frames[0]) >= 30

    rev = luma.generations.create(
        model="ray-2",
        prompt="what came before",
        keyframes={"frame1": {"type": "generation", "id": b.id}},
    )
    rev_frames = frames_of(http, wait_generation(luma, rev.id).assets.video)
    assert len(rev_frames) == FRAMES + len(b_frames)
    assert psnr(rev_frames[-1], b_frames[-1]) >= 30
    assert psnr(rev_frames[FRAMES - 1], b_frames[0]) >= 28, "the new clip leads into b"

    bridge = luma.generations.create(
        model="ray-2",
        prompt="from a to b",
        keyframes={
            "frame0": {"type": "generation", "id": a.id},
            "frame1": {"type": "generation", "id": b.id},
        },
    )
    bridge_frames = frames_of(http, wait_generation(luma, bridge.id).assets.video)
    assert len(bridge_frames) == FRAMES
    assert psnr(bridge_frames[0], a_frames[-1]) >= 25
    assert psnr(bridge_frames[-1], b_frames[0]) >= 28


@pytest.mark.slow
def test_list_delete_ping_and_credits(app: InProcess, http: httpx.Client, peer: Peer) -> None:
    client = luma_sdk(app, app.create_token("lister"))
    ids = [client.generations.create(model="ray-2", prompt=f"number {i}").id for i in range(3)]
    page = client.generations.list(limit=2, offset=0)
    assert [g.id for g in page.generations] == ids[::-1][:2]
    assert page.count == 2 and page.has_more is True and page.limit == 2
    rest = client.generations.list(limit=2, offset=2)
    assert [g.id for g in rest.generations] == [ids[0]] and rest.has_more is False
    done = wait_generation(client, ids[0])
    client.generations.delete(ids[0])
    with pytest.raises(lumaai.NotFoundError):
        client.generations.get(ids[0])
    assert http.get(done.assets.video).status_code == 404, "its assets are removed"
    assert client.ping.check().message == "pong"
    assert client.credits.get().credit_balance > 0


def test_typed_errors(app: InProcess, http: httpx.Client, luma: LumaAI) -> None:
    with pytest.raises(lumaai.BadRequestError, match="between 3 and 5000"):
        luma.generations.create(model="ray-2", prompt="ab")
    with pytest.raises(lumaai.BadRequestError, match="loop"):
        luma.generations.create(
            model="ray-2",
            prompt="looping",
            loop=True,
            keyframes={"frame1": {"type": "image", "url": "http://x/y.png"}},
        )
    with pytest.raises(lumaai.BadRequestError, match="model"):
        luma.generations.create(model="ray-9", prompt="unknown model")  # type: ignore[arg-type]
    with pytest.raises(lumaai.NotFoundError):
        luma.generations.get("00000000-0000-0000-0000-000000000000")
    with pytest.raises(lumaai.NotFoundError):
        luma.generations.create(
            model="ray-2",
            prompt="extend nothing",
            keyframes={"frame0": {"type": "generation", "id": "missing"}},
        )
    bad = luma_sdk(app, "rg_not_a_token")
    with pytest.raises(lumaai.AuthenticationError):
        bad.generations.list()
    raw = http.post(
        "/dream-machine/v1/generations",
        json={"prompt": "xyz"},
        headers={"authorization": "Bearer rg_not_a_token"},
    )
    assert raw.status_code == 401 and set(raw.json()) == {"detail"}


@pytest.mark.slow
def test_async_client(app: InProcess) -> None:
    async def run() -> None:
        client = luma_async_sdk(app, app.create_token("async"))
        g = await client.generations.create(model="ray-2", prompt="async waves")
        for _ in range(450):
            g = await client.generations.get(g.id)
            if g.state == "completed":
                break
            await asyncio.sleep(0.2)
        assert g.state == "completed"
        assert [x.id for x in (await client.generations.list()).generations] == [g.id]
        await client.generations.delete(g.id)
        with pytest.raises(lumaai.NotFoundError):
            await client.generations.get(g.id)
        await client.close()

    asyncio.run(run())


@pytest.mark.slow
def test_one_core_every_dialect_reads_the_same_task(luma: LumaAI, app: InProcess) -> None:
    token = luma.auth_token
    api = Api(app, token)
    g = wait_generation(luma, luma.generations.create(model="ray-2", prompt="shared task").id)
    item = api.retrieve(g.id).json()
    assert item["response"]["video_url"] == g.assets.video
    web = api.client.get(f"/luma/generations/{g.id}").json()
    assert web["state"] == "completed" and web["video"]["url"] == g.assets.video
    ace = api.post("/luma/videos", {"prompt": "made by acedata"}).json()
    assert luma.generations.get(ace["task_id"]).assets.video == ace["video_url"]
    other = luma_sdk(app, app.create_token("stranger"))
    with pytest.raises(lumaai.NotFoundError):
        other.generations.get(g.id)
    with pytest.raises(lumaai.NotFoundError):
        other.generations.delete(g.id)


@pytest.mark.slow  # over a second: the slow tier
def test_raw_contract_and_failure_callbacks(http: httpx.Client, luma: LumaAI, peer: Peer) -> None:
    base = "/dream-machine/v1"
    headers = {"authorization": f"Bearer {luma.auth_token}"}
    created = http.post(
        base + "/generations",
        headers=headers,
        json={"model": "ray-2", "prompt": "plain path", "resolution": "540p"},
    )
    assert created.status_code == 201 and created.json()["state"] == "queued"
    assert created.json()["request"]["generation_type"] == "video"
    for body in (
        {"model": "ray-2", "prompt": "bad ratio", "aspect_ratio": "2:1"},
        {"model": "ray-2", "prompt": "bad frame", "keyframes": {"frame0": {"type": "image"}}},
        {"model": "ray-2", "prompt": "x" * 5001},
        {"model": "ray-2", "prompt": "4k", "resolution": "4k"},
    ):
        response = http.post(base + "/generations", headers=headers, json=body)
        assert response.status_code == 400, body
        assert set(response.json()) == {"detail"} and response.json()["detail"]
    listing = http.get(base + "/generations", headers=headers, params={"limit": 1000})
    assert listing.status_code == 400 and "detail" in listing.json()

    broken = peer.serve("/broken.png", b"not an image at all", "image/png")
    g = luma.generations.create(
        model="ray-2",
        prompt="will fail",
        keyframes={"frame0": {"type": "image", "url": broken}},
        callback_url=peer.url("/fails"),
    )
    failed = wait_generation(luma, g.id)
    assert failed.state == "failed" and "start image" in failed.failure_reason
    posts = peer.wait_posts("/fails", count=2)
    assert [p["json"]["state"] for p in posts] == ["dreaming", "failed"]
    assert posts[-1]["json"]["failure_reason"] == failed.failure_reason
