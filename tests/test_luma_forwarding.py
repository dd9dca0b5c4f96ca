"""Every official call through the `luma` engine: a downstream reelgate whose
engine is an upstream reelgate (preview engine) on loopback. Each call is
made upstream as the same generation type, from links the upstream can
fetch (or the upstream ids of generations it made), and the result is
re-hosted downstream: images as images, videos as videos."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import av
import httpx
import lumaai
import numpy as np
import pytest
from lumaai import LumaAI
from PIL import Image

from reelgate.domain.models import frame_size
from reelgate.domain.reframe import Placement, layout
from reelgate.testing import (
    FaultProxy,
    Peer,
    Server,
    decode_mp4,
    png_bytes,
    running,
    textured_image,
    wait_generation,
)

pytestmark = pytest.mark.slow  # two servers in processes, one in front of the other

FAST = {
    "REELGATE_LUMA_POLL_SECONDS": "0.2",
    "REELGATE_LUMA_POLL_MAX_SECONDS": "1",
    "REELGATE_DEFAULT_ENGINE": "luma",
}


def official(server: Server, token: str) -> LumaAI:
    return LumaAI(auth_token=token, base_url=server.url + "/dream-machine/v1", max_retries=0)


def solid_png(rgb: tuple[int, int, int], width: int = 512, height: int = 288) -> bytes:
    return png_bytes(np.full((height, width, 3), rgb, dtype=np.uint8))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def row(server: Server, sql: str, *args: Any) -> tuple[Any, ...]:
    with sqlite3.connect(server.data_dir / "reelgate.db") as db:
        found = db.execute(sql, args).fetchone()
    assert found is not None
    return tuple(found)


def upstream_id(down: Server, generation_id: str) -> str:
    """The upstream generation the downstream task followed."""
    (found,) = row(down, "SELECT upstream_id FROM tasks WHERE id = ?", generation_id)
    assert found
    return str(found)


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def audio_track(data: bytes) -> tuple[np.ndarray, str]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(stream)])
        return samples, stream.codec_context.name


# Servers: one upstream that renders, one downstream in front of it


def downstream(data: Any, base_url: str, key: str, **env: str | None) -> Server:
    """A reelgate whose default engine is `luma`, in front of `base_url` (not
    started); the model `preview` is rendered here by the preview engine."""
    return Server(
        data,
        workers=3,
        env={
            **FAST,
            "REELGATE_LUMA_BASE_URL": base_url + "/dream-machine/v1",
            "REELGATE_LUMA_API_KEYS": key,
            "REELGATE_MODEL_ENGINES": json.dumps({"preview": "preview"}),
            **env,
        },
    )


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(Server(tmp_path_factory.mktemp("upstream") / "data", workers=2)) as srv:
        yield srv


@pytest.fixture(scope="module")
def upstream_key(upstream: Server) -> str:
    return upstream.create_token("gateway")


@pytest.fixture(scope="module")
def up(upstream: Server, upstream_key: str) -> LumaAI:
    """The upstream as the downstream's key sees it."""
    return official(upstream, upstream_key)


@pytest.fixture(scope="module")
def down(
    tmp_path_factory: pytest.TempPathFactory, upstream: Server, upstream_key: str
) -> Iterator[Server]:
    with running(
        downstream(tmp_path_factory.mktemp("down") / "data", upstream.url, upstream_key)
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(down: Server) -> LumaAI:
    return official(down, down.create_token("app"))


@pytest.fixture(scope="module")
def source(client: LumaAI) -> Any:
    """A 540p, 5 s video the upstream made for the downstream."""
    done = wait_generation(
        client,
        client.generations.create(
            model="ray-2",
            prompt="a red paper lantern over a harbour",
            aspect_ratio="16:9",
            resolution="540p",
            duration="5s",
        ).id,
    )
    assert done.state == "completed", done.failure_reason
    return done


# Images


def test_image_generation_forwards_its_references(
    client: LumaAI, up: LumaAI, down: Server, peer: Peer
) -> None:
    composition = peer.serve("/composition.png", solid_png((30, 160, 60)), "image/png")
    face = peer.serve("/face.png", solid_png((200, 150, 120), 288, 384), "image/png")
    before = peer.serve("/before.png", solid_png((40, 40, 200)), "image/png")
    style = data_uri(solid_png((230, 200, 20)))
    created = client.generations.image.create(
        model="photon-flash-1",
        prompt="a green hill under a yellow sky",
        aspect_ratio="1:1",
        format="png",
        image_ref=[{"url": composition, "weight": 0.6}],
        style_ref=[{"url": style, "weight": 0.4}],
        character_ref={"identity0": {"images": [face]}},
        modify_image_ref={"url": before, "weight": 0.7},
    )
    done = wait_generation(client, created.id)
    assert done.state == "completed", done.failure_reason
    assert done.generation_type == "image" and done.model == "photon-flash-1"
    assert done.assets.video is None

    theirs = up.generations.get(upstream_id(down, done.id))
    assert theirs.generation_type == "image" and theirs.state == "completed"
    sent = theirs.request
    assert (sent.model, sent.format, sent.aspect_ratio) == ("photon-flash-1", "png", "1:1")
    assert sent.prompt == "a green hill under a yellow sky"
    # The client's URLs pass as they are; a data URI becomes a link to our copy.
    assert [(r.url, r.weight) for r in sent.image_ref] == [(composition, 0.6)]
    [style_ref] = sent.style_ref
    assert style_ref.url.startswith(down.url + "/assets/") and style_ref.weight == 0.4
    assert sent.character_ref.identity0.images == [face]
    assert (sent.modify_image_ref.url, sent.modify_image_ref.weight) == (before, 0.7)

    answer = httpx.get(done.assets.image)
    assert answer.headers["content-type"] == "image/png"
    ours = picture(answer.content)
    assert ours.format == "PNG" and ours.size == frame_size("1:1", "1080p")
    # the upstream's picture, pixel for pixel (PNG both ways)
    original = picture(httpx.get(theirs.assets.image).content)
    assert np.array_equal(np.asarray(ours.convert("RGB")), np.asarray(original.convert("RGB")))


def test_image_reframe_is_made_upstream_with_its_placement(
    client: LumaAI, up: LumaAI, down: Server
) -> None:
    source = data_uri(png_bytes(textured_image(512, 288, seed=3)))
    created = client.generations.image.reframe(
        generation_type="reframe_image",
        media={"url": source},
        aspect_ratio="9:16",
        model="photon-1",
        format="jpg",
        prompt="more of the same texture",
        resized_width=256,
        grid_position_y=0,
    )
    done = wait_generation(client, created.id)
    assert done.state == "completed", done.failure_reason
    assert done.generation_type == "reframe_image"

    theirs = up.generations.get(upstream_id(down, done.id))
    assert theirs.generation_type == "reframe_image" and theirs.state == "completed"
    sent = theirs.request
    assert sent.media.url.startswith(down.url + "/assets/")  # our copy of the data URI
    assert (sent.aspect_ratio, sent.model, sent.format) == ("9:16", "photon-1", "jpg")
    assert (sent.resized_width, sent.grid_position_y) == (256, 0)
    assert sent.grid_position_x is None and sent.prompt == "more of the same texture"

    answer = httpx.get(done.assets.image)
    assert answer.headers["content-type"] == "image/jpeg"
    ours = picture(answer.content)
    placed = layout(512, 288, (9, 16), Placement(resized_width=256, grid_y=0))
    assert ours.format == "JPEG" and ours.size == (placed.width, placed.height)
    assert abs(ours.size[0] / ours.size[1] - 9 / 16) < 0.01


def test_an_image_followed_after_a_restart_is_downloaded_as_an_image(
    tmp_path_factory: pytest.TempPathFactory, upstream: Server, upstream_key: str
) -> None:
    """A worker that finds the upstream id already on the task (after a crash)
    follows that generation and re-hosts an image, not a video."""
    proxy = FaultProxy(upstream.url)
    srv = downstream(
        tmp_path_factory.mktemp("restart") / "data",
        proxy.url,
        upstream_key,
        REELGATE_LEASE_SECONDS="2",
    )
    try:
        with running(srv):
            client = official(srv, srv.create_token("app"))
            created = client.generations.image.create(
                model="photon-1", prompt="a lighthouse, as a still", format="png"
            )
            deadline = time.monotonic() + 30
            while not row(srv, "SELECT upstream_id FROM tasks WHERE id = ?", created.id)[0]:
                assert time.monotonic() < deadline, "no upstream generation kept on the task"
                time.sleep(0.01)
            proxy.go_down()  # the crashed worker never sees it finish
            srv.kill()
            proxy.come_up()
            srv.start()
            done = wait_generation(client, created.id, timeout=60)
            assert done.state == "completed", done.failure_reason
            assert done.assets.video is None
            ours = picture(httpx.get(done.assets.image).content)
            assert ours.format == "PNG" and ours.size == frame_size("16:9", "1080p")
            creates = [s for s in proxy.seen if s.method == "POST"]
            assert [(s.path.rsplit("/", 2)[-2:], s.status) for s in creates] == [
                (["generations", "image"], 201)
            ]  # followed again, never made twice
    finally:
        proxy.close()


# Videos made from a video the downstream has


def test_video_reframe_is_made_upstream_from_our_link(
    client: LumaAI, up: LumaAI, down: Server, source: Any, peer: Peer
) -> None:
    first = peer.serve("/first.png", solid_png((200, 40, 40)), "image/png")
    created = client.generations.video.reframe(
        generation_type="reframe_video",
        media={"url": source.assets.video},
        first_frame={"url": first},
        aspect_ratio="9:16",
        model="ray-flash-2",
        prompt="the harbour above and below",
        grid_position_x=0,
    )
    done = wait_generation(client, created.id)
    assert done.state == "completed", done.failure_reason
    assert done.generation_type == "reframe_video"

    theirs = up.generations.get(upstream_id(down, done.id))
    assert theirs.generation_type == "reframe_video" and theirs.state == "completed"
    sent = theirs.request
    assert sent.media.url.startswith(down.url + "/assets/")
    assert httpx.URL(sent.media.url).path == httpx.URL(source.assets.video).path
    assert sent.first_frame.url == first
    assert (sent.aspect_ratio, sent.model, sent.grid_position_x) == ("9:16", "ray-flash-2", 0)

    original = decode_mp4(httpx.get(source.assets.video).content)
    video = decode_mp4(httpx.get(done.assets.video).content)
    placed = layout(original.width, original.height, (9, 16), Placement(grid_x=0))
    assert (video.width, video.height) == (placed.width, placed.height)
    assert abs(video.width / video.height - 9 / 16) < 0.01
    assert len(video.frames) == len(original.frames)


def test_modify_is_made_upstream_with_its_mode(
    client: LumaAI, up: LumaAI, down: Server, source: Any
) -> None:
    created = client.generations.video.modify(
        generation_type="modify_video",
        media={"url": source.assets.video},
        mode="reimagine_2",
        model="ray-2",
        prompt="a watercolour painting",
    )
    done = wait_generation(client, created.id)
    assert done.state == "completed", done.failure_reason
    assert done.generation_type == "modify_video"

    theirs = up.generations.get(upstream_id(down, done.id))
    assert theirs.generation_type == "modify_video" and theirs.state == "completed"
    sent = theirs.request
    assert (sent.mode, sent.model) == ("reimagine_2", "ray-2")
    assert sent.prompt == "a watercolour painting"
    assert sent.media.url.startswith(down.url + "/assets/")

    original = decode_mp4(httpx.get(source.assets.video).content)
    video = decode_mp4(httpx.get(done.assets.video).content)
    assert (video.width, video.height, len(video.frames)) == (
        original.width,
        original.height,
        len(original.frames),
    )
    middle = len(video.frames) // 2
    change = np.abs(video.frames[middle].astype(int) - original.frames[middle].astype(int)).mean()
    assert change > 5, change  # restyled, not a copy


# Videos made from a generation the upstream made


def test_upscale_works_on_the_upstream_generation(
    client: LumaAI, up: LumaAI, upstream: Server, down: Server, source: Any
) -> None:
    created = client.generations.upscale(source.id, resolution="720p")
    done = wait_generation(client, created.id)
    assert done.state == "completed", done.failure_reason
    assert done.generation_type == "upscale_video"

    theirs_id = upstream_id(down, done.id)
    theirs = up.generations.get(theirs_id)
    assert theirs.generation_type == "upscale_video" and theirs.request.resolution == "720p"
    # the upstream upscaled its own generation of the source
    kind, of = row(upstream, "SELECT kind, source_task_id FROM tasks WHERE id = ?", theirs_id)
    assert (kind, of) == ("upscale", upstream_id(down, source.id))

    video = decode_mp4(httpx.get(done.assets.video).content)
    original = decode_mp4(httpx.get(source.assets.video).content)
    assert (video.width, video.height) == frame_size("16:9", "720p")
    assert len(video.frames) == len(original.frames)


def test_add_audio_works_on_the_upstream_generation(
    client: LumaAI, up: LumaAI, upstream: Server, down: Server, source: Any
) -> None:
    created = client.generations.audio(
        source.id, prompt="heavy rain on a tin roof", negative_prompt="music"
    )
    done = wait_generation(client, created.id)
    assert done.state == "completed", done.failure_reason
    assert done.generation_type == "add_audio"

    theirs_id = upstream_id(down, done.id)
    theirs = up.generations.get(theirs_id)
    assert theirs.generation_type == "add_audio"
    sent = theirs.request
    assert (sent.prompt, sent.negative_prompt) == ("heavy rain on a tin roof", "music")
    kind, of = row(upstream, "SELECT kind, source_task_id FROM tasks WHERE id = ?", theirs_id)
    assert (kind, of) == ("add_audio", upstream_id(down, source.id))

    data = httpx.get(done.assets.video).content
    samples, codec = audio_track(data)
    assert codec == "aac"
    assert float(np.sqrt((samples**2).mean())) > 0.02, "a track that is heard"
    original = decode_mp4(httpx.get(source.assets.video).content)
    assert len(decode_mp4(data).frames) == len(original.frames)


def test_a_generation_the_upstream_never_made_cannot_be_upscaled_there(
    client: LumaAI, up: LumaAI, down: Server
) -> None:
    """A video made here by an engine this server no longer runs (say an ltx
    GPU worker that shares the database) has no upstream generation: the
    luma engine refuses to upscale it or give it a soundtrack, before
    anything is queued or sent upstream."""
    made = wait_generation(
        client, client.generations.create(model="preview", prompt="made without the upstream").id
    )
    assert made.state == "completed", made.failure_reason
    with sqlite3.connect(down.data_dir / "reelgate.db") as db:
        engine, upstream = db.execute(
            "SELECT engine, upstream_id FROM tasks WHERE id = ?", (made.id,)
        ).fetchone()
        assert (engine, upstream) == ("preview", None)
        db.execute("UPDATE tasks SET engine = 'ltx' WHERE id = ?", (made.id,))
    before = {g.id for g in up.generations.list(limit=100).generations}
    listed = len(client.generations.list(limit=100).generations)

    for call in (
        lambda: client.generations.upscale(made.id, resolution="720p"),
        lambda: client.generations.audio(made.id, prompt="birdsong"),
    ):
        with pytest.raises(lumaai.BadRequestError) as refused:
            call()
        assert refused.value.status_code == 400
        message = json.dumps(refused.value.body)
        assert "the luma engine does not support" in message
        assert "'ltx' engine" in message and "generated upstream itself" in message
    assert len(client.generations.list(limit=100).generations) == listed  # nothing queued
    assert {g.id for g in up.generations.list(limit=100).generations} == before
