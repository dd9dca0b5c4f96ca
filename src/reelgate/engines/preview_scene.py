"""The preview engine's text-to-video: the scene a prompt's words describe.

`scene_words.parse` reads the prompt; `PromptScene` draws it. A sky graded
by the time of day (sun, moon, stars), weather (drifting clouds, rain
streaks, falling snow, fog banks, lightning), the setting's layers (water
with moving waves and mirrored reflections, mountain ridges with snow caps,
dunes, tree lines, fields, a city skyline with lit windows, planets, a
volcano's lava glow and embers, caustics and bubbles under water, a room
with a window) and subjects as silhouettes moving the way their verbs say.
A prompt it recognises nothing in still gets a layered landscape, coloured
by the hash of its words.

Smooth layers are drawn on a canvas a quarter of the size and scaled up;
what must stay crisp (windows, stars, particles, silhouettes) is drawn at
full size. Everything is fixed by (prompt, seed); in a loop every motion
makes a whole number of cycles, so the last frame is the first.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from reelgate.engines.scene_words import SceneSpec, Subject, digest_int, parse

SCENE_DOWNSCALE = 4  # smooth fields: render small, upscale
DEFAULT_SECONDS = 5.0  # how long one-way motions take when the clip length is unknown
MAX_ACTORS = 12  # silhouettes in one picture, all subjects together

Colour = np.ndarray
Step = Callable[[np.ndarray, float], None]


def _c(r: float, g: float, b: float) -> Colour:
    return np.array((r, g, b), np.float32)


def _rgb255(colour: Colour) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(v * 255.0 + 0.5, 0, 255)) for v in colour)
    return r, g, b


def _lum(colour: Colour) -> float:
    return float(colour @ _c(0.299, 0.587, 0.114))


def _mix(a: Colour, b: Colour, k: float) -> Colour:
    mixed: Colour = a + (b - a) * np.float32(k)
    return mixed


def _named(rgb: tuple[int, int, int]) -> Colour:
    return np.array(rgb, np.float32) / 255.0


def _toward(colour: Colour, named: Colour, k: float) -> Colour:
    """`colour` moved toward the hue of `named`, keeping its brightness."""
    scaled = named * (_lum(colour) / max(_lum(named), 1e-3))
    toward: Colour = np.clip(_mix(colour, scaled, k), 0.0, 1.0)
    return toward


# --------------------------------------------------------------------------- light

_SKIES = {  # top, middle, horizon
    "dawn": (_c(0.16, 0.20, 0.42), _c(0.52, 0.48, 0.66), _c(0.98, 0.74, 0.56)),
    "day": (_c(0.16, 0.38, 0.78), _c(0.36, 0.58, 0.88), _c(0.74, 0.85, 0.95)),
    "sunset": (_c(0.42, 0.17, 0.30), _c(0.88, 0.38, 0.24), _c(1.0, 0.72, 0.34)),
    "dusk": (_c(0.05, 0.07, 0.20), _c(0.20, 0.18, 0.38), _c(0.60, 0.40, 0.46)),
    "night": (_c(0.008, 0.012, 0.045), _c(0.025, 0.04, 0.10), _c(0.06, 0.09, 0.18)),
}
_AMBIENT = {
    "dawn": _c(0.85, 0.74, 0.74),
    "day": _c(1.0, 1.0, 1.0),
    "sunset": _c(0.95, 0.58, 0.42),
    "dusk": _c(0.40, 0.38, 0.55),
    "night": _c(0.14, 0.17, 0.28),
}
_DAYLIGHT = {"dawn": 0.65, "day": 1.0, "sunset": 0.55, "dusk": 0.3, "night": 0.1}


@dataclass(frozen=True)
class _Sun:
    colour: Colour
    height: float
    """Above the horizon, as a fraction of the sky's height."""
    radius: float
    """Of the disc, in frame heights (0: a glow only)."""
    glow: float
    spread: float


_SUNS = {
    "dawn": _Sun(_c(1.0, 0.86, 0.62), 0.10, 0.045, 0.55, 0.30),
    "day": _Sun(_c(1.0, 0.98, 0.88), 0.72, 0.035, 0.5, 0.2),
    "sunset": _Sun(_c(1.0, 0.60, 0.24), 0.08, 0.06, 0.8, 0.36),
    "dusk": _Sun(_c(0.95, 0.50, 0.40), -0.04, 0.0, 0.35, 0.40),
    "night": _Sun(_c(0.92, 0.93, 0.86), 0.72, 0.028, 0.16, 0.10),
}
_COVER = {"clear": 0.0, "clouds": 0.55, "rain": 0.9, "storm": 1.0, "snow": 0.85, "fog": 0.35}
"""How much of the sky the clouds cover, by weather."""

_MATERIALS = {
    "grass": _c(0.30, 0.52, 0.18),
    "forest": _c(0.10, 0.30, 0.12),
    "sand": _c(0.88, 0.68, 0.42),
    "rock": _c(0.36, 0.37, 0.42),
    "snow": _c(0.90, 0.92, 0.97),
    "basalt": _c(0.17, 0.15, 0.15),
    "asphalt": _c(0.20, 0.20, 0.23),
    "water": _c(0.04, 0.22, 0.32),
    "wall": _c(0.76, 0.64, 0.50),
    "floor": _c(0.42, 0.28, 0.18),
    "regolith": _c(0.45, 0.42, 0.40),
}


class _Palette:
    """The colours of one scene: the sky, the light on things, the fog."""

    def __init__(self, spec: SceneSpec, look: np.random.Generator) -> None:
        time, weather = spec.time, spec.weather
        top, mid, low = (c.copy() for c in _SKIES[time])
        ambient = _AMBIENT[time].copy()
        daylight = _DAYLIGHT[time]
        self.invented = not spec.known
        if self.invented:
            top, mid, low, ambient = self._invented(look)
            daylight = _lum(ambient)
        elif spec.unknown:  # words it does not know nudge the hue a little
            turn = (digest_int(*spec.unknown) % 1000 / 1000.0 - 0.5) * 0.05
            top, mid, low = (_turned(c, turn) for c in (top, mid, low))
        grey = {"rain": 0.8, "storm": 0.88, "snow": 0.78, "fog": 0.7, "clouds": 0.3}
        dim = {"rain": 0.72, "storm": 0.5, "snow": 0.95, "fog": 0.92, "clouds": 0.88}
        if weather in grey:
            level = 0.07 + 0.63 * daylight
            if weather == "storm":
                level *= 0.55
            overcast = (_c(0.85, 0.88, 0.94) * level, _c(0.95, 0.96, 1.0) * level)
            top = _mix(top, overcast[0], grey[weather])
            mid = _mix(mid, overcast[1], grey[weather])
            low = _mix(low, overcast[1] * 1.08, grey[weather])
            ambient = _mix(ambient, np.full(3, _lum(ambient), np.float32), 0.5) * dim[weather]
        if weather == "snow":  # snow lights up the ground, even at night
            ambient = np.maximum(ambient, 0.42 * _c(0.92, 0.95, 1.0))
        for i, named in enumerate(spec.sky_colours[:2]):
            colour = _named(named)
            if i == 0:
                mid = _toward(mid, colour, 0.7)
                low = _toward(low, colour, 0.45 if len(spec.sky_colours) == 1 else 0.2)
                top = _toward(top, colour, 0.35)
            else:
                low = _toward(low, colour, 0.7)
        for named in spec.accent_colours[:1]:
            low = _toward(low, _named(named), 0.4)
        self.sky = (np.clip(top, 0, 1), np.clip(mid, 0, 1), np.clip(low, 0, 1))
        self.ambient = np.clip(ambient, 0.0, 1.2)
        self.daylight = daylight
        self.sun = _SUNS[time]
        if self.invented:
            self.sun = _Sun(_mix(low, _c(1, 1, 1), 0.5), 0.3, 0.0, 0.4, 0.3)
        fog_level = 0.2 + 0.65 * daylight
        self.fog = np.clip(_mix(self.sky[2], np.full(3, fog_level, np.float32), 0.6), 0, 1)
        self.accent = _named(spec.accent_colours[0]) if spec.accent_colours else None
        self.ground = _named(spec.ground_colour) if spec.ground_colour else None
        self.water = _named(spec.water_colour) if spec.water_colour else None
        if time in ("sunset", "dawn"):
            self.cloud_lit = _mix(self.sky[2], _c(1.0, 0.9, 0.85), 0.35)
            self.cloud_shade = _mix(self.sky[0], _c(0.3, 0.2, 0.3), 0.3)
        else:
            self.cloud_lit = _mix(self.sky[2], _c(1.0, 1.0, 1.0), 0.25 + 0.6 * daylight)
            self.cloud_shade = _mix(self.sky[1], np.full(3, 0.5 * daylight, np.float32), 0.7)
        if weather in ("rain", "storm", "snow"):
            self.cloud_lit = _mix(self.cloud_lit, self.sky[1], 0.5)
            self.cloud_shade = self.cloud_shade * (0.6 if weather == "storm" else 0.8)

    @staticmethod
    def _invented(look: np.random.Generator) -> tuple[Colour, Colour, Colour, Colour]:
        """A palette for a prompt with no word the preview knows."""
        hue = float(look.uniform())
        sat = float(look.uniform(0.35, 0.8))
        light = float(look.uniform(0.3, 0.9))
        accent = (hue + float(look.choice([0.08, 0.5, -0.08, 0.33]))) % 1.0

        def rgb(h: float, s: float, v: float) -> Colour:
            return np.array(
                colorsys.hsv_to_rgb(h % 1.0, min(1.0, max(0.0, s)), min(1.0, max(0.0, v))),
                np.float32,
            )

        top = rgb(hue + 0.03, sat * 0.9, light * 0.55)
        mid = rgb((hue + accent) / 2, sat * 0.8, light * 0.8)
        low = rgb(accent, sat * 0.7, min(1.0, light * 1.1 + 0.1))
        ambient = rgb(accent, sat * 0.4, min(1.0, light + 0.15))
        return top, mid, low, ambient

    def lit(self, material: Colour, haze: float = 0.0) -> Colour:
        """A material's colour in this light, `haze` (0..1) of the way to the horizon."""
        colour: Colour = np.clip(_mix(material * self.ambient, self.sky[2], haze), 0.0, 1.0)
        return colour


_PLANET_COLOURS = ((0.75, 0.45, 0.3), (0.35, 0.55, 0.85), (0.8, 0.72, 0.5), (0.6, 0.35, 0.6))
_CORAL_COLOURS = ((0.6, 0.28, 0.3), (0.55, 0.4, 0.2), (0.5, 0.25, 0.45), (0.25, 0.45, 0.35))


def _pick(r: np.random.Generator, options: tuple[tuple[float, float, float], ...]) -> Colour:
    return np.array(options[int(r.integers(len(options)))], np.float32)


def _turned(colour: Colour, turn: float) -> Colour:
    h, s, v = colorsys.rgb_to_hsv(*(float(x) for x in colour))
    return np.array(colorsys.hsv_to_rgb((h + turn) % 1.0, s, v), np.float32)


# --------------------------------------------------------------------------- time


class _Clock:
    """Speeds that, in a loop, make a whole number of cycles per clip."""

    def __init__(self) -> None:
        self.period: float | None = None
        self.duration = DEFAULT_SECONDS

    def omega(self, omega: float) -> float:
        """An angular speed; in a loop, whole turns per clip (never zero)."""
        if self.period is None:
            return omega
        turns = max(1, round(abs(omega) * self.period / (2.0 * math.pi)))
        return math.copysign(2.0 * math.pi * turns / self.period, omega or 1.0)

    def omegas(self, omegas: np.ndarray) -> np.ndarray:
        if self.period is None:
            return omegas
        whole = 2.0 * math.pi / self.period
        turns: np.ndarray = np.maximum(1.0, np.round(np.abs(omegas) / whole))
        snapped: np.ndarray = np.copysign(turns * whole, omegas)
        return snapped

    def speeds(self, speeds: np.ndarray, span: float) -> np.ndarray:
        """Speeds along a wrapping span; in a loop, whole wraps per clip."""
        if self.period is None:
            return speeds
        unit = span / self.period
        wraps: np.ndarray = np.maximum(1.0, np.round(np.abs(speeds) / unit))
        snapped: np.ndarray = np.copysign(wraps * unit, speeds)
        return snapped

    def there_and_back(self, t: float) -> float:
        """Progress 0..1 of a one-way move (toward, away); a loop goes and comes back."""
        if self.period is None:
            return min(1.0, max(0.0, t / max(self.duration, 1e-6)))
        return 0.5 - 0.5 * math.cos(2.0 * math.pi * t / self.period)


def _wrap(value: np.ndarray | float, low: float, span: float) -> np.ndarray:
    wrapped: np.ndarray = (np.asarray(value) - low) % span + low
    return wrapped


# --------------------------------------------------------------------------- noise


def _noise1d(rng: np.random.Generator, n: int, octaves: int = 5, base: int = 4) -> np.ndarray:
    """Fractal noise over n samples, about -1..1."""
    x = np.linspace(0.0, 1.0, n)
    out = np.zeros(n)
    amp = 1.0
    for o in range(octaves):
        knots = base * 2**o + 1
        out += np.interp(x, np.linspace(0, 1, knots), rng.uniform(-1, 1, knots)) * amp
        amp *= 0.5
    result: np.ndarray = out / 1.9
    return result


def _tileable_noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Smooth noise 0..1 that tiles left to right (low-pass filtered in Fourier space)."""
    raw = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    sigma = 1.0 / max(scale, 1.0)
    filtered = np.real(np.fft.ifft2(np.fft.fft2(raw) * np.exp(-(fx**2 + fy**2) / (2 * sigma**2))))
    lo, hi = float(filtered.min()), float(filtered.max())
    out: np.ndarray = ((filtered - lo) / max(hi - lo, 1e-9)).astype(np.float32)
    return out


# --------------------------------------------------------------------------- the scene


@dataclass
class _Actor:
    """One subject on screen: where it starts, how it moves, how it looks."""

    subject: Subject
    x: float
    y: float
    size: float
    """In frame heights."""
    vx: float = 0.0
    vy: float = 0.0
    accel: float = 0.0
    facing: int = 1
    phase: float = 0.0
    gait: float = 0.0
    colour: tuple[int, int, int] = (20, 20, 24)
    detail: tuple[int, int, int] = (200, 200, 200)
    depth_y: tuple[float, float] = (0.0, 0.0)
    """Toward or away: the y it moves between (far, near)."""


class PromptScene:
    """The prompt's scene, frame by frame (the same interface the preview's
    other scenes have: `frames(n, loop)` and `frame(t)`)."""

    def __init__(self, prompt: str, seed: int, width: int, height: int, fps: int) -> None:
        self.spec = spec = parse(prompt)
        self.width, self.height, self.fps = width, height, max(1, fps)
        self.rng = np.random.default_rng(digest_int("scene", *spec.picture, str(seed)))
        look = np.random.default_rng(digest_int("look", *spec.picture))  # palette: prompt only
        self.palette = _Palette(spec, look)
        self.clock = _Clock()
        self.sw = max(48, round(width / SCENE_DOWNSCALE))
        self.sh = max(32, round(height / SCENE_DOWNSCALE))
        self.xs = ((np.arange(self.sw, dtype=np.float32) + 0.5) / self.sw)[None, :]
        self.ys = ((np.arange(self.sh, dtype=np.float32) + 0.5) / self.sh)[:, None]
        self.aspect = width / max(1, height)
        self.px = max(1.0, height / 360.0)  # a "pixel" at 360p, for particle sizes
        self.small_steps: list[Step] = []
        self.big_steps: list[Step] = []
        self.base = np.zeros((self.sh, self.sw, 3), np.float32)
        self.open_sky = np.ones((self.sh, self.sw), np.float32)
        self.ground_top = 1.0
        """Where the ground subjects stand: rows from here to the bottom."""
        self.sun_visible = False
        self.sun_colour = _c(1.0, 1.0, 1.0)
        self.sun_y = -1.0
        self.water_y: tuple[float, float] | None = None
        """The water's top and bottom rows, where there is water."""
        self.window: tuple[float, float, float, float] | None = None
        """A room's window (x0, y0, x1, y1), indoors."""
        self.fog = {"fog": 0.85, "snow": 0.25, "rain": 0.3, "storm": 0.25}.get(spec.weather, 0.0)
        if spec.mood == "eerie":
            self.fog = max(self.fog, 0.35)
        self.build()
        self.grade = self._grade()
        vignette = 1.0 - 0.28 * ((self.xs - 0.5) ** 2 * 2.0 + (self.ys - 0.5) ** 2 * 2.0)
        self.vignette = vignette[..., None].astype(np.float32)

    # ------------------------------------------------------------------ public

    def frames(self, n: int, loop: bool) -> Iterator[np.ndarray]:
        self.clock.period = (n - 1) / self.fps if loop and n > 1 else None
        self.clock.duration = max(1.0 / self.fps, (n - 1) / self.fps)
        for i in range(n):
            yield self.frame(i / self.fps)

    def frame(self, t: float) -> np.ndarray:
        small = self.base.copy()
        for step in self.small_steps:
            step(small, t)
        small = cv2.transform(small, self.grade) * self.vignette
        img = np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8)
        big: np.ndarray = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        for step in self.big_steps:
            step(big, t)
        return big

    # ------------------------------------------------------------------ composition

    def build(self) -> None:
        spec, r = self.spec, self.rng
        settings = set(spec.settings)
        main = spec.setting
        grounded = any(s.kind in ("person", "car", "house", "tree") for s in spec.subjects)
        if main == "ocean" and grounded:
            main = "beach"
        horizon = {
            "ocean": (0.5, 0.6), "beach": (0.46, 0.54), "lake": (0.52, 0.6),
            "river": (0.5, 0.58), "mountains": (0.62, 0.7), "city": (0.7, 0.76),
            "volcano": (0.66, 0.72), "desert": (0.52, 0.6), "forest": (0.58, 0.66),
            "fields": (0.5, 0.6), "landscape": (0.52, 0.64),
        }.get(main, (0.55, 0.65))  # fmt: skip
        self.hz = float(r.uniform(*horizon))
        self.sun_x = float(r.uniform(0.25, 0.75))
        if main == "underwater":
            self._underwater()
            return
        if main == "interior":
            self._interior()
            return
        if main == "space":
            self._space(grounded or bool(spec.extras))
        else:
            self._sky()
        self._clouds()
        far: list[str] = [
            s
            for s in ("mountains", "volcano", "city", "forest", "desert", "fields")
            if s in settings
        ]
        water = main in ("ocean", "beach", "lake", "river")
        if main == "lake" and not far:
            far = ["forest"] if r.uniform() < 0.5 else ["fields"]
        if not far and main == "landscape":
            far = ["landscape"]
        for feature in far:
            getattr(self, f"_{feature}")(water)
        launch = any(s.kind == "rocket" and s.motion == "up" for s in spec.subjects)
        if main == "space" and not far:
            if grounded or launch:
                self._planet_surface()
        elif water:
            self._water(main)
        else:
            self._ground(far)
        night = spec.time in ("night", "dusk") or (
            self.palette.invented and self.palette.daylight < 0.3
        )
        if main == "space":
            self._stars(260, 1.0)
        elif night:
            count = {"night": 170, "dusk": 45}.get(spec.time, 60)
            self._stars(count // (1 if spec.weather == "clear" else 5), self.hz)
        if spec.weather == "storm":
            self._lightning()
        if self.fog:
            self._fog()
        if self.palette.invented:
            self._lights()
        self._subjects()
        self._particles()

    # ---- sky

    def _sky(self) -> None:
        top, mid, low = self.palette.sky
        hz = self.hz
        u = np.clip(self.ys / max(hz, 1e-3), 0.0, 1.0)
        a = np.clip(u / 0.6, 0, 1)[..., None]
        b = np.clip((u - 0.6) / 0.4, 0, 1)[..., None] ** 1.4
        column = top * (1 - a) + mid * a
        column = column * (1 - b) + low * b
        self.base[:] = np.broadcast_to(column, self.base.shape)
        self._sun()

    def _sun(self) -> None:
        sun = self.palette.sun
        if self.spec.weather in ("rain", "storm", "snow", "fog"):
            glow, radius = sun.glow * 0.4, 0.0
        else:
            glow, radius = sun.glow, sun.radius
        sx, sy = self.sun_x, self.hz * (1.0 - sun.height)
        self.sun_y = sy
        d2 = ((self.xs - sx) * self.aspect) ** 2 + (self.ys - sy) ** 2
        light = np.exp(-d2 / (2 * sun.spread**2)) * glow
        light = light * (self.ys < self.hz + 0.02)
        self.base += (1.0 - self.base) * light[..., None] * sun.colour
        if radius > 0:
            disc = np.clip((radius - np.sqrt(d2)) * self.sh + 0.5, 0, 1)
            colour = sun.colour if self.spec.time != "night" else _c(0.95, 0.95, 0.9)
            self.base += (colour - self.base) * disc[..., None]
            if self.spec.time == "night":  # the moon's seas
                seas = np.exp(
                    -(
                        ((self.xs - sx - radius * 0.3 / self.aspect) * self.aspect) ** 2
                        + (self.ys - sy + radius * 0.2) ** 2
                    )
                    / (2 * (radius * 0.35) ** 2)
                )
                self.base -= (seas * disc * 0.12)[..., None]
        self.sun_visible = radius > 0
        self.sun_colour = sun.colour

    def _stars(self, count: int, below: float) -> None:
        r = self.rng
        xs = r.uniform(0, 1, count)
        ys = r.uniform(0, below, count) ** 1.3 * below / max(below**1.3, 1e-6)
        sizes = r.uniform(0.5, 1.4, count) * self.px
        glints = r.uniform(0.6, 1.0, count)
        omegas = r.uniform(1.0, 4.0, count)
        phases = r.uniform(0, 2 * math.pi, count)
        cols = np.clip((xs * self.sw).astype(int), 0, self.sw - 1)
        rows = np.clip((ys * self.sh).astype(int), 0, self.sh - 1)
        # only on open, dark sky: not behind the land, nor in a glow
        keep = (self.open_sky[rows, cols] > 0.9) & (self.base[rows, cols].max(axis=1) < 0.3)
        if self.spec.time == "night":
            far = np.hypot((xs - self.sun_x) * self.aspect, ys - self.sun_y)
            keep &= far > 0.08
        star = {
            "x": xs[keep],
            "y": ys[keep],
            "size": sizes[keep],
            "glint": glints[keep],
            "w": omegas[keep],
            "p": phases[keep],
        }

        def draw(img: np.ndarray, t: float) -> None:
            twinkle = 0.55 + 0.45 * np.sin(self.clock.omegas(star["w"]) * t + star["p"])
            shift = 4
            px = np.round(star["x"] * self.width * 16).astype(int)
            py = np.round(star["y"] * self.height * 16).astype(int)
            radii = np.round(np.maximum(0.6, star["size"] * twinkle) * 16).astype(int)
            levels = np.round(150 + 105 * star["glint"] * twinkle).astype(int)
            for x, y, rad, v in zip(
                px.tolist(), py.tolist(), radii.tolist(), levels.tolist(), strict=True
            ):
                cv2.circle(img, (x, y), rad, (v, v, min(255, v + 8)), -1, cv2.LINE_AA, shift)

        self.big_steps.append(draw)

    def _clouds(self) -> None:
        spec, pal, r = self.spec, self.palette, self.rng
        cover = _COVER[spec.weather]
        if spec.weather == "clear":
            cover = 0.0 if spec.time == "night" else 0.18
        if cover <= 0.0:
            return
        rows = max(2, int(self.sh * min(1.0, self.hz + 0.02)))
        noise = _tileable_noise(r, rows, self.sw, scale=self.sw / 8.0)
        fine = _tileable_noise(r, rows, self.sw, scale=self.sw / 30.0)
        density = noise * 0.88 + fine * 0.12
        # clouds thin out toward the horizon's haze and the zenith's clear air
        y = self.ys[:rows] / max(self.hz, 1e-3)
        shape = np.clip(1.0 - np.abs(y - 0.35) * 1.1, 0.2, 1.0)
        threshold = 0.62 - 0.42 * cover
        alpha = np.clip((density * shape - threshold) / 0.22, 0.0, 1.0)
        alpha = alpha * (0.55 + 0.45 * cover)
        thick = np.clip((density * shape - threshold) / 0.45, 0.0, 1.0)
        below = np.roll(density, -max(1, rows // 25), axis=0)
        core = 0.55 if cover < 0.7 else 0.3  # an overcast sky is one even sheet
        light = np.clip(0.9 - core * thick**1.5 + (below - density) * 4.0, 0.0, 1.0)
        colour = pal.cloud_shade + (pal.cloud_lit - pal.cloud_shade) * light[..., None]
        texture = np.dstack([colour * alpha[..., None], alpha]).astype(np.float32)
        speed = float(r.uniform(0.015, 0.035)) * (2.5 if spec.windy else 1.0)
        speed *= float(r.choice([-1.0, 1.0]))
        if spec.weather == "storm":
            speed *= 2.0
        sky = self.open_sky[:rows]

        def draw(small: np.ndarray, t: float) -> None:
            v = float(self.clock.speeds(np.array([speed]), 1.0)[0])
            shift = (v * t % 1.0) * self.sw
            k = int(shift)
            f = np.float32(shift - k)
            a = np.roll(texture, k, axis=1)
            b = np.roll(texture, k + 1, axis=1)
            layer = a + (b - a) * f
            cover_ = layer[..., 3] * sky[:rows]
            view = small[:rows]
            view *= (1.0 - cover_)[..., None]
            view += layer[..., :3] * sky[:rows, :, None]

        self.small_steps.append(draw)

    # ---- features on the horizon

    def _profile_fill(
        self,
        profile: np.ndarray,
        top: Colour,
        bottom: Colour,
        depth: float = 0.25,
        shade: np.ndarray | None = None,
    ) -> np.ndarray:
        """Fill everything below `profile` (a y per column) with a vertical
        gradient from `top` (at the edge) to `bottom` (`depth` lower); the
        coverage (antialiased) is returned and taken from the open sky."""
        edge: np.ndarray = np.clip((self.ys - profile[None, :]) * self.sh + 0.5, 0.0, 1.0)
        u = np.clip((self.ys - profile[None, :]) / depth, 0.0, 1.0)[..., None]
        colour = top * (1 - u) + bottom * u
        if shade is not None:  # light and shadow on the slopes, strongest by the ridge
            below = np.exp(-np.clip(self.ys - profile[None, :], 0, None) / min(0.08, depth * 0.5))
            colour = colour * (1.0 + (shade[None, :] - 1.0) * below)[..., None]
        self.base += (colour - self.base) * edge[..., None]
        self.open_sky *= 1.0 - edge
        return edge

    def _material(self, name: str) -> Colour:
        pal = self.palette
        material = _MATERIALS[name]
        if pal.ground is not None and name in ("grass", "forest", "sand", "rock"):
            material = _toward(material, pal.ground, 0.75)
        if self.spec.weather == "snow" and name in ("grass", "rock", "sand", "forest"):
            material = _mix(material, _MATERIALS["snow"], 0.8 if name != "forest" else 0.35)
        if pal.invented:
            material = _mix(material, pal.sky[1], 0.5)
        return material

    def _slope_shade(self, profile: np.ndarray, strength: float) -> np.ndarray:
        slope = np.gradient(profile) * self.sw
        side = 1.0 if self.sun_x > 0.5 else -1.0
        lit = np.tanh(slope * 3.0) * side
        width = max(1, self.sw // 120)
        kernel = np.hanning(4 * width + 3)
        lit = np.convolve(np.pad(lit, 2 * width + 1, mode="edge"), kernel / kernel.sum(), "valid")
        shade: np.ndarray = 1.0 + strength * lit
        return shade.astype(np.float32)

    def _mountains(self, water: bool) -> None:
        r, pal = self.rng, self.palette
        n = self.sw
        x = np.linspace(0, 1, n)
        layers = 3 if not water else 2
        for k in range(layers):
            far = 1.0 - k / max(1, layers - 1) if layers > 1 else 0.0
            height = float(r.uniform(0.18, 0.3)) * (1.0 - 0.25 * k) * (self.hz / 0.65)
            peaks = int(r.integers(2, 5))
            px = r.uniform(-0.1, 1.1, peaks)
            ph = r.uniform(0.55, 1.0, peaks) * height
            slope = r.uniform(1.0, 2.2, peaks) * height * 1.6
            rise = np.max(ph[:, None] - slope[:, None] * np.abs(x[None, :] - px[:, None]), axis=0)
            rise = np.maximum(rise, 0.02) + _noise1d(r, n, octaves=6, base=6) * height * 0.22
            base = self.hz + 0.005 + 0.012 * k
            profile = (base - np.maximum(rise, 0.0)).astype(np.float32)
            rock = self._material("rock")
            top = pal.lit(rock, haze=0.35 * far + 0.08)
            bottom = pal.lit(rock * 0.75, haze=0.5 * far + 0.2)
            shade = self._slope_shade(
                profile, (0.25 * (1.0 - 0.5 * far)) * (0.3 + 0.7 * pal.daylight)
            )
            edge = self._profile_fill(profile, top, bottom, depth=height + 0.05, shade=shade)
            grain = _tileable_noise(r, self.sh, self.sw, scale=self.sw / 25.0) - 0.5
            self.base *= (1.0 + 0.16 * (1.0 - 0.6 * far) * grain * edge)[..., None]
            # snow caps on the high ground
            line = base - height * (0.55 if self.spec.weather != "snow" else 0.25)
            cap = np.clip((line - self.ys) * self.sh * 0.5, 0.0, 1.0) * edge
            cap *= np.clip((profile[None, :] + 0.06 - self.ys) * 40, 0, 1) * 0.9
            snow = pal.lit(_MATERIALS["snow"], haze=0.35 * far) * shade[None, :, None]
            self.base += (snow - self.base) * cap[..., None]

    def _volcano(self, water: bool) -> None:
        r, pal, spec = self.rng, self.palette, self.spec
        n = self.sw
        x = np.linspace(0, 1, n)
        cx = float(r.uniform(0.35, 0.65))
        peak = self.hz - float(r.uniform(0.3, 0.38)) * (self.hz / 0.7)
        crater = float(r.uniform(0.035, 0.055))
        half = float(r.uniform(0.32, 0.42))
        u = np.clip((np.abs(x - cx) - crater) / half, 0.0, 1.0)
        profile = peak + (self.hz + 0.01 - peak) * u**0.8 + _noise1d(r, n) * 0.012
        profile = np.where(np.abs(x - cx) < crater, peak + 0.012, profile).astype(np.float32)
        basalt = self._material("basalt")
        shade = self._slope_shade(profile, 0.15)
        ember = _c(0.16, 0.06, 0.05) * (1.0 - pal.daylight)  # lit from within at night
        top, bottom = pal.lit(basalt * 1.3, 0.2) + ember, pal.lit(basalt, 0.1) + ember * 0.4
        self._profile_fill(profile, top, bottom, 0.3, shade)
        # lava: streams down the flanks, a glow over the crater
        lava = np.zeros((self.sh, self.sw), np.float32)
        streams = int(r.integers(2, 4)) + (1 if spec.intense else 0)
        for _ in range(streams):
            side = float(r.choice([-1.0, 1.0]))
            reach = float(r.uniform(0.4, 0.9))
            frac = float(r.uniform(0.15, 0.7))
            wiggle, turn = float(r.uniform(0.004, 0.012)), float(r.uniform(0, 6.28))
            pts = []
            for k in range(16):
                f = k / 15 * reach
                y = peak + 0.012 + (self.hz - peak) * f
                w = crater * 0.5 + half * f ** (1 / 0.8) * frac
                xk = cx + side * w + wiggle * math.sin(f * 14 + turn)
                pts.append((xk * self.sw * 16, y * self.sh * 16))
            cv2.polylines(lava, [np.array(pts, np.int32)], False, 1.0, 1, cv2.LINE_AA, 4)
        lava = cv2.GaussianBlur(lava, (0, 0), 0.6).astype(np.float32)
        lava *= np.clip((self.ys - peak) * 60, 0, 1)
        d2 = ((self.xs - cx) * self.aspect) ** 2 + ((self.ys - peak) * 1.3) ** 2
        glow = np.exp(-d2 / (2 * 0.12**2)).astype(np.float32)
        hot, core = _c(1.0, 0.3, 0.05), _c(1.0, 0.5, 0.12)
        night = 1.0 - pal.daylight
        glow_strength = 0.35 + 0.55 * night + (0.25 if spec.intense else 0.0)
        self.base += (1.0 - self.base) * (glow * glow_strength * 0.6)[..., None] * hot
        haze = np.exp(-d2 / (2 * 0.3**2)) * self.open_sky * glow_strength * 0.3
        self.base += (1.0 - self.base) * haze[..., None] * _c(0.8, 0.25, 0.1)
        flow = np.sin(self.ys * 90.0 + np.float32(r.uniform(0, 6))).astype(np.float32)
        flow_c = np.cos(self.ys * 90.0 + np.float32(r.uniform(0, 6))).astype(np.float32)
        omega = float(r.uniform(2.0, 3.0))
        pulse_w = float(r.uniform(1.2, 2.0))
        crater_mask = np.exp(-d2 / (2 * 0.03**2)).astype(np.float32)

        def draw(small: np.ndarray, t: float) -> None:
            w = self.clock.omega(omega)
            wave = np.float32(math.cos(w * t)) * flow - np.float32(math.sin(w * t)) * flow_c
            heat = lava * (0.75 + 0.25 * np.broadcast_to(wave, lava.shape))
            pulse = 0.85 + 0.15 * math.sin(self.clock.omega(pulse_w) * t)
            small += (core - small) * (heat * 0.95)[..., None]
            small += (
                (1.0 - small)
                * ((glow * 0.25 * pulse + crater_mask * 0.6) * glow_strength)[..., None]
                * hot
            )

        self.small_steps.append(draw)
        if spec.intense or night > 0.5:
            self._embers(cx, peak, crater, 70 if spec.intense else 30)
        self._plume(cx, peak)

    def _plume(self, cx: float, peak: float) -> None:
        r, pal = self.rng, self.palette
        rows = max(2, int(peak * self.sh))
        noise = _tileable_noise(r, rows, self.sw, scale=self.sw / 12.0)
        noise = np.concatenate([noise, noise], axis=0)  # tiles vertically for scrolling
        width = 0.05 + (peak - self.ys[:rows]) * 0.5
        spread = np.exp(-(((self.xs - cx) * self.aspect) ** 2) / (2 * width**2))
        colour = _mix(pal.lit(_c(0.25, 0.23, 0.23)), _c(0.5, 0.18, 0.08), 0.3 * (1 - pal.daylight))
        speed = 0.05

        def draw(small: np.ndarray, t: float) -> None:
            v = float(self.clock.speeds(np.array([speed]), 1.0)[0])
            k = int((v * t % 1.0) * rows)
            layer = noise[k : k + rows] if k + rows <= len(noise) else noise[:rows]
            alpha = np.clip((layer - 0.35) * 2.0, 0, 1) * spread * 0.8
            view = small[:rows]
            view += (colour - view) * (alpha * self.open_sky[:rows])[..., None]

        self.small_steps.append(draw)

    def _embers(self, cx: float, peak: float, crater: float, count: int) -> None:
        r = self.rng
        life = r.uniform(1.0, 2.2, count)
        offset = r.uniform(0, 1, count)
        vx = r.normal(0, 0.06, count)
        vy = r.uniform(0.2, 0.45, count)
        x0 = cx + r.uniform(-crater, crater, count)
        size = r.uniform(0.8, 2.0, count) * self.px

        def draw(img: np.ndarray, t: float) -> None:
            lives = (
                life
                if self.clock.period is None
                else self.clock.period / np.maximum(1.0, np.round(self.clock.period / life))
            )
            age = ((t / lives + offset) % 1.0) * lives
            x = x0 + vx * age
            y = peak - vy * age + 0.22 * age**2
            fade = 1.0 - age / lives
            for xi, yi, f, s in zip(
                x.tolist(), y.tolist(), fade.tolist(), size.tolist(), strict=True
            ):
                colour = (255, int(120 + 120 * f), int(40 * f))
                cv2.circle(
                    img,
                    (int(xi * self.width * 16), int(yi * self.height * 16)),
                    int(max(0.5, s * (0.4 + 0.6 * f)) * 16),
                    colour,
                    -1,
                    cv2.LINE_AA,
                    4,
                )

        self.big_steps.append(draw)

    def _city(self, water: bool) -> None:
        r, pal = self.rng, self.palette
        w, h = self.width, self.height
        layer = np.zeros((h, w, 3), np.uint8)
        mask = np.zeros((h, w), np.uint8)
        night = 1.0 - pal.daylight
        lit_share = 0.05 + 0.55 * max(0.0, night - 0.2) / 0.8
        base_y = self.hz + 0.005
        win_w = max(1, round(h * 0.010))
        win_h = max(1, round(h * 0.014))
        gap_x = max(1, round(win_w * 0.9))
        gap_y = max(1, round(win_h * 0.8))
        warm = (
            _c(1.0, 0.83, 0.52) if pal.accent is None else _mix(_c(1, 0.85, 0.6), pal.accent, 0.6)
        )
        if night > 0.5:  # the city's light on the sky above it
            above = (
                np.exp(-(((self.ys - self.hz) / 0.22) ** 2)) * (self.ys < self.hz) * self.open_sky
            )
            self.base += (above * 0.16)[..., None] * _mix(warm, _c(0.6, 0.3, 0.3), 0.5)
        blinkers: list[tuple[int, int]] = []
        for row in range(2):
            x = float(r.uniform(-0.04, 0.0))
            far = row == 0
            while x < 1.02:
                bw = float(r.uniform(0.035, 0.085)) * (1.15 if far else 1.0)
                bh = float(r.uniform(0.1, 0.36 if far else 0.28)) * (self.hz / 0.75)
                if far:
                    bh *= 1.15
                wall = pal.lit(
                    _c(0.42, 0.46, 0.54) * float(r.uniform(0.7, 1.1)), 0.35 if far else 0.12
                )
                if night > 0.5:
                    wall = _c(0.05, 0.06, 0.09) * (1.3 if far else 0.8)
                wall = _mix(wall, pal.fog, self.fog * (0.6 if far else 0.4))
                x0, x1 = int(x * w), int((x + bw) * w)
                y0, y1 = int((base_y - bh) * h), int(base_y * h) + 1
                cv2.rectangle(layer, (x0, y0), (x1, y1), _rgb255(wall), -1)
                cv2.rectangle(mask, (x0, y0), (x1, y1), 255, -1)
                if r.uniform() < 0.3:  # an antenna
                    ax = (x0 + x1) // 2
                    top = y0 - int(h * float(r.uniform(0.02, 0.05)))
                    cv2.line(layer, (ax, y0), (ax, top), _rgb255(wall), max(1, h // 300))
                    cv2.line(mask, (ax, y0), (ax, top), 255, max(1, h // 300))
                    blinkers.append((ax, top))
                share = lit_share * float(r.uniform(0.5, 1.5))
                glass = _rgb255(_mix(wall, pal.sky[1], 0.35) * 0.85)
                lit = _rgb255(warm * (0.8 if far else 1.0))
                cool = _rgb255(_c(0.75, 0.85, 1.0) * (0.8 if far else 1.0))
                margin = max(1, int((x1 - x0) * 0.12))
                for wy in range(y0 + margin, y1 - win_h - margin, win_h + gap_y):
                    for wx in range(x0 + margin, x1 - win_w - margin + 1, win_w + gap_x):
                        on = r.uniform() < share
                        colour = (lit if r.uniform() < 0.8 else cool) if on else glass
                        cv2.rectangle(layer, (wx, wy), (wx + win_w - 1, wy + win_h - 1), colour, -1)
                x += (
                    bw * float(r.uniform(0.85, 1.1)) if not far else bw * float(r.uniform(0.6, 1.0))
                )
        # the small canvas gets the city too, for reflections and the sky mask
        small = cv2.resize(layer, (self.sw, self.sh), interpolation=cv2.INTER_AREA)
        cover = cv2.resize(mask, (self.sw, self.sh), interpolation=cv2.INTER_AREA)
        alpha = (cover.astype(np.float32) / 255.0)[..., None]
        colour = small.astype(np.float32) / 255.0 / np.maximum(alpha, 1e-3)
        self.base += (colour - self.base) * alpha
        self.open_sky *= 1.0 - alpha[..., 0]
        blink_w = float(r.uniform(2.0, 3.5))
        dot = max(1, round(h / 250))
        if night > 0.3 and not water:  # street lamps along the foot of the buildings
            lamp_y = int((base_y + 0.03) * h)
            step = max(4, int(w * float(r.uniform(0.05, 0.08))))
            for lx in range(int(r.integers(0, step)), w, step):
                cv2.circle(
                    layer, (lx, lamp_y), max(1, round(h / 300)), _rgb255(warm), -1, cv2.LINE_AA
                )
                cv2.circle(mask, (lx, lamp_y), max(1, round(h / 300)), 255, -1, cv2.LINE_AA)

        def draw(img: np.ndarray, t: float) -> None:
            cv2.copyTo(layer, mask, img)
            if night > 0.3 and math.sin(self.clock.omega(blink_w) * t) > 0.3:
                for bx, by in blinkers:
                    cv2.circle(img, (bx, by), dot, (255, 60, 50), -1, cv2.LINE_AA)

        self.big_steps.append(draw)

    def _forest(self, water: bool) -> None:
        r, pal = self.rng, self.palette
        n = self.sw
        x = np.linspace(0, 1, n)[None, :]
        layers = 3
        green = self._material("forest")
        for k in range(layers):
            far = 1.0 - k / (layers - 1)
            base = self.hz + 0.01 + 0.05 * k
            spacing = 0.018 * (1 + 0.8 * k)
            count = int(1.3 / spacing)
            tx = np.sort(r.uniform(-0.05, 1.05, count))[:, None]
            th = (r.uniform(0.05, 0.12, count) * (1 + 0.7 * k))[:, None] * (self.hz / 0.62)
            tw = th * r.uniform(0.22, 0.34, count)[:, None] / self.aspect
            dx = np.abs(x - tx)
            tops = base - th + dx / np.maximum(tw, 1e-4) * th  # conifers: a cone each
            profile = np.minimum(np.min(tops, axis=0), base).astype(np.float32)
            top = pal.lit(green * (1.15 - 0.1 * k), haze=0.6 * far + 0.05)
            bottom = pal.lit(green * 0.7, haze=0.5 * far)
            self._profile_fill(profile, top, bottom, depth=0.15)
        self.ground_top = max(self.ground_top if self.ground_top < 1 else 0, self.hz + 0.12)

    def _desert(self, water: bool) -> None:
        r, pal = self.rng, self.palette
        n = self.sw
        x = np.linspace(0, 1, n)
        sand = self._material("sand")
        for k in range(3):
            far = 1.0 - k / 2
            base = self.hz + 0.02 + 0.09 * k
            amp = float(r.uniform(0.03, 0.07)) * (1 + 0.5 * k)
            f = float(r.uniform(0.8, 2.0)) / (1 + 0.3 * k)
            phase = float(r.uniform(0, 6.28))
            wave = np.sin(2 * math.pi * f * x + phase)
            crest = np.abs(np.sin(2 * math.pi * f * 0.5 * x + phase * 0.5))
            profile = (base - amp * (0.6 + 0.4 * wave) * (0.6 + 0.4 * crest)).astype(np.float32)
            shade = self._slope_shade(profile, 0.28 * pal.daylight + 0.05)
            top = pal.lit(sand * 1.05, haze=0.45 * far)
            bottom = pal.lit(sand * 0.85, haze=0.35 * far)
            self._profile_fill(profile, top, bottom, depth=0.2, shade=shade)
        self.ground_top = self.hz + 0.2

    def _fields(self, water: bool) -> None:
        r, pal = self.rng, self.palette
        n = self.sw
        x = np.linspace(0, 1, n)
        grass = self._material("grass")
        for k in range(2):
            far = 1.0 - k
            base = self.hz + 0.01 + 0.03 * k
            amp = float(r.uniform(0.03, 0.08)) / (1 + k)
            profile = base - amp * (
                0.5
                + 0.5
                * np.sin(2 * math.pi * float(r.uniform(0.6, 1.6)) * x + float(r.uniform(0, 6.28)))
            )
            profile = (profile + _noise1d(r, n) * 0.006).astype(np.float32)
            top = pal.lit(grass * (1.1 - 0.15 * k), haze=0.55 * far + 0.1)
            bottom = pal.lit(grass * 0.9, haze=0.4 * far + 0.1)
            self._profile_fill(profile, top, bottom, depth=0.2)

    def _landscape(self, water: bool) -> None:
        """Rolling hills: the setting when none is named."""
        r, pal = self.rng, self.palette
        n = self.sw
        x = np.linspace(0, 1, n)
        grass = self._material("grass")
        layers = int(r.integers(2, 4))
        for k in range(layers):
            far = 1.0 - k / max(1, layers - 1)
            base = self.hz + 0.02 * k
            profile = np.full(n, base)
            for _ in range(3):
                freq = float(r.uniform(0.8, 3.0)) * (1.0 + 0.4 * k)
                profile -= (
                    float(r.uniform(0.01, 0.05))
                    / (1 + 0.4 * k)
                    * (1 + np.sin(2 * math.pi * freq * x + float(r.uniform(0, 6.28))))
                )
            profile = profile.astype(np.float32)
            material = grass if k or self.rng.uniform() < 0.5 else self._material("rock")
            top = pal.lit(material * (1.1 - 0.1 * k), haze=0.55 * far + 0.05)
            bottom = pal.lit(material * 0.85, haze=0.4 * far + 0.05)
            self._profile_fill(
                profile, top, bottom, depth=0.25, shade=self._slope_shade(profile, 0.1)
            )

    # ---- the ground in front

    def _ground(self, far: list[str], flowers: bool = True) -> None:
        pal = self.palette
        kind = "grass"
        if "desert" in far:
            kind = "sand"
        elif "volcano" in far:
            kind = "basalt"
        elif "city" in far:
            kind = "asphalt"
        elif "forest" in far:
            kind = "forest"
        elif "mountains" in far and "fields" not in far:
            kind = "rock" if self.rng.uniform() < 0.4 else "grass"
        material = self._material(kind)
        edge = np.clip((self.ys - self.hz) * self.sh + 0.5, 0, 1) * self.open_sky
        depth = np.clip((self.ys - self.hz) / max(1e-3, 1 - self.hz), 0, 1)
        near = pal.lit(material * 0.8, 0.0)
        farc = pal.lit(material * 1.05, 0.45)
        colour = farc + (near - farc) * depth[..., None]
        if kind in ("grass", "sand"):
            rows = np.sin(9.0 * (self.xs - 0.5) / (depth + 0.08) * math.pi)
            colour = colour * (1.0 + 0.05 * rows * depth)[..., None]
        self.base += (colour - self.base) * edge[..., None]
        self.open_sky *= 1 - edge
        if self.ground_top >= 1.0:
            self.ground_top = self.hz + 0.2
        if kind in ("grass", "sand", "forest"):
            self._breeze(edge * depth)
        sunny = self.spec.weather in ("clear", "clouds") and pal.daylight > 0.4
        if "fields" in far and sunny and flowers:
            self._flowers()

    def _flowers(self) -> None:
        """Wildflowers in the grass, larger nearer, nodding in the wind."""
        r, pal = self.rng, self.palette
        count = int(r.integers(60, 120))
        depth = r.uniform(0, 1, count) ** 0.7
        ys = self.hz + 0.04 + (1.0 - self.hz - 0.04) * depth
        xs = r.uniform(0, 1, count)
        named = [_named(c) for c in self.spec.accent_colours]
        choices = named or [_c(1, 0.92, 0.45), _c(0.97, 0.97, 0.95), _c(0.95, 0.5, 0.65)]
        colours = [
            _rgb255(choices[int(i)] * pal.ambient) for i in r.integers(len(choices), size=count)
        ]
        sizes = (0.4 + 2.2 * depth) * self.px
        phases = r.uniform(0, 6.28, count)

        def draw(img: np.ndarray, t: float) -> None:
            nod = 0.002 * np.sin(self.clock.omega(1.4) * t + phases) * depth
            px = np.round((xs + nod) * self.width * 16).astype(int).tolist()
            py = np.round(ys * self.height * 16).astype(int).tolist()
            radii = np.round(sizes * 16).astype(int).tolist()
            for x, y, radius, colour in zip(px, py, radii, colours, strict=True):
                cv2.circle(img, (x, y), radius, colour, -1, cv2.LINE_AA, 4)

        self.big_steps.append(draw)

    def _breeze(self, where: np.ndarray) -> None:
        """Wind running through grass: bands of light crossing the ground."""
        r = self.rng
        k = float(r.uniform(5.0, 9.0))
        phase = (k * 2 * math.pi * self.xs + 14.0 * self.ys).astype(np.float32)
        s, c = np.sin(phase), np.cos(phase)
        omega = float(r.uniform(1.0, 1.8)) * (2.0 if self.spec.windy else 1.0)
        amount = where.astype(np.float32)[..., None] * 0.07

        def draw(small: np.ndarray, t: float) -> None:
            w = self.clock.omega(omega) * t
            wave = s * np.float32(math.cos(w)) - c * np.float32(math.sin(w))
            small *= 1.0 + amount * wave[..., None]

        self.small_steps.append(draw)

    def _planet_surface(self) -> None:
        pal = self.palette
        r = self.rng
        radius = float(r.uniform(1.6, 2.6))
        cy = 1.0 - 0.18 + radius
        d = np.sqrt(((self.xs - 0.5) * self.aspect) ** 2 + (self.ys - cy) ** 2)
        edge = np.clip((radius - d) * self.sh + 0.5, 0, 1)
        rim = np.exp(-((d - radius) ** 2) / (2 * 0.012**2)) * 0.5
        material = self._material("regolith")
        depth = np.clip((radius - d) / 0.2, 0, 1)
        colour = material * (0.55 + 0.45 * (1 - depth))[..., None] * max(0.5, pal.daylight + 0.4)
        self.base += (colour - self.base) * edge[..., None]
        self.base += (rim * (1 - edge))[..., None] * _c(0.3, 0.5, 0.9)
        self.open_sky *= 1 - edge
        self.hz = 0.82
        self.ground_top = 0.86

    def _water(self, main: str) -> None:
        pal, r, spec = self.palette, self.rng, self.spec
        hz = self.hz
        start = min(self.sh - 1, int(hz * self.sh))
        mask = np.clip((self.ys - hz) * self.sh + 0.5, 0, 1) * np.ones_like(self.xs)
        shore = None
        if main == "beach":
            shore_y = (
                hz
                + float(r.uniform(0.14, 0.2))
                + 0.025
                * np.sin(
                    2 * math.pi * float(r.uniform(0.5, 1.5)) * self.xs + float(r.uniform(0, 6))
                )
            )
            shore = shore_y.astype(np.float32)
            mask = mask * np.clip((shore - self.ys) * self.sh + 0.5, 0, 1)
        if main == "river":
            d = np.clip(self.ys - hz, 0, 1)
            centre = 0.5 + 0.18 * np.sin(d * 9.0 + float(r.uniform(0, 6))) * (0.3 + d)
            half = 0.01 + 0.45 * d / max(1e-3, 1 - hz)
            band = np.clip((half - np.abs(self.xs - centre)) * self.sw * 0.5, 0, 1)
            self._ground(["forest"] if "forest" in spec.extras else ["fields"], flowers=False)
            mask = mask * band
        mask = mask.astype(np.float32)
        # mirror the picture above the horizon
        depth = np.clip((self.ys - hz) / max(1e-3, 1 - hz), 0.0, 1.0)
        mirror_y = np.clip(hz - (self.ys - hz) * 0.9, 0, hz) * self.sh - 0.5
        base_map_y = np.broadcast_to(mirror_y, (self.sh, self.sw)).astype(np.float32)
        base_map_x = np.broadcast_to(self.xs * self.sw - 0.5, (self.sh, self.sw)).astype(np.float32)
        calm = {"lake": 0.45, "river": 0.7, "ocean": 1.0, "beach": 1.0}[main]
        if spec.mood == "calm":
            calm *= 0.7
        if spec.weather == "storm" or spec.intense:
            calm *= 1.6
        reflectivity = {"lake": 0.85, "river": 0.6}.get(main, 0.4)
        deep = pal.lit(pal.water if pal.water is not None else _MATERIALS["water"], 0.0)
        deep = _mix(deep * 0.8, pal.sky[0] * 0.6, 0.4)
        fresnel = (reflectivity * (1.0 - 0.55 * depth))[..., None].astype(np.float32)
        # waves in perspective: u across, v into the distance
        dist = (self.ys - hz).clip(0.004, 1.0)
        u = ((self.xs - 0.5) / (dist + 0.05)).astype(np.float32)
        v = (1.0 / (dist + 0.05)).astype(np.float32)
        fade = np.clip(dist / 0.06, 0, 1).astype(np.float32)
        waves = []
        for i in range(3):
            ku = float(r.uniform(0.3, 1.4)) * (1 + i)
            kv = float(r.uniform(1.2, 2.6)) * (1 + 0.6 * i)
            omega = float(r.uniform(1.2, 2.2)) * (1 + 0.3 * i) * (0.7 + 0.3 * calm)
            phase = ku * u + kv * v + float(r.uniform(0, 6.28))
            waves.append(
                (
                    np.sin(phase).astype(np.float32),
                    np.cos(phase).astype(np.float32),
                    omega,
                    0.5 / (1 + i),
                )
            )
        glitter = None
        if self.sun_visible or spec.time in ("sunset", "dawn"):
            spread = 0.04 + 0.12 * depth
            glitter = (
                np.exp(-(((self.xs - self.sun_x) * self.aspect) ** 2) / (2 * spread**2))
                * (0.4 + 0.6 * depth)
            ).astype(np.float32)
        sun_colour = self.sun_colour
        foam_phase = float(r.uniform(0, 6.28))
        beach_sand = None
        if shore is not None:
            sand = self._material("sand")
            land = np.clip((self.ys - shore) * self.sh + 0.5, 0, 1)
            sd = np.clip((self.ys - shore) / 0.3, 0, 1)[..., None]
            colour = pal.lit(sand * 1.05, 0.15) * (1 - sd) + pal.lit(sand * 0.85, 0.0) * sd
            self.base += (colour - self.base) * land[..., None]
            self.open_sky *= 1 - land
            beach_sand = land
            self.ground_top = float(np.max(shore)) + 0.08
        elif main != "river" and any(
            s.kind in ("person", "car", "house", "tree") for s in spec.subjects
        ):
            self.ground_top = 0.9
        source = self.base.copy()
        region = slice(start, self.sh)
        m = mask[region][..., None]
        amp_x = (0.4 + 2.2 * depth[region]) * calm
        amp_y = (0.3 + 1.5 * depth[region]) * calm
        fres = fresnel[region]
        fade_r = fade[region]
        gl = glitter[region] if glitter is not None else None
        shore_r = shore[:, :] if shore is not None else None
        ys_r = self.ys[region]

        def draw(small: np.ndarray, t: float) -> None:
            h = np.zeros_like(waves[0][0][region])
            for s, c, omega, a in waves:
                w = self.clock.omega(omega) * t
                h += a * (s[region] * np.float32(math.cos(w)) - c[region] * np.float32(math.sin(w)))
            h *= fade_r
            map_x = base_map_x[region] + h * amp_x
            map_y = base_map_y[region] + h * amp_y
            mirrored = cv2.remap(
                source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            water = deep + (mirrored - deep) * fres
            water *= (1.0 + 0.3 * calm * h)[..., None]
            water += (0.05 * calm * h)[..., None]
            if gl is not None:
                spark = np.clip(h - 0.1, 0, None) ** 1.5 * gl * 2.5
                water += (1.0 - water) * spark[..., None] * sun_colour
            view = small[region]
            view += (water - view) * m
            if shore_r is not None:
                reach = shore_r - 0.02 * (
                    0.5 + 0.5 * math.sin(self.clock.omega(0.9) * t + foam_phase)
                )
                foam = np.exp(-(((ys_r - reach) / 0.008) ** 2)) * 0.8
                foam *= beach_sand[region] if beach_sand is not None else 1.0
                foam += np.exp(-(((ys_r - reach + 0.01) / 0.006) ** 2)) * 0.6 * m[..., 0]
                view += (_c(0.95, 0.96, 0.97) * pal.ambient.max() - view) * np.clip(foam, 0, 1)[
                    ..., None
                ]

        self.small_steps.append(draw)
        self.water_y = (hz, float(np.max(shore)) if shore is not None else 1.0)

    # ---- weather and light

    def _fog(self) -> None:
        r, pal = self.rng, self.palette
        noise = _tileable_noise(r, self.sh, self.sw, scale=self.sw / 6.0)
        height = np.clip(1.0 - np.abs(self.ys - self.hz) * 2.0, 0.4, 1.0)
        amount = self.fog
        colour = pal.fog
        speed = float(r.uniform(0.01, 0.025)) * float(r.choice([-1.0, 1.0]))

        def draw(small: np.ndarray, t: float) -> None:
            v = float(self.clock.speeds(np.array([speed]), 1.0)[0])
            k = int((v * t % 1.0) * self.sw)
            drift = np.roll(noise, k, axis=1)
            density = amount * height * (0.6 + 0.4 * drift)
            small += (colour - small) * density[..., None]

        self.small_steps.append(draw)

    def _lightning(self) -> None:
        r = self.rng
        first = float(r.uniform(0.25, 0.7))
        gap = float(r.uniform(1.3, 2.4))
        bolts = [self._bolt(r) for _ in range(6)]
        sky = self.open_sky.copy()

        def flash_at(t: float) -> tuple[float, int]:
            span = (
                gap
                if self.clock.period is None
                else self.clock.period / max(1, round(self.clock.period / gap))
            )
            k = math.floor((t - first) / span) if t >= first else -1
            if k < 0:
                return 0.0, 0
            since = t - first - k * span
            level = math.exp(-since / 0.06) + 0.6 * math.exp(-max(0.0, since - 0.12) / 0.05) * (
                since > 0.12
            )
            return (level if since < 0.45 else 0.0), k

        def small_flash(small: np.ndarray, t: float) -> None:
            level, _ = flash_at(t)
            if level > 0.01:
                small += (_c(0.85, 0.85, 1.0) - small) * (level * (0.35 + 0.45 * sky))[..., None]

        def bolt(img: np.ndarray, t: float) -> None:
            level, k = flash_at(t)
            if level < 0.2:
                return
            pts = bolts[k % len(bolts)]
            scaled = [
                np.round(p * np.array([self.width, self.height]) * 16).astype(np.int32) for p in pts
            ]
            glow = max(2, self.height // 90)
            cv2.polylines(img, scaled, False, (170, 160, 255), glow, cv2.LINE_AA, 4)
            cv2.polylines(img, scaled, False, (255, 255, 255), max(1, glow // 3), cv2.LINE_AA, 4)

        self.small_steps.append(small_flash)
        self.big_steps.append(bolt)

    def _bolt(self, r: np.random.Generator) -> list[np.ndarray]:
        x, y = float(r.uniform(0.2, 0.8)), 0.0
        path = [(x, y)]
        while y < self.hz:
            y += float(r.uniform(0.03, 0.07))
            x += float(r.normal(0, 0.025))
            path.append((x, min(y, self.hz)))
        main = np.array(path, np.float32)
        branch_at = int(r.integers(1, max(2, len(path) - 1)))
        bx, by = path[branch_at]
        branch = [(bx, by)]
        for _ in range(int(r.integers(2, 5))):
            bx += float(r.normal(0.03, 0.02)) * float(r.choice([-1, 1]))
            by += float(r.uniform(0.02, 0.05))
            branch.append((bx, by))
        return [main, np.array(branch, np.float32)]

    def _lights(self) -> None:
        """Soft lights drifting on Lissajous paths: an invented palette's motion."""
        r, pal = self.rng, self.palette
        lights = []
        for i in range(int(r.integers(3, 7))):
            colour = (
                _mix(pal.sky[2], _c(1, 1, 1), 0.3) if i % 2 else _mix(pal.sky[1], pal.sky[2], 0.5)
            )
            cx, cy = float(r.uniform(0.1, 0.9)), float(r.uniform(0.1, self.hz))
            ax, ay = float(r.uniform(0.05, 0.2)), float(r.uniform(0.02, 0.08))
            wx, wy = float(r.uniform(0.3, 1.2)), float(r.uniform(0.3, 1.2))
            px, py = float(r.uniform(0, 6.283)), float(r.uniform(0, 6.283))
            radius, power = float(r.uniform(0.06, 0.2)), float(r.uniform(0.25, 0.6))
            lights.append((colour, cx, cy, ax, ay, wx, wy, px, py, radius, power))

        def draw(small: np.ndarray, t: float) -> None:
            for colour, cx, cy, ax, ay, wx, wy, px, py, radius, power in lights:
                x = cx + ax * math.sin(self.clock.omega(wx) * t + px)
                y = cy + ay * math.sin(self.clock.omega(wy) * t + py)
                d2 = ((self.xs - x) * self.aspect) ** 2 + (self.ys - y) ** 2
                light = np.exp(-d2 / (2.0 * radius * radius)) * power
                small += (1.0 - small) * light[..., None] * colour

        self.small_steps.append(draw)

    # ---- whole-picture settings

    def _space(self, grounded: bool) -> None:
        r, pal = self.rng, self.palette
        top, bottom = _c(0.005, 0.006, 0.02), _c(0.02, 0.025, 0.06)
        self.base[:] = top + (bottom - top) * self.ys[..., None]
        neb = _tileable_noise(r, self.sh, self.sw, scale=self.sw / 5.0)
        hue = pal.accent if pal.accent is not None else _c(0.45, 0.2, 0.6)
        band = np.exp(-(((self.ys - 0.4 - 0.3 * (self.xs - 0.5)) / 0.18) ** 2))
        self.base += (np.clip(neb - 0.45, 0, 1) * 0.35 * band)[..., None] * hue
        count = int(r.integers(1, 3))
        for i in range(count):
            radius = float(r.uniform(0.13, 0.22)) if i == 0 else float(r.uniform(0.03, 0.06))
            px = float(r.uniform(0.15, 0.85))
            py = float(r.uniform(0.15, 0.45))
            named = self.spec.ground_colour or next(iter(self.spec.accent_colours[1:]), None)
            colour = _named(named) if named else _pick(r, _PLANET_COLOURS)
            self._planet(px, py, radius, colour, ring=i == 0 and r.uniform() < 0.5)

    def _planet(self, px: float, py: float, radius: float, colour: Colour, ring: bool) -> None:
        r = self.rng
        dx = (self.xs - px) * self.aspect / radius
        dy = (self.ys - py) / radius
        d2 = dx**2 + dy**2
        disc = np.clip((1.0 - np.sqrt(d2)) * radius * self.sh + 0.5, 0, 1)
        nz = np.sqrt(np.clip(1 - d2, 0, 1))
        lx, ly = float(r.uniform(-0.8, 0.8)), float(r.uniform(-0.7, 0.2))
        lz = math.sqrt(max(0.05, 1 - lx * lx - ly * ly))
        lambert = np.clip(dx * lx + dy * ly + nz * lz, 0, 1)
        bands = 1.0 + 0.12 * np.sin(dy * float(r.uniform(8, 18)) + np.sin(dx * 3) * 0.8)
        shade = (0.06 + 0.94 * lambert) * bands
        body = colour * shade[..., None]
        self.base += (body - self.base) * disc[..., None]
        atmosphere = np.exp(-((np.sqrt(d2) - 1.0) ** 2) / (2 * 0.05**2)) * (1 - disc) * 0.35
        self.base += (atmosphere * np.clip(dx * lx + dy * ly + 0.4, 0, 1))[..., None] * _mix(
            colour, _c(1, 1, 1), 0.5
        )
        self.open_sky *= 1 - disc
        if ring:
            tilt = float(r.uniform(0.2, 0.35))
            ring_d = np.sqrt((dx * 1.0) ** 2 + (dy / tilt) ** 2)
            ring_a = np.clip(1 - np.abs(ring_d - 1.75) / 0.35, 0, 1) * 0.8
            front = (dy > 0) | (d2 > 1)
            ring_a *= front
            ring_c = _mix(colour, _c(0.9, 0.85, 0.75), 0.5) * 0.9
            self.base += (ring_c - self.base) * ring_a[..., None]
            self.open_sky *= 1 - ring_a

    def _underwater(self) -> None:
        r, pal = self.rng, self.palette
        light = max(0.25, pal.daylight)
        top = pal.water if pal.water is not None else _c(0.16, 0.62, 0.72)
        top = top * light
        bottom = _c(0.01, 0.08, 0.16)
        self.base[:] = top + (bottom - top) * (self.ys**0.7)[..., None]
        self.hz = 0.0
        # the sea floor, with coral and rocks
        n = self.sw
        floor = (0.84 + _noise1d(r, n) * 0.04).astype(np.float32)
        sand = _c(0.42, 0.46, 0.38) * light
        self._profile_fill(floor, sand, sand * 0.6, depth=0.16)
        for _ in range(int(r.integers(4, 8))):
            cx, w = float(r.uniform(0, 1)), float(r.uniform(0.03, 0.08))
            hgt = float(r.uniform(0.05, 0.14))
            named = next(iter(self.spec.accent_colours), self.spec.ground_colour)
            colour = _named(named) if named else _pick(r, _CORAL_COLOURS)
            colour = _mix(colour * light, top * 0.6, 0.35)
            d = ((self.xs - cx) * self.aspect / w) ** 2 + ((self.ys - 0.86) / hgt) ** 2
            blob = np.clip((1 - d) * 6, 0, 1) * (self.ys < 0.9)
            self.base += (colour - self.base) * blob[..., None]
        self.ground_top = 0.86
        # rays and caustics
        k = float(r.uniform(6, 10))
        slant = float(r.uniform(0.2, 0.45))
        phase = (2 * math.pi * k * (self.xs + slant * self.ys)).astype(np.float32)
        s, c = np.sin(phase), np.cos(phase)
        fade = np.clip(1.0 - self.ys * 1.3, 0, 1).astype(np.float32)
        caustic_a = (self.xs * 40 + self.ys * 25).astype(np.float32)
        caustic_b = (self.xs * -30 + self.ys * 37).astype(np.float32)
        caustic_c = (self.xs * 12 - self.ys * 50).astype(np.float32)
        near_top = np.clip(1 - self.ys / 0.3, 0, 1) + np.clip((self.ys - 0.8) / 0.2, 0, 1)
        near_top = near_top.astype(np.float32)
        ray_colour = _mix(top, _c(1, 1, 1), 0.5)
        w1, w2, w3 = (float(r.uniform(0.6, 1.4)) for _ in range(3))

        def draw(small: np.ndarray, t: float) -> None:
            w = self.clock.omega(0.25) * t
            rays = np.clip(s * math.cos(w) - c * math.sin(w), 0, 1) ** 6 * fade * 0.35
            cs = (
                np.sin(caustic_a + self.clock.omega(w1) * t)
                + np.sin(caustic_b + self.clock.omega(w2) * t)
                + np.sin(caustic_c + self.clock.omega(w3) * t)
            )
            caustics = np.exp(-np.abs(cs) * 3.0) * near_top * 0.3
            small += (1.0 - small) * (rays + caustics)[..., None] * ray_colour * light

        self.small_steps.append(draw)
        self._bubbles()
        self._weeds()
        self._subjects()

    def _bubbles(self) -> None:
        r = self.rng
        count = 26
        x0 = r.uniform(0, 1, count)
        y0 = r.uniform(0, 1.1, count)
        v = r.uniform(0.08, 0.2, count)
        size = r.uniform(1.2, 3.5, count) * self.px
        wob = r.uniform(0, 6.28, count)

        def draw(img: np.ndarray, t: float) -> None:
            speeds = self.clock.speeds(v, 1.15)
            y = _wrap(y0 - speeds * t, -0.05, 1.15)
            x = x0 + 0.01 * np.sin(self.clock.omegas(np.full(count, 3.0)) * t + wob)
            for xi, yi, s in zip(x.tolist(), y.tolist(), size.tolist(), strict=True):
                cv2.circle(
                    img,
                    (int(xi * self.width * 16), int(yi * self.height * 16)),
                    int(s * 16),
                    (190, 235, 240),
                    max(1, int(self.px * 0.8)),
                    cv2.LINE_AA,
                    4,
                )

        self.big_steps.append(draw)

    def _weeds(self) -> None:
        r = self.rng
        count = int(r.integers(5, 10))
        xs = r.uniform(0, 1, count)
        heights = r.uniform(0.15, 0.35, count)
        phases = r.uniform(0, 6.28, count)
        colour = _rgb255(_c(0.08, 0.3, 0.22) * max(0.4, self.palette.daylight))
        thick = max(1, round(self.height / 110))

        def draw(img: np.ndarray, t: float) -> None:
            w = self.clock.omega(1.1) * t
            for x, hgt, ph in zip(xs.tolist(), heights.tolist(), phases.tolist(), strict=True):
                pts = []
                for k in range(9):
                    f = k / 8
                    sway = 0.03 * f * f * math.sin(w + ph + f * 2.5)
                    pts.append(((x + sway) * self.width * 16, (0.9 - hgt * f) * self.height * 16))
                cv2.polylines(img, [np.array(pts, np.int32)], False, colour, thick, cv2.LINE_AA, 4)

        self.big_steps.append(draw)

    def _interior(self) -> None:
        r, pal, spec = self.rng, self.palette, self.spec
        night = 1.0 - pal.daylight
        lamp = _c(1.0, 0.8, 0.55)
        wall = (
            self._material("wall")
            if pal.ground is None
            else _named(spec.ground_colour or (0, 0, 0))
        )
        if spec.accent_colours:
            wall = _toward(wall, _named(spec.accent_colours[0]), 0.6)
        back = (0.14, 0.1, 0.86, 0.72)  # x0, y0, x1, y1 of the back wall
        bx0, by0, bx1, by1 = back
        x, y = self.xs, self.ys
        light = 0.35 + 0.5 * pal.daylight
        # floor, ceiling, side walls by perspective from the centre
        self.base[:] = wall * light * 0.75
        floor = y > by1 + (np.abs(x - 0.5) - (bx1 - bx0) / 2).clip(0) * (1 - by1) / (bx0 + 1e-3)
        ceiling = y < by0 - (np.abs(x - 0.5) - (bx1 - bx0) / 2).clip(0) * by0 / (bx0 + 1e-3)
        side = (x < bx0) | (x > bx1)
        self.base[np.broadcast_to(side, (self.sh, self.sw))] *= 0.8
        self.base[np.broadcast_to(floor, (self.sh, self.sw))] = self._material("floor") * light
        self.base[np.broadcast_to(ceiling, (self.sh, self.sw))] = wall * light * 0.6
        # the window
        wx0 = float(r.uniform(0.3, 0.45))
        wx1 = wx0 + float(r.uniform(0.2, 0.3))
        wy0, wy1 = float(r.uniform(0.16, 0.24)), float(r.uniform(0.5, 0.58))
        inside = (x > wx0) & (x < wx1) & (y > wy0) & (y < wy1)
        top, _, low = pal.sky
        u = np.clip((y - wy0) / (wy1 - wy0), 0, 1)[..., None]
        outside = top + (low - top) * u
        hill = y > wy1 - 0.08 + 0.03 * np.sin(x * 20)
        outside = np.where(hill[..., None], pal.lit(_MATERIALS["grass"] * 0.6, 0.3), outside)
        outside = _mix(outside, np.ones(3, np.float32), 0.6 * pal.daylight)  # bright, from inside
        if "city" in spec.extras:
            tower = (np.sin(x * 90) > 0.2) & (y > wy1 - 0.16 + 0.05 * np.sin(x * 37))
            outside = np.where(tower[..., None], _c(0.08, 0.09, 0.12), outside)
        self.base = np.where(inside[..., None], outside, self.base).astype(np.float32)
        window = np.broadcast_to(inside, (self.sh, self.sw)).astype(np.float32)
        # daylight falling through it onto the floor, lamplight at night
        beam = np.clip(
            1 - np.abs((x - (wx0 + wx1) / 2) - (y - wy1) * 0.6) / ((wx1 - wx0) * 0.7), 0, 1
        )
        beam = beam * (y > by1) * pal.daylight * 0.35
        lx, ly = float(r.choice([0.2, 0.8])), 0.55
        lamp_glow = np.exp(-(((x - lx) * self.aspect) ** 2 + (y - ly) ** 2) / (2 * 0.22**2))
        lamp_glow = lamp_glow * (0.25 + 0.55 * night) * (1 - window)
        self.base += (
            (1.0 - self.base) * (beam * (1 - window))[..., None] * _mix(top, _c(1, 1, 1), 0.6)
        )
        self.base += (1.0 - self.base) * lamp_glow[..., None] * lamp
        # a sofa along the bottom
        sofa = (np.abs(x - 0.5 - float(r.uniform(-0.15, 0.15))) < 0.22) & (y > 0.74) & (y < 0.93)
        self.base[np.broadcast_to(sofa, (self.sh, self.sw))] *= 0.45
        self.hz = wy1
        self.ground_top = 0.9
        self.open_sky = window.copy()
        self.window = (wx0, wy0, wx1, wy1)
        if spec.time in ("night", "dusk"):
            self._stars(25, wy1)
        frame_colour = _rgb255(_c(0.3, 0.22, 0.16) * light)
        flicker = float(r.uniform(5, 9))
        glow = lamp_glow.astype(np.float32)

        def panes(img: np.ndarray, t: float) -> None:
            x0, y0 = int(wx0 * self.width), int(wy0 * self.height)
            x1, y1 = int(wx1 * self.width), int(wy1 * self.height)
            bar = max(1, self.height // 70)
            cv2.rectangle(img, (x0, y0), (x1, y1), frame_colour, bar)
            cv2.line(img, ((x0 + x1) // 2, y0), ((x0 + x1) // 2, y1), frame_colour, bar)
            cv2.line(img, (x0, (y0 + y1) // 2), (x1, (y0 + y1) // 2), frame_colour, bar)
            cv2.rectangle(img, (x0 - bar, y1), (x1 + bar, y1 + bar * 2), frame_colour, -1)

        def lamp_flicker(small: np.ndarray, t: float) -> None:
            level = 0.04 * math.sin(self.clock.omega(flicker) * t) * (0.3 + night)
            small += (glow * level)[..., None] * lamp

        self.small_steps.append(lamp_flicker)
        self._clouds_in(window)
        self.big_steps.append(panes)
        self._motes(wx0, wx1, by1)
        self._subjects()
        self._particles()

    def _clouds_in(self, window: np.ndarray) -> None:
        saved = self.open_sky
        self.open_sky = window
        self._clouds()
        self.open_sky = saved

    def _motes(self, x0: float, x1: float, floor: float) -> None:
        r = self.rng
        count = 12
        px = r.uniform(x0 - 0.05, x1 + 0.2, count)
        py = r.uniform(0.3, floor + 0.1, count)
        w = r.uniform(0.3, 0.8, count)
        w2 = r.uniform(0.2, 0.6, count)
        ph = r.uniform(0, 6.28, count)
        level = int(130 + 60 * self.palette.daylight)

        def draw(img: np.ndarray, t: float) -> None:
            x = px + 0.02 * np.sin(self.clock.omegas(w) * t + ph)
            y = py + 0.02 * np.cos(self.clock.omegas(w2) * t + ph)
            for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
                cv2.circle(
                    img,
                    (int(xi * self.width * 16), int(yi * self.height * 16)),
                    int(0.8 * self.px * 16),
                    (level, level, level - 20),
                    -1,
                    cv2.LINE_AA,
                    4,
                )

        self.big_steps.append(draw)

    # ---- particles

    def _particles(self) -> None:
        spec = self.spec
        if spec.weather in ("rain", "storm"):
            self._rain(heavy=spec.weather == "storm" or spec.intense)
        elif spec.weather == "snow":
            self._snow()
        elif self.palette.invented:
            self._twinkles()
        elif spec.setting == "desert" or "desert" in spec.extras:
            self._dust()

    def _rain(self, heavy: bool) -> None:
        r = self.rng
        count = int((260 if heavy else 170) * min(2.0, max(0.5, self.aspect / 1.7)))
        x0 = r.uniform(0, 1, count)
        y0 = r.uniform(0, 1, count)
        length = r.uniform(0.035, 0.075, count)
        speed = r.uniform(1.3, 1.9, count)
        slant = 0.18 if self.spec.windy or heavy else 0.06
        level = 110 + int(110 * self.palette.daylight)
        colour = (level, level + 6, level + 18)
        thick = max(1, round(self.height / 540))
        window = self.window

        def draw(img: np.ndarray, t: float) -> None:
            v = self.clock.speeds(speed, 1.1)
            y = _wrap(y0 + v * t, -0.1, 1.1)
            x = _wrap(x0 + self.clock.speeds(slant * speed, 1.1) * t, -0.05, 1.1)
            if window is not None:  # indoors: seen through the window
                wx0, wy0, wx1, wy1 = window
                x = wx0 + (x % 1.0) * (wx1 - wx0)
                y = wy0 + (y % 1.0) * (wy1 - wy0 - 0.05)
            x1, y1 = x * self.width, y * self.height
            x2 = x1 + slant * length * self.height
            y2 = y1 + length * self.height
            lines = np.stack([np.stack([x1, y1], 1), np.stack([x2, y2], 1)], 1)
            cv2.polylines(
                img,
                list(np.round(lines * 16).astype(np.int32)),
                False,
                colour,
                thick,
                cv2.LINE_AA,
                4,
            )

        self.big_steps.append(draw)

    def _snow(self) -> None:
        r = self.rng
        count = int(140 * min(2.0, max(0.5, self.aspect / 1.7)))
        x0 = r.uniform(0, 1, count)
        y0 = r.uniform(0, 1, count)
        near = r.uniform(0, 1, count) ** 2
        speed = 0.08 + 0.14 * near
        size = (0.7 + 1.8 * near) * self.px
        sway = r.uniform(0.005, 0.02, count)
        omega = r.uniform(0.8, 2.0, count)
        phase = r.uniform(0, 6.28, count)
        drift = 0.1 if self.spec.windy else 0.0
        level = 225 if self.palette.daylight > 0.3 else 205
        window = self.window

        def draw(img: np.ndarray, t: float) -> None:
            v = self.clock.speeds(speed, 1.1)
            y = _wrap(y0 + v * t, -0.05, 1.1)
            x = x0 + sway * np.sin(self.clock.omegas(omega) * t + phase)
            if drift:
                x = _wrap(x + self.clock.speeds(drift * speed, 1.04) * t, -0.02, 1.04)
            if window is not None:  # indoors: seen through the window
                wx0, wy0, wx1, wy1 = window
                x = wx0 + (x % 1.0) * (wx1 - wx0)
                y = wy0 + (y % 1.0) * (wy1 - wy0)
            px = np.round(x * self.width * 16).astype(int)
            py = np.round(y * self.height * 16).astype(int)
            radii = np.round(size * 16).astype(int)
            for xi, yi, ri in zip(px.tolist(), py.tolist(), radii.tolist(), strict=True):
                cv2.circle(img, (xi, yi), ri, (level, level, level + 8), -1, cv2.LINE_AA, 4)

        self.big_steps.append(draw)

    def _dust(self) -> None:
        r = self.rng
        count = 40
        x0, y0 = r.uniform(0, 1, count), r.uniform(self.hz, 1, count)
        speed = r.uniform(0.05, 0.15, count) * float(r.choice([-1.0, 1.0]))
        colour = _rgb255(self.palette.lit(_MATERIALS["sand"] * 1.1, 0.0))

        def draw(img: np.ndarray, t: float) -> None:
            x = _wrap(x0 + self.clock.speeds(speed, 1.1) * t, -0.05, 1.1)
            for xi, yi in zip(x.tolist(), y0.tolist(), strict=True):
                cv2.circle(
                    img,
                    (int(xi * self.width * 16), int(yi * self.height * 16)),
                    int(0.7 * self.px * 16),
                    colour,
                    -1,
                    cv2.LINE_AA,
                    4,
                )

        self.big_steps.append(draw)

    def _twinkles(self) -> None:
        r, pal = self.rng, self.palette
        count = int(r.integers(30, 90))
        x0 = r.uniform(0, 1, count)
        y0 = r.uniform(0, self.hz + 0.1, count)
        vx = r.uniform(-0.03, 0.03, count)
        vy = r.uniform(-0.015, 0.005, count)
        w = r.uniform(0.5, 2.5, count)
        p = r.uniform(0, 6.283, count)
        size = r.uniform(0.6, 1.8, count) * self.px
        colour = _rgb255(_mix(pal.sky[2], _c(1, 1, 1), 0.7))

        def draw(img: np.ndarray, t: float) -> None:
            x = (x0 + self.clock.speeds(vx, 1.0) * t) % 1.0
            y = (y0 + self.clock.speeds(vy, 1.0) * t) % 1.0
            twinkle = 0.6 + 0.4 * np.sin(self.clock.omegas(w) * t + p)
            radii = np.round(size * twinkle * 16).astype(int)
            for xi, yi, ri in zip(
                (x * self.width * 16).astype(int).tolist(),
                (y * self.height * 16).astype(int).tolist(),
                radii.tolist(),
                strict=True,
            ):
                cv2.circle(img, (xi, yi), ri, colour, -1, cv2.LINE_AA, 4)

        self.big_steps.append(draw)

    # ---- subjects

    def _subjects(self) -> None:
        actors: list[_Actor] = []
        for subject in self.spec.subjects:
            for k in range(subject.count):
                actors.append(self._place(subject, k))
        actors = actors[:MAX_ACTORS]
        if not actors:
            return
        actors.sort(key=lambda a: (a.subject.kind == "bird", a.y))  # far ones first

        def draw(img: np.ndarray, t: float) -> None:
            for actor in actors:
                self._draw_actor(img, actor, t)

        self.big_steps.append(draw)

    def _place(self, subject: Subject, k: int) -> _Actor:
        r, pal = self.rng, self.palette
        kind, motion = subject.kind, subject.motion
        ground = min(0.94, max(self.ground_top, self.hz + 0.08))
        spread = (k + float(r.uniform(0.1, 0.9))) / subject.count
        x = spread if subject.count > 1 else float(r.uniform(0.3, 0.7))
        y = float(r.uniform(ground, 0.95))
        size = {"person": 0.22, "car": 0.26, "bird": 0.09, "boat": 0.2, "rocket": 0.22,
                "tree": 0.4, "house": 0.28}[kind]  # fmt: skip
        if kind == "bird":
            y = float(r.uniform(0.12, max(0.15, min(0.45, self.hz - 0.1))))
        elif kind == "boat":
            water_top, water_bottom = self.water_y or (self.hz, 1.0)
            y = float(r.uniform(water_top + 0.06, min(water_bottom - 0.02, water_top + 0.3)))
            if self.spec.setting == "underwater":
                y = 0.05
        elif kind == "rocket":
            y = min(0.95, ground + 0.05) if motion == "up" else float(r.uniform(0.3, 0.6))
            x = float(r.uniform(0.35, 0.65)) if subject.count == 1 else x
        elif self.spec.setting == "underwater" and kind == "person":
            y = float(r.uniform(0.35, 0.7))
        scale = (
            0.55 + 0.45 * (y - self.hz) / max(1e-3, 1 - self.hz)
            if kind not in ("bird", "rocket")
            else 1.0
        )
        if kind == "boat" and self.spec.setting == "underwater":
            scale = 1.0
        size *= min(1.2, max(0.45, scale)) * (1.0 if subject.count < 3 else 0.75)
        actor = _Actor(subject, x, y, size, phase=float(r.uniform(0, 6.28)))
        pace = {"person": 0.07, "car": 0.2, "bird": 0.12, "boat": 0.05, "rocket": 0.12}.get(
            kind, 0.0
        )
        pace *= subject.speed * float(r.uniform(0.85, 1.15))
        if motion in ("left", "right"):
            actor.facing = 1 if motion == "right" else -1
            actor.vx = pace * actor.facing
            if subject.count == 1:
                actor.x = (
                    float(r.uniform(0.12, 0.3))
                    if motion == "right"
                    else float(r.uniform(0.7, 0.88))
                )
        elif motion == "up":
            actor.vy = -pace * (1.0 if kind == "rocket" else 0.8)
            actor.accel = 0.1 if kind == "rocket" else 0.0
        elif motion == "down":
            actor.vy = pace * 0.8
            if kind in ("bird", "rocket"):
                actor.y = float(r.uniform(0.1, 0.3))
        elif motion in ("toward", "away"):
            actor.depth_y = (
                min(actor.y, max(self.hz + 0.04, ground - 0.05)),
                min(0.97, actor.y + 0.12),
            )
            if kind == "bird":
                actor.depth_y = (actor.y, actor.y + 0.2)
            actor.facing = 1 if r.uniform() < 0.5 else -1
        else:
            actor.facing = 1 if r.uniform() < 0.5 else -1
        actor.gait = {"person": 4.5 * max(0.6, subject.speed), "bird": 11.0, "boat": 1.3,
                      "rocket": 30.0, "tree": 0.9, "car": 0.0, "house": 0.0}[kind]  # fmt: skip
        daylight = pal.daylight
        base = _KIND_COLOURS[kind]
        if subject.colour is not None:
            colour = _named(subject.colour) * (0.35 + 0.65 * max(daylight, 0.3))
        elif kind == "rocket":
            colour = base * (0.75 + 0.25 * daylight)
        else:
            colour = (
                base * pal.ambient * (0.25 + 0.75 * daylight)
                if kind in ("rocket", "house")
                else base * (0.4 + 0.6 * daylight)
            )
        colour = _mix(colour, pal.fog, self.fog * 0.5)
        actor.colour = _rgb255(colour)
        detail = {"boat": _c(0.95, 0.93, 0.88), "car": _mix(pal.sky[1], _c(0.1, 0.1, 0.12), 0.5),
                  "house": _c(1.0, 0.82, 0.45) if daylight < 0.6 else _c(0.35, 0.45, 0.55),
                  "tree": _c(0.3, 0.2, 0.12), "rocket": _c(1.0, 0.62, 0.15),
                  "person": colour, "bird": colour}[kind]  # fmt: skip
        if kind in ("boat", "car", "tree"):
            detail = detail * (0.35 + 0.65 * daylight) if kind != "car" else detail
        actor.detail = _rgb255(_mix(detail, pal.fog, self.fog * 0.4))
        return actor

    def _position(self, a: _Actor, t: float) -> tuple[float, float, float]:
        """(x, y, scale) of an actor at time t."""
        clock = self.clock
        x, y, scale = a.x, a.y, 1.0
        margin = a.size * 0.8 / max(self.aspect, 1e-3)
        if a.vx:
            vx = float(clock.speeds(np.array([a.vx]), 1 + 2 * margin)[0])
            x = float(_wrap(a.x + vx * t, -margin, 1 + 2 * margin))
        if a.vy:
            span = 1.0 + 2 * a.size
            if clock.period is None:
                travelled = abs(a.vy) * t + 0.5 * a.accel * t * t
            else:
                travelled = abs(float(clock.speeds(np.array([a.vy]), span)[0])) * t
            y = float(_wrap(a.y + math.copysign(travelled, a.vy), -a.size, span))
        if a.depth_y != (0.0, 0.0):
            p = clock.there_and_back(t)
            if a.subject.motion == "away":
                p = 1.0 - p
            far, near = a.depth_y
            y = far + (near - far) * p
            scale = 0.45 + 0.9 * p
        return x, y, scale

    def _draw_actor(self, img: np.ndarray, a: _Actor, t: float) -> None:
        x, y, scale = self._position(a, t)
        h = self.height
        px, py = x * self.width, y * h
        size = a.size * scale * h
        phase = a.phase + self.clock.omega(a.gait) * t if a.gait else a.phase
        kind = a.subject.kind
        moving = a.vx != 0 or a.vy != 0 or a.depth_y != (0.0, 0.0)
        if kind == "person":
            _person(img, px, py, size, phase, moving, a.colour)
        elif kind == "car":
            _car(img, px, py, size, a.facing, a.colour, a.detail, self.palette.daylight < 0.5)
        elif kind == "bird":
            _bird(img, px, py, size, phase, a.colour)
        elif kind == "boat":
            _boat(img, px, py, size, a.facing, math.sin(phase) * 0.05, a.colour, a.detail)
        elif kind == "rocket":
            _rocket(img, px, py, size, 1.0 + 0.2 * math.sin(phase), a.colour, moving, t)
        elif kind == "tree":
            _tree(img, px, py, size, math.sin(phase) * 0.03, a.colour, a.detail)
        else:
            _house(img, px, py, size, a.colour, a.detail)

    # ------------------------------------------------------------------ grading

    def _grade(self) -> np.ndarray:
        """Mood and weather as one colour transform: contrast, saturation, tint."""
        spec = self.spec
        contrast, saturation, gain = {
            "neutral": (1.0, 1.0, 1.0), "calm": (0.92, 0.92, 1.02), "dramatic": (1.25, 1.1, 0.95),
            "eerie": (1.05, 0.5, 0.85), "joyful": (1.05, 1.3, 1.05), "gloomy": (0.85, 0.55, 0.8),
        }[spec.mood]  # fmt: skip
        saturation *= {"snow": 0.5, "rain": 0.75, "storm": 0.7, "fog": 0.7, "clouds": 0.9}.get(
            spec.weather, 1.0
        )
        lum = np.array([0.299, 0.587, 0.114], np.float32)
        sat = saturation * np.eye(3, dtype=np.float32) + (1 - saturation) * np.outer(
            np.ones(3, np.float32), lum
        )
        matrix = contrast * gain * sat
        pivot = 0.4
        offset = np.full(3, (1 - contrast) * pivot * gain, np.float32)
        if spec.mood == "eerie":
            offset += _c(-0.01, 0.02, 0.01)
        return np.hstack([matrix, offset[:, None]]).astype(np.float32)


# --------------------------------------------------------------------------- silhouettes

_KIND_COLOURS = {
    "person": _c(0.16, 0.14, 0.17),
    "car": _c(0.14, 0.15, 0.18),
    "bird": _c(0.14, 0.14, 0.16),
    "boat": _c(0.22, 0.16, 0.13),
    "rocket": _c(0.92, 0.92, 0.95),
    "tree": _c(0.12, 0.28, 0.12),
    "house": _c(0.72, 0.62, 0.5),
}


def _pts(points: list[tuple[float, float]]) -> np.ndarray:
    return np.round(np.array(points, np.float64) * 16).astype(np.int32)


def _line(
    img: np.ndarray,
    a: tuple[float, float],
    b: tuple[float, float],
    colour: tuple[int, int, int],
    width: float,
) -> None:
    cv2.line(
        img,
        (round(a[0] * 16), round(a[1] * 16)),
        (round(b[0] * 16), round(b[1] * 16)),
        colour,
        max(1, round(width)),
        cv2.LINE_AA,
        4,
    )


def _disc(img: np.ndarray, x: float, y: float, radius: float, colour: tuple[int, int, int]) -> None:
    cv2.circle(
        img, (round(x * 16), round(y * 16)), max(1, round(radius * 16)), colour, -1, cv2.LINE_AA, 4
    )


def _poly(img: np.ndarray, points: list[tuple[float, float]], colour: tuple[int, int, int]) -> None:
    cv2.fillPoly(img, [_pts(points)], colour, cv2.LINE_AA, 4)


def _person(
    img: np.ndarray,
    x: float,
    feet: float,
    h: float,
    phase: float,
    walking: bool,
    colour: tuple[int, int, int],
) -> None:
    swing = 0.45 * math.sin(phase) if walking else 0.06 * math.sin(phase * 0.3)
    bob = abs(math.sin(phase)) * 0.02 * h if walking else 0.0
    hip = feet - 0.47 * h - bob
    neck = feet - 0.8 * h - bob
    head = feet - 0.9 * h - bob
    limb = max(1.0, 0.075 * h)
    for s in (swing, -swing):
        _line(
            img, (x, hip), (x + math.sin(s) * 0.47 * h, hip + math.cos(s) * 0.47 * h), colour, limb
        )
        _line(
            img,
            (x, neck + 0.04 * h),
            (x - math.sin(s) * 0.3 * h, neck + 0.04 * h + math.cos(s) * 0.3 * h),
            colour,
            limb * 0.85,
        )
    _line(img, (x, neck), (x, hip), colour, max(1.0, 0.15 * h))
    _disc(img, x, head, 0.075 * h, colour)


def _car(
    img: np.ndarray,
    x: float,
    ground: float,
    length: float,
    facing: int,
    colour: tuple[int, int, int],
    glass: tuple[int, int, int],
    lights: bool,
) -> None:
    body = [
        (-0.5, 0.1),
        (0.5, 0.1),
        (0.5, 0.3),
        (0.44, 0.35),
        (0.22, 0.37),
        (0.08, 0.56),
        (-0.26, 0.57),
        (-0.38, 0.38),
        (-0.5, 0.35),
    ]
    cabin = [(0.05, 0.52), (0.17, 0.38), (-0.08, 0.38), (-0.08, 0.53)]
    cabin2 = [(-0.12, 0.53), (-0.12, 0.38), (-0.33, 0.38), (-0.24, 0.53)]

    def place(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x + u * facing * length, ground - v * length) for u, v in points]

    _poly(img, place(body), colour)
    _poly(img, place(cabin), glass)
    _poly(img, place(cabin2), glass)
    for u in (-0.3, 0.3):
        wx, wy = x + u * length, ground - 0.11 * length
        _disc(img, wx, wy, 0.11 * length, (12, 12, 14))
        _disc(img, wx, wy, 0.05 * length, (90, 90, 95))
    if lights:
        fx, fy = x + 0.49 * facing * length, ground - 0.25 * length
        _disc(img, fx, fy, 0.035 * length, (255, 240, 190))
        _line(
            img,
            (x - 0.49 * facing * length, fy),
            (x - 0.47 * facing * length, fy),
            (220, 30, 30),
            0.05 * length,
        )


def _bird(
    img: np.ndarray, x: float, y: float, span: float, phase: float, colour: tuple[int, int, int]
) -> None:
    flap = math.sin(phase) * 0.3 * span
    pts = [
        (x - 0.5 * span, y - flap),
        (x - 0.22 * span, y - 0.12 * span - flap * 0.4),
        (x, y),
        (x + 0.22 * span, y - 0.12 * span - flap * 0.4),
        (x + 0.5 * span, y - flap),
    ]
    cv2.polylines(img, [_pts(pts)], False, colour, max(1, round(span * 0.09)), cv2.LINE_AA, 4)


def _boat(
    img: np.ndarray,
    x: float,
    water: float,
    length: float,
    facing: int,
    rock: float,
    hull: tuple[int, int, int],
    sail: tuple[int, int, int],
) -> None:
    c, s = math.cos(rock), math.sin(rock)

    def place(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [
            (x + (u * facing * c - v * s) * length, water - (u * facing * s + v * c) * length)
            for u, v in points
        ]

    _poly(img, place([(-0.5, 0.1), (0.5, 0.12), (0.38, -0.06), (-0.4, -0.06)]), hull)
    _poly(img, place([(0.02, 0.95), (0.02, 0.18), (0.42, 0.18)]), sail)
    _poly(img, place([(-0.03, 0.85), (-0.03, 0.2), (-0.34, 0.2)]), sail)
    mast = place([(0.0, 0.1), (0.0, 1.0)])
    _line(img, mast[0], mast[1], hull, max(1.0, length * 0.025))


def _rocket(
    img: np.ndarray,
    x: float,
    base: float,
    h: float,
    flame: float,
    colour: tuple[int, int, int],
    firing: bool,
    t: float,
) -> None:
    w = 0.16 * h
    if firing:
        for k in range(10):  # the exhaust trail: puffs that widen as they fall behind
            f = k / 9
            grey = int(150 - 60 * f)
            _disc(
                img,
                x + math.sin(k * 1.7 + t * 3) * w * 0.3 * f,
                base + (0.25 + 1.4 * f) * h,
                w * (0.5 + 1.6 * f),
                (grey, grey, grey + 4),
            )
        _poly(
            img,
            [(x - 0.45 * w, base), (x + 0.45 * w, base), (x, base + 0.55 * h * flame)],
            (255, 150, 40),
        )
        _poly(
            img,
            [(x - 0.25 * w, base), (x + 0.25 * w, base), (x, base + 0.32 * h * flame)],
            (255, 240, 190),
        )
    _poly(
        img,
        [
            (x - w / 2, base),
            (x + w / 2, base),
            (x + w / 2, base - 0.72 * h),
            (x, base - h),
            (x - w / 2, base - 0.72 * h),
        ],
        colour,
    )
    dark = tuple(int(v * 0.55) for v in colour)
    _poly(
        img,
        [(x - w / 2, base), (x - w, base + 0.05 * h), (x - w / 2, base - 0.25 * h)],
        (dark[0], dark[1], dark[2]),
    )
    _poly(
        img,
        [(x + w / 2, base), (x + w, base + 0.05 * h), (x + w / 2, base - 0.25 * h)],
        (dark[0], dark[1], dark[2]),
    )
    _disc(img, x, base - 0.62 * h, 0.18 * w, (70, 110, 160))


def _tree(
    img: np.ndarray,
    x: float,
    ground: float,
    h: float,
    sway: float,
    leaves: tuple[int, int, int],
    trunk: tuple[int, int, int],
) -> None:
    _poly(
        img,
        [
            (x - 0.04 * h, ground),
            (x + 0.04 * h, ground),
            (x + 0.025 * h, ground - 0.5 * h),
            (x - 0.025 * h, ground - 0.5 * h),
        ],
        trunk,
    )
    top = x + sway * h
    for dx, dy, r in (
        (0.0, 0.72, 0.24),
        (-0.15, 0.58, 0.18),
        (0.15, 0.6, 0.19),
        (0.02, 0.88, 0.16),
    ):
        _disc(img, top + dx * h, ground - dy * h, r * h, leaves)


def _house(
    img: np.ndarray,
    x: float,
    ground: float,
    w: float,
    wall: tuple[int, int, int],
    window: tuple[int, int, int],
) -> None:
    h = 0.62 * w
    _poly(
        img,
        [
            (x - w / 2, ground),
            (x + w / 2, ground),
            (x + w / 2, ground - h),
            (x - w / 2, ground - h),
        ],
        wall,
    )
    roof = tuple(int(v * 0.45) for v in wall)
    _poly(
        img,
        [(x - 0.6 * w, ground - h), (x + 0.6 * w, ground - h), (x, ground - h - 0.45 * w)],
        (roof[0], roof[1] // 2 + 10, roof[2] // 2 + 8),
    )
    door = (int(wall[0] * 0.4), int(wall[1] * 0.35), int(wall[2] * 0.3))
    _poly(
        img,
        [
            (x - 0.08 * w, ground),
            (x + 0.08 * w, ground),
            (x + 0.08 * w, ground - 0.32 * h * 1.4),
            (x - 0.08 * w, ground - 0.32 * h * 1.4),
        ],
        door,
    )
    for dx in (-0.3, 0.3):
        _poly(
            img,
            [
                (x + (dx - 0.09) * w, ground - 0.45 * h),
                (x + (dx + 0.09) * w, ground - 0.45 * h),
                (x + (dx + 0.09) * w, ground - 0.75 * h),
                (x + (dx - 0.09) * w, ground - 0.75 * h),
            ],
            window,
        )
