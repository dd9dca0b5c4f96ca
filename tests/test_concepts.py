"""Camera concepts: the official list, checked keys, and a preview camera
that moves the way each concept says (measured with optical flow against
the same render without it); the ltx engine steers by words, the luma
engine forwards them, an engine without them refuses them up front."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import lumaai
import numpy as np
import pytest

from reelgate.domain.concepts import CONCEPTS
from reelgate.engines.base import Capabilities, Needs, RenderJob, UpstreamJob
from reelgate.engines.preview import PreviewEngine
from reelgate.testing import (
    InProcess,
    decode_mp4,
    detailed_image,
    luma_async_sdk,
    luma_sdk,
    wait_generation,
)


def render(concepts: tuple[str, ...], *, image: bool = False, frames: int = 25) -> list[np.ndarray]:
    job = RenderJob(
        task_id="t",
        prompt="a mountain lake at dawn",
        seed=7,
        width=320,
        height=192,
        fps=24,
        num_frames=frames,
        start_image=detailed_image(320, 192, seed=3) if image else None,
        concepts=concepts,
    )
    return list(PreviewEngine().render(job, lambda p: None))


def flow(frames: list[np.ndarray]) -> tuple[float, float, float]:
    """Mean (dx, dy) per frame, and the mean divergence (outward motion,
    as in a zoom in), over the clip."""
    dx = dy = div = 0.0
    pairs = list(itertools.pairwise(frames))
    for a, b in pairs:
        ga, gb = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (a, b))
        f = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 21, 3, 5, 1.1, 0)
        h, w = ga.shape
        core = f[h // 6 : -h // 6, w // 6 : -w // 6]
        dx += float(core[..., 0].mean())
        dy += float(core[..., 1].mean())
        xs = np.arange(w)[None, :] - w / 2
        ys = np.arange(h)[:, None] - h / 2
        div += float((f[..., 0] * np.sign(xs) + f[..., 1] * np.sign(ys)).mean())
    n = len(pairs)
    return dx / n, dy / n, div / n


def test_the_sdk_lists_the_official_concepts(app: InProcess) -> None:
    listed = luma_sdk(app, app.create_token("concepts")).generations.concepts.list()
    assert listed == list(CONCEPTS) and len(listed) == 34
    for key in ("pan_left", "orbit_right", "crane_up", "dolly_zoom", "aerial", "low_angle"):
        assert key in listed


def test_an_unknown_concept_is_refused_clearly(app: InProcess) -> None:
    luma = luma_sdk(app, app.create_token("unknown-concept"))
    with pytest.raises(lumaai.BadRequestError) as refused:
        luma.generations.create(model="ray-2", prompt="a lake", concepts=[{"key": "barrel_roll"}])
    assert "barrel_roll" in str(refused.value) and "concepts/list" in str(refused.value)


@pytest.mark.parametrize(
    ("concept", "dx", "dy"),
    [("pan_left", 1, 0), ("pan_right", -1, 0), ("tilt_up", 0, 1), ("crane_down", 0, -1)],
)
@pytest.mark.slow  # over a second: the slow tier
def test_a_camera_move_moves_the_picture_its_way(concept: str, dx: int, dy: int) -> None:
    plain = flow(render((), image=True))
    moved = flow(render((concept,), image=True))
    shift = (moved[0] - plain[0], moved[1] - plain[1])
    for got, sign in zip(shift, (dx, dy), strict=True):
        if sign:
            assert got * sign > 0.5, f"{concept}: {shift}"
        else:
            assert abs(got) < 0.5, f"{concept}: {shift}"


@pytest.mark.slow  # over a second: the slow tier
@pytest.mark.parametrize(("concept", "sign"), [("zoom_in", 1), ("pull_out", -1)])
def test_zooms_move_the_picture_outward_or_inward(concept: str, sign: int) -> None:
    plain, moved = flow(render((), image=True)), flow(render((concept,), image=True))
    assert (moved[2] - plain[2]) * sign > 0.5, (concept, plain, moved)


def test_a_start_keyframe_stays_the_first_frame_and_framings_show() -> None:
    image = detailed_image(320, 192, seed=3)
    panned = render(("pan_left",), image=True)
    assert np.array_equal(panned[0], image), "a move starts from the keyframe itself"
    for framing in ("low_angle", "tiny_planet", "elevator_doors", "over_the_shoulder"):
        first = render((framing,), image=True, frames=3)[0]
        assert np.abs(first.astype(int) - image.astype(int)).mean() > 5, framing


@pytest.mark.slow
def test_concepts_reach_the_render_through_the_sdk(app: InProcess) -> None:
    luma = luma_sdk(app, app.create_token("concept-render"))
    created = luma.generations.create(
        model="ray-2", prompt="a quiet harbour", concepts=[{"key": "orbit_left"}]
    )
    done = wait_generation(luma, created.id)
    assert done.state == "completed", done.failure_reason
    assert [c.key for c in done.request.concepts] == ["orbit_left"]
    assert decode_mp4(app.http().get(done.assets.video).content).frames


@pytest.mark.slow
def test_the_async_client_sees_the_same_list(app: InProcess) -> None:
    import asyncio

    async def listed() -> list[str]:
        async with luma_async_sdk(app, app.create_token("async-concepts")) as client:
            return await client.generations.concepts.list()

    assert asyncio.run(listed()) == list(CONCEPTS)


def test_engines_declare_what_they_do_with_concepts(tmp_path: Path) -> None:
    needs = Needs("video", frozenset(), "720p", "5s", "16:9", concepts=("pan_left",))
    assert Capabilities().lacks("bare", needs) == ["camera concepts (pan_left)"]
    assert PreviewEngine.capabilities.lacks("preview", needs) == []

    from reelgate.engines.ltx import LtxEngine, _guided
    from reelgate.engines.luma import LumaEngine

    assert LtxEngine.capabilities.lacks("ltx", needs) == []
    assert _guided("A lake.", ("pan_left", "zoom_in")) == (
        "A lake. The camera pans left; the camera zooms in."
    )
    assert LumaEngine.capabilities.lacks("luma", needs) == []
    job = UpstreamJob(
        "t", "a lake", "ray-2", "16:9", "720p", "5s", False, tmp_path, concepts=("dolly_zoom",)
    )
    params = LumaEngine._params(object.__new__(LumaEngine), job)
    assert params["concepts"] == [{"key": "dolly_zoom"}]
