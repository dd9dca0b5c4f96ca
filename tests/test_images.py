"""`POST /generations/image` and `POST /generations/image/reframe` through
the `lumaai` SDK (sync and async clients): real pictures in the format and
size asked for, each reference steering what a person would see, a reframe
keeping the original where it was placed with the new area filled; every
mistake refused clearly, and the other dialects reading image tasks."""

from __future__ import annotations

import asyncio
import base64
import io

import cv2
import lumaai
import numpy as np
import pytest
from PIL import Image

from reelgate.domain.models import IMAGE_RESOLUTION, frame_size
from reelgate.testing import (
    InProcess,
    Peer,
    detailed_image,
    luma_async_sdk,
    luma_sdk,
    png_bytes,
    psnr,
    wait_generation,
)


def data_uri(img: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode()


def fetch_image(app: InProcess, url: str) -> tuple[np.ndarray, str]:
    with Image.open(io.BytesIO(app.http().get(url).content)) as img:
        return np.asarray(img.convert("RGB")), str(img.format)


def solid(rgb: tuple[int, int, int], width: int = 320, height: int = 240) -> np.ndarray:
    return np.full((height, width, 3), rgb, np.uint8)


@pytest.fixture(scope="module")
def luma(app: InProcess) -> lumaai.LumaAI:
    return luma_sdk(app, app.create_token("images"))


def picture(app: InProcess, luma: lumaai.LumaAI, **body: object) -> np.ndarray:
    done = luma.generations.image.create(model="photon-1", sync=True, sync_timeout=60, **body)
    assert done.state == "completed", done.failure_reason
    return fetch_image(app, done.assets.image)[0]


def test_an_image_in_the_format_and_size_asked_for(app: InProcess, luma: lumaai.LumaAI) -> None:
    done = luma.generations.image.create(
        model="photon-1",
        prompt="a lighthouse on a cliff at dusk",
        aspect_ratio="3:4",
        format="png",
        sync=True,
        sync_timeout=60,
    )
    assert done.state == "completed" and done.generation_type == "image"
    assert done.request.generation_type == "image" and done.assets.video is None
    pixels, fmt = fetch_image(app, done.assets.image)
    width, height = frame_size("3:4", IMAGE_RESOLUTION)
    assert fmt == "PNG" and pixels.shape == (height, width, 3)
    assert pixels.std() > 5, "a picture, not a flat fill"

    assert luma.generations.get(done.id).assets.image == done.assets.image
    assert done.id in [g.id for g in luma.generations.list(limit=10).generations]
    luma.generations.delete(done.id)
    with pytest.raises(lumaai.NotFoundError):
        luma.generations.get(done.id)


def test_the_async_client_makes_and_reframes_a_jpeg(app: InProcess) -> None:
    client = luma_async_sdk(app, app.create_token("images-async"))

    async def finished(generation_id: str) -> tuple[str, str]:
        for _ in range(600):
            got = await client.generations.get(generation_id)
            if got.state in ("completed", "failed"):
                return got.state, got.assets.image
            await asyncio.sleep(0.1)
        raise AssertionError("the image did not finish")

    async def run() -> tuple[tuple[str, str], tuple[str, str]]:
        created = await client.generations.image.create(model="photon-flash-1", prompt="a koi pond")
        assert created.state in ("queued", "dreaming", "completed")
        made = await finished(created.id)
        reframe = await client.generations.image.reframe(
            generation_type="reframe_image",
            model="photon-flash-1",
            aspect_ratio="1:1",
            media={"url": made[1]},
        )
        return made, await finished(reframe.id)

    (state, url), (reframed_state, reframed_url) = asyncio.run(run())
    assert state == reframed_state == "completed"
    pixels, fmt = fetch_image(app, url)
    assert fmt == "JPEG" and pixels.shape[:2] == frame_size("16:9", IMAGE_RESOLUTION)[::-1]
    square, _ = fetch_image(app, reframed_url)
    assert square.shape[:2] == (1080, 1080), "16:9 at 1088 tall, on a square canvas, at 1080p"


def test_image_callbacks_carry_the_image(app: InProcess, luma: lumaai.LumaAI, peer: Peer) -> None:
    created = luma.generations.image.create(
        model="photon-1", prompt="a paper boat", callback_url=peer.url("/image")
    )
    posts = [p["json"] for p in peer.wait_posts("/image", count=2)]
    assert [p["state"] for p in posts] == ["dreaming", "completed"]
    assert posts[-1]["id"] == created.id and posts[-1]["generation_type"] == "image"
    assert fetch_image(app, posts[-1]["assets"]["image"])[0].size > 0


@pytest.mark.slow  # over a second: the slow tier
def test_a_style_reference_gives_its_colours(app: InProcess, luma: lumaai.LumaAI) -> None:
    orange = np.array([230, 120, 20], np.float64)
    prompt = "a quiet valley"
    plain = picture(app, luma, prompt=prompt)
    styled = picture(
        app, luma, prompt=prompt, style_ref=[{"url": data_uri(solid((230, 120, 20))), "weight": 1}]
    )
    distance = lambda img: np.linalg.norm(img.reshape(-1, 3).mean(axis=0) - orange)  # noqa: E731
    assert distance(styled) < 40 < distance(plain)


def test_an_image_reference_lays_out_the_picture(app: InProcess, luma: lumaai.LumaAI) -> None:
    layout = np.zeros((240, 320, 3), np.uint8)
    layout[:, :160] = 255  # bright left half, dark right half
    prompt = "an open field"

    def light_sides(img: np.ndarray) -> float:
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
        half = grey.shape[1] // 2
        return float(grey[:, :half].mean() - grey[:, half:].mean())

    plain = picture(app, luma, prompt=prompt)
    guided = picture(app, luma, prompt=prompt, image_ref=[{"url": data_uri(layout), "weight": 1}])
    assert light_sides(guided) > 60 and light_sides(guided) > light_sides(plain) + 50


def test_a_character_stands_in_the_picture(app: InProcess, luma: lumaai.LumaAI) -> None:
    face = detailed_image(300, 400, seed=3)
    img = picture(
        app,
        luma,
        prompt="a person on a beach",
        aspect_ratio="1:1",
        character_ref={"identity0": {"images": [data_uri(face)]}},
    )
    h, w = img.shape[:2]
    ph = int(h * 0.6)
    pw = int(ph * 300 / 400)
    x, y = (w - pw) // 2, h - ph - int(h * 0.06)
    core = img[y + ph // 3 : y + 2 * ph // 3, x + pw // 3 : x + 2 * pw // 3]
    expected = cv2.resize(face, (pw, ph), interpolation=cv2.INTER_AREA)
    expected = expected[ph // 3 : 2 * ph // 3, pw // 3 : 2 * pw // 3]
    assert psnr(core, expected) > 25, "the portrait is there, in the lower middle"


@pytest.mark.slow  # over a second: the slow tier
def test_modify_image_changes_less_at_a_higher_weight(app: InProcess, luma: lumaai.LumaAI) -> None:
    given = detailed_image(640, 360, seed=5)
    prompt = "the same street in autumn colours"
    close, far = (
        picture(
            app,
            luma,
            prompt=prompt,
            modify_image_ref={"url": data_uri(given), "weight": weight},
        )
        for weight in (1.0, 0.2)
    )
    original = cv2.resize(given, close.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    assert psnr(close, original) > psnr(far, original) + 3
    assert psnr(close, original) < 45, "even at weight 1 the prompt changes something"


def test_reframe_keeps_the_image_where_it_was_placed(app: InProcess, luma: lumaai.LumaAI) -> None:
    source = detailed_image(480, 480, seed=7)
    created = luma.generations.image.reframe(
        generation_type="reframe_image",
        model="photon-1",
        aspect_ratio="16:9",
        media={"url": data_uri(source)},
        grid_position_x=0,
        format="png",
    )
    done = wait_generation(luma, created.id)
    assert done.state == "completed", done.failure_reason
    assert done.request.generation_type == "reframe_image"
    img, fmt = fetch_image(app, done.assets.image)
    h, w = img.shape[:2]
    assert fmt == "PNG" and abs(w / h - 16 / 9) < 0.01 and h == 480
    assert psnr(img[:, :480], source) > 40, "the original, untouched, at the left edge"
    fill = img[:, 560:]
    assert fill.mean() > 40 and fill.std() > 10, "the new area is filled, not a bar"


def test_reframe_with_a_box_places_it_exactly(app: InProcess, luma: lumaai.LumaAI) -> None:
    source = detailed_image(400, 300, seed=8)
    created = luma.generations.image.reframe(
        generation_type="reframe_image",
        model="photon-flash-1",
        aspect_ratio="1:1",
        media={"url": data_uri(source)},
        x_start=0,
        x_end=200,
        y_start=100,
        y_end=250,
        prompt="a meadow",
    )
    done = wait_generation(luma, created.id)
    img, _ = fetch_image(app, done.assets.image)
    # a 200x150 box on the smallest 1:1 canvas that holds it (200x200), at (0, 50)
    assert img.shape[:2] == (200, 200)
    expected = cv2.resize(source, (200, 150), interpolation=cv2.INTER_AREA)
    assert psnr(img[50:200, :], expected) > 30


@pytest.mark.parametrize(
    ("call", "body", "message"),
    [
        ("create", {"prompt": "a cat", "format": "gif"}, "format"),
        ("create", {"prompt": "a cat", "image_ref": [{"url": "x", "weight": 2}]}, "weight"),
        ("create", {"prompt": "a cat", "model": "ray-2"}, "model"),
        ("create", {}, "prompt is required"),
        ("reframe", {"x_start": 50, "x_end": 10}, "x_end must be greater than x_start"),
        ("reframe", {"resized_width": -1}, "resized_width"),
        ("reframe", {"x_end": 10}, "give both x_start and x_end"),
        ("reframe", {"prompt": "ab"}, "prompt must be between"),
        ("create", {"prompt": "a cat", "image_ref": [{"url": ""}]}, "url"),
        ("create", {"prompt": "a cat", "style_ref": [{"url": "ftp://h/a.png"}]}, "http"),
    ],
)
def test_mistakes_are_refused_with_a_400(
    luma: lumaai.LumaAI, call: str, body: dict[str, object], message: str
) -> None:
    with pytest.raises(lumaai.BadRequestError, match=message):
        if call == "create":
            luma.generations.image.create(**{"model": "photon-1", **body})
        else:
            luma.generations.image.reframe(
                generation_type="reframe_image",
                model="photon-1",
                aspect_ratio="16:9",
                media={"url": "https://example.com/a.png"},
                **body,
            )


def test_an_image_cannot_be_used_as_a_video(app: InProcess, luma: lumaai.LumaAI) -> None:
    image = luma.generations.image.create(model="photon-1", prompt="a vase", sync=True)
    with pytest.raises(lumaai.BadRequestError, match="is an image"):
        luma.generations.upscale(image.id, resolution="1080p")
    with pytest.raises(lumaai.BadRequestError, match="is an image"):
        luma.generations.create(
            model="ray-2", keyframes={"frame0": {"type": "generation", "id": image.id}}
        )


def test_a_picture_that_is_not_one_fails_the_reframe_clearly(
    luma: lumaai.LumaAI, peer: Peer
) -> None:
    url = peer.serve("/not-an-image.png", b"<html>nope</html>", "image/png")
    created = luma.generations.image.reframe(
        generation_type="reframe_image", model="photon-1", aspect_ratio="1:1", media={"url": url}
    )
    done = wait_generation(luma, created.id)
    assert done.state == "failed" and "image" in (done.failure_reason or "")


def test_the_gateway_dialects_read_image_tasks(app: InProcess) -> None:
    token = app.create_token("images-dialects")
    luma = luma_sdk(app, token)
    image = luma.generations.image.create(model="photon-1", prompt="a red kite", sync=True)
    http = app.http(token)

    acedata = http.post("/luma/tasks", json={"action": "retrieve", "id": image.id})
    assert acedata.status_code == 200, acedata.text
    answer = acedata.json()["response"]
    assert answer["state"] == "completed" and answer["video_url"] is None
    assert fetch_image(app, answer["image_url"])[1] == "JPEG"

    got = http.get(f"/luma/generations/{image.id}")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["video"] is None and body["image"]["url"] == answer["image_url"]
    download = http.get(f"/luma/generations/{image.id}/download_video_url")
    assert download.status_code == 400 and "is an image" in download.text


@pytest.mark.parametrize(
    ("size", "placement"),
    [((1, 1), {}), ((320, 240), {"resized_width": 8192, "resized_height": 1}), ((1000, 10), {})],
)
def test_slivers_of_a_picture_are_reframed_too(
    app: InProcess, luma: lumaai.LumaAI, size: tuple[int, int], placement: dict[str, int]
) -> None:
    """Content one pixel thin has nothing to mirror: its edge is repeated."""
    created = luma.generations.image.reframe(
        generation_type="reframe_image",
        model="photon-1",
        aspect_ratio="9:16",
        media={"url": data_uri(detailed_image(*size, seed=9))},
        **placement,
    )
    done = wait_generation(luma, created.id, timeout=30)
    assert done.state == "completed", done.failure_reason
    assert fetch_image(app, done.assets.image)[0].size > 0


def test_a_picture_is_not_a_video_to_reframe_or_modify(luma: lumaai.LumaAI) -> None:
    still = data_uri(detailed_image(64, 64, seed=1))
    for created in (
        luma.generations.video.reframe(
            generation_type="reframe_video", model="ray-2", aspect_ratio="1:1", media={"url": still}
        ),
        luma.generations.video.modify(
            generation_type="modify_video", model="ray-2", mode="flex_1", media={"url": still}
        ),
    ):
        done = wait_generation(luma, created.id, timeout=30)
        assert done.state == "failed" and "not a video" in (done.failure_reason or "")
