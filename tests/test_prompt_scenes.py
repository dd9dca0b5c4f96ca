"""A preview that follows the prompt: each prompt's clip, rendered by the
preview engine, shows what its words say, measured on the frames (colours
where the prompt puts them, bright windows counted, particles and subjects
tracked, the camera's move measured with optical flow)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from reelgate.domain.models import FPS
from reelgate.engines.base import RenderJob
from reelgate.engines.preview import PreviewEngine
from reelgate.engines.scene_words import parse
from reelgate.testing import psnr

W, H = 320, 192
Frames = tuple[np.ndarray, ...]


@functools.cache
def clip(prompt: str, n: int = 25, seed: int = 3, loop: bool = False) -> Frames:
    job = RenderJob(
        task_id="t", prompt=prompt, seed=seed, width=W, height=H, fps=FPS, num_frames=n, loop=loop
    )
    frames = tuple(PreviewEngine().render(job, lambda _: None))
    assert len(frames) == n and frames[0].shape == (H, W, 3)
    return frames


# --------------------------------------------------------------------------- measures


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def means(region: np.ndarray) -> tuple[float, float, float]:
    r, g, b = (float(region[..., c].mean()) for c in range(3))
    return r, g, b


def chroma(frame: np.ndarray) -> float:
    """Mean saturation as max - min channel (0..255): low for greys, dark or light."""
    f = frame.astype(np.int16)
    return float((f.max(axis=2) - f.min(axis=2)).mean())


def blobs(mask: np.ndarray, low: int = 1, high: int = 10**9) -> list[tuple[float, float, int]]:
    """Connected components of a mask as (x, y, area), those of area low..high."""
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    return [
        (float(centroids[i][0]), float(centroids[i][1]), int(stats[i, cv2.CC_STAT_AREA]))
        for i in range(1, count)
        if low <= stats[i, cv2.CC_STAT_AREA] <= high
    ]


def largest(mask: np.ndarray) -> tuple[float, float, int, tuple[int, int, int, int]]:
    """The biggest component: centroid, area and bounding box (x, y, w, h)."""
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    assert count > 1, "nothing found"
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[i])
    return float(centroids[i][0]), float(centroids[i][1]), area, (x, y, w, h)


def track(frames: Frames, find: Callable[[np.ndarray], tuple[float, float]]) -> np.ndarray:
    """Per-frame (x, y) of what `find` locates."""
    return np.array([find(f) for f in frames])


def flow(frames: Frames) -> tuple[float, float, float]:
    """Mean (dx, dy) per frame over the picture's core, and the mean outward
    motion (as a zoom in gives), by dense optical flow (as test_concepts measures)."""
    dx = dy = div = 0.0
    pairs = list(itertools.pairwise(frames))[::3]
    for a, b in pairs:
        f = cv2.calcOpticalFlowFarneback(grey(a), grey(b), None, 0.5, 3, 21, 3, 5, 1.1, 0)
        core = f[H // 6 : -H // 6, W // 6 : -W // 6]
        dx += float(core[..., 0].mean())
        dy += float(core[..., 1].mean())
        xs = np.sign(np.arange(W)[None, :] - W / 2)
        ys = np.sign(np.arange(H)[:, None] - H / 2)
        div += float((f[..., 0] * xs + f[..., 1] * ys).mean())
    return dx / len(pairs), dy / len(pairs), div / len(pairs)


def changing_rows(frames: Frames, at: int = 12, threshold: float = 4.0) -> np.ndarray:
    """Rows whose pixels change between the first frame and frame `at`."""
    diff = np.abs(frames[at].astype(np.int16) - frames[0].astype(np.int16)).mean(axis=(1, 2))
    return np.flatnonzero(diff > threshold)


# --------------------------------------------------------------------------- expectations


def warm_sky_and_moving_water(frames: Frames) -> None:
    r, _, b = means(frames[0][: H // 2])
    assert r > b + 40, f"a sunset's sky is warm: red {r:.0f}, blue {b:.0f}"
    rows = changing_rows(frames)
    water = rows[rows > H // 2]
    assert len(water) > H * 0.2, f"a band of moving water below the horizon: {len(water)} rows"
    sky = rows[rows < H // 4]
    assert len(sky) < len(water) / 2, "the sky moves less than the water"


def falling_snow_low_saturation(frames: Frames) -> None:
    moves = []
    for a, b in zip(frames[:-3:3], frames[3::3], strict=False):
        now = blobs(grey(a) > 170, 1, 40)
        then = np.array([(x, y) for x, y, _ in blobs(grey(b) > 170, 1, 40)])
        assert len(now) > 20 and len(then) > 20, "bright flakes"
        for x, y, _ in now:
            d = np.hypot(then[:, 0] - x, then[:, 1] - y)
            if d.min() < 8:
                moves.append(then[int(d.argmin())] - (x, y))
    dx, dy = np.median(np.array(moves), axis=0)
    assert dy > 1.0 and dy > abs(dx), f"flakes fall: median move ({dx:.1f}, {dy:.1f}) per 3 frames"
    assert chroma(frames[0]) < 18, f"a snowy night is nearly grey: {chroma(frames[0]):.0f}"


def lava_glow(frames: Frames) -> None:
    def glowing(frame: np.ndarray) -> float:
        r, g, b = (frame[..., c].astype(int) for c in range(3))
        return float(((r > 170) & (g > 30) & (g < 170) & (b < 90) & (r > g * 1.5)).mean())

    share = glowing(frames[0])
    assert share > 0.01, f"an orange-red glow: {share:.2%} of the picture"
    assert glowing(clip("a mountain at night")[0]) < share / 10, "which a mountain lacks"


def lit_windows(frames: Frames) -> None:
    low = frames[0][H // 2 :]
    windows = blobs(grey(low) > 150, 2, 60)
    assert len(windows) >= 40, f"a grid of lit windows: {len(windows)}"
    assert np.median(grey(low)) < 60, "on a dark skyline"
    rows = {round(y) for _, y, _ in windows}
    assert len(rows) >= 5, "in rows, floor above floor"


def dark(frame: np.ndarray, level: int = 60) -> np.ndarray:
    return frame.max(axis=2) < level


def car_moves_right(frames: Frames) -> None:
    where = track(frames, lambda f: largest(dark(f[H // 2 :]))[:2])
    steps = np.diff(where[:, 0])
    assert np.median(steps) > 0.8, f"a dark blob moving right: {steps}"
    assert where[-1, 0] - where[0, 0] > W * 0.1


def rocket_rises_over_stars(frames: Frames) -> None:
    top = grey(frames[0][: H // 2])
    assert top.mean() < 40, "a dark sky"
    stars = blobs(top > 110, 1, 6)
    assert len(stars) >= 15, f"with stars: {len(stars)}"
    ys = track(frames, lambda f: largest(grey(f) > 180)[:2])[:, 1]
    assert np.median(np.diff(ys)) < -0.5 and ys[-1] - ys[0] < -H * 0.08, f"rising: {ys}"


def fog_lowers_contrast(frames: Frames) -> None:
    foggy = float(grey(frames[0]).std())
    clear = float(grey(clip("a clear morning in the forest")[0]).std())
    assert foggy < clear * 0.6, f"fog flattens the picture: std {foggy:.1f} vs {clear:.1f}"


def rain_streaks(frames: Frames) -> None:
    streaks = 0
    for frame in frames[:3]:
        g = grey(frame)
        thin = cv2.subtract(g, cv2.morphologyEx(g, cv2.MORPH_OPEN, np.ones((1, 5), np.uint8)))
        _, _, stats, _ = cv2.connectedComponentsWithStats((thin > 15).astype(np.uint8), 8)
        w, h = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
        streaks += int(((h >= 5) & (h >= 2.5 * w)).sum())
    assert streaks / 3 >= 15, f"rain falls in streaks: {streaks / 3:.0f} a frame"
    assert not np.array_equal(frames[0], frames[1])


def blue_green(frames: Frames) -> None:
    r, g, b = means(frames[0])
    assert r < 0.6 * g and r < 0.6 * b, f"under water is blue-green: {r:.0f} {g:.0f} {b:.0f}"


def warm_yellow_ground(frames: Frames) -> None:
    r, g, b = means(frames[0][H // 2 :])
    assert r > g > b + 20 and r > b + 50, f"sand is warm yellow: {r:.0f} {g:.0f} {b:.0f}"


def green_ground(frames: Frames) -> None:
    r, g, b = means(frames[0][H // 2 :])
    assert g > 1.2 * r and g > 1.2 * b, f"a forest is green: {r:.0f} {g:.0f} {b:.0f}"


def camera(plain: str, sign_x: int = 0, sign_y: int = 0, zoom: int = 0) -> Callable[[Frames], None]:
    """The clip moves the way the camera words say, against the same prompt without them."""

    def check(frames: Frames) -> None:
        moved, still = flow(frames), flow(clip(plain))
        shift = [m - s for m, s in zip(moved, still, strict=True)]
        for got, sign in zip(shift, (sign_x, sign_y, zoom), strict=True):
            if sign:
                assert got * sign > 0.5, shift
            else:
                assert abs(got) < 0.5, shift

    return check


def lightning_flash(frames: Frames) -> None:
    levels = np.array([grey(f).mean() for f in frames])
    assert levels.max() - np.median(levels) > 12, f"a flash of lightning: {levels.round()}"


def bird_flies_left(frames: Frames) -> None:
    where = track(frames, lambda f: largest(dark(f[: H // 2], 80))[:2])
    assert np.median(np.diff(where[:, 0])) < -0.3 and where[-1, 0] < where[0, 0] - 8, where


def sail_moves_left(frames: Frames) -> None:
    def sail(f: np.ndarray) -> tuple[float, float]:
        white = f[H // 2 :].min(axis=2) > 200
        count, _, stats, centroids = cv2.connectedComponentsWithStats(white.astype(np.uint8), 8)
        tall = [i for i in range(1, count) if stats[i, 3] > stats[i, 2] and stats[i, 4] > 20]
        assert tall, "a white sail on the water"
        i = max(tall, key=lambda i: stats[i, 4])
        return float(centroids[i][0]), float(centroids[i][1])

    xs = track(frames, sail)[:, 0]
    assert xs[-1] < xs[0] - 4, f"sailing left: {xs}"


def walker_on_sand(frames: Frames) -> None:
    r, _, b = means(frames[0][-H // 8 :])
    assert r > b + 40, "sand underfoot"
    xs = []
    for f in frames:
        x, _, area, (_, _, bw, bh) = largest(dark(f[H // 2 :], 70))
        assert bh > 1.5 * bw and area > 30, "a standing figure"
        xs.append(x)
    assert abs(xs[-1] - xs[0]) > 2, f"walking: {xs}"


def pink_and_purple_sky(frames: Frames) -> None:
    r, g, b = means(frames[0][: H // 2])
    assert r > g + 25 and b > g + 25, f"pink and purple: {r:.0f} {g:.0f} {b:.0f}"


def window_in_a_room(frames: Frames) -> None:
    f = frames[0]
    bright = grey(f) > 170
    _, y, area, (_, _, bw, bh) = largest(bright)
    assert area > 0.005 * W * H and y < H * 2 / 3, "a bright pane high on the wall"
    assert area > 0.8 * bw * bh, "rectangular"
    assert grey(f)[~bright].mean() < grey(f)[bright].mean() - 60, "in a darker room"


def river_band(frames: Frames) -> None:
    moving = np.abs(frames[12].astype(int) - frames[0].astype(int)).max(axis=2) > 8
    low = moving[H // 2 :]
    widths = low.sum(axis=1)
    assert low.mean() > 0.02, "moving water"
    assert widths[-10:].mean() > widths[:10].mean() * 1.5, "a river widening toward the viewer"
    r, g, b = means(frames[0][H // 2 :][~low])
    assert g > r and g > b, "between green banks"


def house_in_green_fields(frames: Frames) -> None:
    top, low = frames[0][: H // 3], frames[0][H // 2 :]
    r, _, b = means(top)
    assert b > r + 40, "a clear blue sky"
    lr, lg, lb = means(low)
    assert lg > lr and lg > lb, "green fields"
    walls = (low[..., 0].astype(int) > low[..., 1] + 10).mean()
    assert walls > 0.01, f"a house stands out: {walls:.2%}"


def planet_and_stars(frames: Frames) -> None:
    g = grey(frames[0])
    assert np.median(g) < 30, "the dark of space"
    _, _, area, _ = largest(g > 50)
    assert area > 0.02 * W * H, "a planet"
    assert len(blobs(g > 110, 1, 6)) >= 20, "stars"


def invented_but_alive(frames: Frames) -> None:
    assert grey(frames[0]).std() > 12, "a picture with something in it"
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(frames)), "always moving"
    other = clip("glimmerfen oxtrapod vunchel")
    assert psnr(frames[0], other[0]) < 25, "another unknown prompt looks different"


def brighter_than_night(frames: Frames) -> None:
    day = float(grey(frames[0]).mean())
    night = float(grey(clip("a meadow at night")[0]).mean())
    assert night < 0.4 * day, f"night is dark: {night:.0f} vs {day:.0f}"


def joyful_more_colourful(frames: Frames) -> None:
    gloomy = chroma(clip("a gloomy meadow")[0])
    assert chroma(frames[0]) > 1.5 * gloomy, (chroma(frames[0]), gloomy)


CASES = [
    ("a sunset over the ocean", warm_sky_and_moving_water),
    ("a snowy night", falling_snow_low_saturation),
    ("a volcano erupting at night", lava_glow),
    ("a city skyline at night", lit_windows),
    ("a car driving to the right", car_moves_right),
    ("a rocket launching into space", rocket_rises_over_stars),
    ("a foggy morning in the forest", fog_lowers_contrast),
    ("heavy rain over the fields", rain_streaks),
    ("a coral reef underwater", blue_green),
    ("desert dunes under the midday sun", warm_yellow_ground),
    ("a dense green forest", green_ground),
    ("a mountain lake at dawn, the camera pans left", camera("a mountain lake at dawn", 1)),
    ("tilt up over a mountain lake at dawn", camera("a mountain lake at dawn", 0, 1)),
    ("zoom in on a city at dusk", camera("a city at dusk", zoom=1)),
    ("a thunderstorm with lightning over the hills", lightning_flash),
    ("a bird flying left across a blue sky", bird_flies_left),
    ("a boat sailing to the left on a calm lake", sail_moves_left),
    ("a person walking on the beach", walker_on_sand),
    ("a pink and purple sky over the sea", pink_and_purple_sky),
    ("a cozy room with a window on a sunny day", window_in_a_room),
    ("a river winding through a valley", river_band),
    ("a house in the fields on a sunny day", house_in_green_fields),
    ("a planet in outer space", planet_and_stars),
    ("zorblax quintessence flumox", invented_but_alive),
    ("a meadow at noon", brighter_than_night),
    ("a joyful meadow", joyful_more_colourful),
]
PROMPTS = tuple(prompt for prompt, _ in CASES)
"""The prompts (benchmarks/contact_sheet.py draws one frame of each)."""


@pytest.mark.parametrize(
    ("prompt", "expect"),
    [pytest.param(p, e, id=p.replace(" ", "-").replace(",", "")) for p, e in CASES],
)
def test_the_clip_shows_what_the_prompt_says(prompt: str, expect: Callable[[Frames], None]) -> None:
    expect(clip(prompt))


def test_the_same_prompt_and_seed_give_the_same_clip() -> None:
    a = clip("a red car driving left through a snowy city at dusk")
    again = clip("A red car, driving left through a snowy city at dusk!")
    assert all(np.array_equal(x, y) for x, y in zip(a, again, strict=True))
    other_seed = clip("a red car driving left through a snowy city at dusk", seed=4)
    assert not np.array_equal(a[0], other_seed[0])


def test_a_loop_with_moving_subjects_closes() -> None:
    frames = clip("a car driving to the right in the rain at night", n=33, loop=True)
    assert psnr(frames[-1], frames[0]) > 40
    assert psnr(frames[16], frames[0]) < 30, "and moves in between"


def test_the_words_are_read_as_a_scene() -> None:
    spec = parse("Birds flying left over a misty mountain lake at sunset, the camera pans right")
    assert (spec.time, spec.weather, spec.setting, spec.extras) == (
        "sunset",
        "fog",
        "lake",
        ("mountains",),
    )
    assert [(s.kind, s.motion, s.count) for s in spec.subjects] == [("bird", "left", 3)]
    assert spec.camera == ("pan_right",)
    red_car = parse("a red car racing toward the camera").subjects[0]
    assert (red_car.kind, red_car.motion, red_car.colour) == ("car", "toward", (200, 35, 40))
    assert parse("bird's-eye view of a forest").camera == ("overhead",)
    assert parse("bird's-eye view of a forest").subjects == ()
    assert parse("zorblax").known is False
