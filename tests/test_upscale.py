"""`POST /generations/{id}/upscale` through the `lumaai` SDK: a new
generation holding the source video at the resolution asked for, exactly
that size, the same frames, resampled with a real filter (sharper than a
plain bilinear enlargement); refused clearly where it cannot be done."""

from __future__ import annotations

import asyncio

import cv2
import lumaai
import numpy as np
import pytest

from reelgate.domain.models import frame_size
from reelgate.testing import InProcess, decode_mp4, luma_async_sdk, luma_sdk, psnr, wait_generation

pytestmark = pytest.mark.slow  # renders, then renders again


def _sharpness(frame: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_upscale_makes_the_same_video_at_the_size_asked_for(app: InProcess) -> None:
    luma = luma_sdk(app, app.create_token("upscale"))
    source = wait_generation(
        luma,
        luma.generations.create(model="ray-2", prompt="a city at night", aspect_ratio="4:3").id,
    )
    assert source.state == "completed"
    small = decode_mp4(app.http().get(source.assets.video).content).frames

    created = luma.generations.upscale(source.id, resolution="1080p")
    assert created.id != source.id and created.generation_type == "upscale_video"
    assert created.request.generation_type == "upscale_video"
    done = wait_generation(luma, created.id)
    assert done.state == "completed", done.failure_reason
    big = decode_mp4(app.http().get(done.assets.video).content).frames

    width, height = frame_size("4:3", "1080p")
    assert big[0].shape == (height, width, 3) and len(big) == len(small)
    for i in (0, len(big) // 2, len(big) - 1):
        back = cv2.resize(big[i], small[i].shape[1::-1], interpolation=cv2.INTER_AREA)
        assert psnr(back, small[i]) > 30, "the same picture, enlarged"
    plain = cv2.resize(small[0], (width, height), interpolation=cv2.INTER_LINEAR)
    assert _sharpness(big[0]) > 1.2 * _sharpness(plain), "resampled with a sharper filter"

    listed = luma.generations.list(limit=5)
    assert done.id in [g.id for g in listed.generations]


def test_what_cannot_be_upscaled_is_refused_clearly(app: InProcess) -> None:
    luma = luma_sdk(app, app.create_token("upscale-refusals"))
    other = luma_sdk(app, app.create_token("upscale-other"))
    source = wait_generation(luma, luma.generations.create(model="ray-2", prompt="a forest").id)
    with pytest.raises(lumaai.NotFoundError):
        other.generations.upscale(source.id, resolution="1080p")
    with pytest.raises(lumaai.BadRequestError, match="upscale goes to"):
        luma.generations.upscale(source.id, resolution="540p")
    with pytest.raises(lumaai.BadRequestError, match="preview engine does not support"):
        luma.generations.upscale(source.id, resolution="4k")


def test_the_async_client_upscales_to_the_next_resolution(app: InProcess) -> None:
    token = app.create_token("async-upscale")

    async def run() -> tuple[str, str]:
        async with luma_async_sdk(app, token) as client:
            source = await client.generations.create(model="ray-2", prompt="waves on a shore")
            while (source := await client.generations.get(source.id)).state != "completed":
                assert source.state != "failed"
                await asyncio.sleep(0.2)
            upscaled = await client.generations.upscale(source.id)
            return upscaled.request.resolution or "", upscaled.id

    resolution, generation_id = asyncio.run(run())
    assert resolution == "720p", "the default is the next resolution up (540p -> 720p)"
    done = wait_generation(luma_sdk(app, token), generation_id)
    assert done.state == "completed", done.failure_reason
