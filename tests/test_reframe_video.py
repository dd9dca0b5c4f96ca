"""`POST /generations/video/reframe`, and the video calls through the SDK's
async client: a reframed clip has the new aspect ratio, the original
playing where it was placed and the new area filled in every frame."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import av
import cv2
import numpy as np
import pytest

from reelgate.testing import InProcess, decode_mp4, detailed_image, luma_async_sdk, png_bytes, psnr

pytestmark = pytest.mark.slow  # renders a clip, then reworks it


async def wait(client: Any, generation_id: str) -> Any:
    for _ in range(1200):
        got = await client.generations.get(generation_id)
        if got.state in ("completed", "failed"):
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"generation {generation_id} did not finish")


def test_a_reframed_video_keeps_the_clip_in_its_band(app: InProcess) -> None:
    client = luma_async_sdk(app, app.create_token("reframe-video"))
    opening = detailed_image(544, 968, seed=11)

    async def run() -> tuple[Any, Any]:
        source = await client.generations.create(
            model="ray-2", prompt="waves on a beach", resolution="540p", aspect_ratio="16:9"
        )
        source = await wait(client, source.id)
        created = await client.generations.video.reframe(
            generation_type="reframe_video",
            model="ray-2",
            aspect_ratio="9:16",
            media={"url": source.assets.video},
            first_frame={
                "url": "data:image/png;base64," + base64.b64encode(png_bytes(opening)).decode()
            },
            prompt="a beach at noon",
        )
        assert created.request.generation_type == "reframe_video"
        return source, await wait(client, created.id)

    source, done = asyncio.run(run())
    assert done.state == "completed", done.failure_reason
    before = decode_mp4(app.http().get(source.assets.video).content).frames
    after = decode_mp4(app.http().get(done.assets.video).content).frames
    h, w = after[0].shape[:2]
    sh, sw = before[0].shape[:2]
    assert abs(w / h - 9 / 16) < 0.01 and w == sh, "9:16, as tall a picture class as the source"
    assert len(after) == len(before)
    band_h = round(sh * w / sw)
    top = (h - band_h) // 2
    for i in (len(after) // 2, len(after) - 1):
        expected = cv2.resize(before[i], (w, band_h), interpolation=cv2.INTER_AREA)
        assert psnr(after[i][top : top + band_h], expected) > 28, "the clip plays in its band"
        fill = after[i][: top - 4]
        assert fill.mean() > 20 and fill.std() > 3, "the new area is filled, not a bar"
    opening_fit = cv2.resize(opening, (w, h), interpolation=cv2.INTER_AREA)
    assert psnr(after[0], opening_fit) > 25, "the first frame given opens the clip"


def test_the_async_client_modifies_and_adds_audio(app: InProcess) -> None:
    client = luma_async_sdk(app, app.create_token("async-video-calls"))

    async def run() -> tuple[Any, Any, Any]:
        source = await wait(
            client,
            (
                await client.generations.create(
                    model="ray-flash-2", prompt="a windy field", resolution="540p"
                )
            ).id,
        )
        modified = await client.generations.video.modify(
            generation_type="modify_video",
            media={"url": source.assets.video},
            mode="flex_2",
            model="ray-flash-2",
            prompt="in watercolour",
        )
        audio = await client.generations.audio(source.id, prompt="wind and birds")
        return source, await wait(client, modified.id), await wait(client, audio.id)

    source, modified, audio = asyncio.run(run())
    assert modified.state == "completed" and audio.state == "completed"
    original = decode_mp4(app.http().get(source.assets.video).content).frames
    changed = decode_mp4(app.http().get(modified.assets.video).content).frames
    assert len(changed) == len(original) and psnr(changed[30], original[30]) < 30
    with av.open(io.BytesIO(app.http().get(audio.assets.video).content)) as box:
        samples = np.concatenate([f.to_ndarray().ravel() for f in box.decode(box.streams.audio[0])])
    assert np.abs(samples).max() > 0.01, "an audible soundtrack"
