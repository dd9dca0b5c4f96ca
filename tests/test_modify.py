"""`POST /generations/video/modify` through the `lumaai` SDK: the video
restyled by the prompt, changing more the stronger the mode (measured
against the source), opening on the first frame when one is given, at the
source's size and length; what cannot be modified is refused clearly."""

from __future__ import annotations

import base64
from pathlib import Path

import lumaai
import numpy as np
import pytest

from reelgate.media.encode import encode_mp4
from reelgate.testing import (
    InProcess,
    Peer,
    decode_mp4,
    luma_sdk,
    png_bytes,
    psnr,
    textured_image,
    wait_generation,
)

pytestmark = pytest.mark.slow  # renders, then renders again


def _change(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(
        np.mean([np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, b, strict=True)])
    )


def test_a_stronger_mode_changes_more_and_a_first_frame_opens_the_clip(app: InProcess) -> None:
    luma = luma_sdk(app, app.create_token("modify"))
    created = luma.generations.create(model="ray-2", prompt="a harbour at noon")
    source = wait_generation(luma, created.id)
    original = decode_mp4(app.http().get(source.assets.video).content).frames

    changes = {}
    for mode in ("adhere_1", "flex_2", "reimagine_3"):
        modified = luma.generations.video.modify(
            generation_type="modify_video",
            media={"url": source.assets.video},
            mode=mode,
            model="ray-2",
            prompt="as a comic",
        )
        assert modified.generation_type == "modify_video"
        done = wait_generation(luma, modified.id)
        assert done.state == "completed", done.failure_reason
        frames = decode_mp4(app.http().get(done.assets.video).content).frames
        assert len(frames) == len(original) and frames[0].shape == original[0].shape
        changes[mode] = _change(frames, original)
    assert changes["adhere_1"] < changes["flex_2"] < changes["reimagine_3"], changes
    assert changes["adhere_1"] > 1.0, "even the gentlest mode changes the picture"

    h, w = original[0].shape[:2]
    still = textured_image(w, h, seed=9)
    uri = "data:image/png;base64," + base64.b64encode(png_bytes(still)).decode()
    opened = luma.generations.video.modify(
        generation_type="modify_video",
        media={"url": source.assets.video},
        mode="flex_1",
        model="ray-2",
        first_frame={"url": uri},
    )
    frames = decode_mp4(
        app.http().get(wait_generation(luma, opened.id).assets.video).content
    ).frames
    assert psnr(frames[0], still) > 25, "the clip opens on the first frame"


def test_what_cannot_be_modified_is_refused(app: InProcess) -> None:
    luma = luma_sdk(app, app.create_token("modify-refusals"))
    with pytest.raises(lumaai.BadRequestError, match="mode"):
        luma.generations.video.modify(
            generation_type="modify_video",
            media={"url": "https://example.com/v.mp4"},
            mode="sideways_9",
            model="ray-2",
        )
    with pytest.raises(lumaai.BadRequestError, match="not supported"):
        luma.generations.video.modify(
            generation_type="modify_video",
            media={"url": "https://example.com/v.mp4"},
            mode="flex_1",
            model="ray-9",
        )


def test_a_video_at_another_frame_rate_keeps_its_duration(
    app: InProcess, peer: Peer, tmp_path: Path
) -> None:
    """A 30 fps clip from a URL is modified at the output rate (24 fps) by
    its timestamps: the same 2 s, not a slowed-down 2.5 s."""
    source = tmp_path / "thirty.mp4"
    frames = [textured_image(320, 192, seed=i % 5) for i in range(60)]
    encode_mp4(iter(frames), source, width=320, height=192, fps=30, preset="ultrafast")
    url = peer.serve("/thirty.mp4", source.read_bytes(), "video/mp4")
    luma = luma_sdk(app, app.create_token("modify-fps"))
    created = luma.generations.video.modify(
        generation_type="modify_video", media={"url": url}, mode="adhere_2", model="ray-2"
    )
    done = wait_generation(luma, created.id)
    assert done.state == "completed", done.failure_reason
    out = decode_mp4(app.http().get(done.assets.video).content)
    assert abs(len(out.frames) - 48) <= 1, len(out.frames)
