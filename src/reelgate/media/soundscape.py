"""A soundtrack from words: layers of synthesized sound picked by what a
prompt names (rain, wind, ocean, city, fire, birds, thunder, a music bed),
minus what a negative prompt names. Procedural (NumPy only), deterministic
per prompt and seed; a prompt that names none of them gets a quiet ambient
pad, so a track is never silence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import numpy as np

Layer = Callable[[int, int, np.random.Generator], np.ndarray]

WORDS: dict[str, tuple[str, ...]] = {
    "rain": ("rain", "rainy", "raining", "drizzle", "shower", "downpour", "storm", "thunderstorm"),
    "wind": ("wind", "windy", "breeze", "gust", "gale", "blizzard"),
    "ocean": ("ocean", "sea", "waves", "wave", "surf", "beach", "shore", "tide"),
    "city": ("city", "street", "traffic", "urban", "cars", "car", "crowd", "downtown"),
    "fire": ("fire", "campfire", "flames", "flame", "fireplace", "crackling", "burning"),
    "birds": ("birds", "bird", "birdsong", "chirping", "forest", "dawn", "songbird"),
    "thunder": ("thunder", "thunderstorm", "lightning", "storm"),
    "music": ("music", "musical", "melody", "song", "piano", "soundtrack", "score", "bed"),
}
"""Which words call up which layer (a word may call up several)."""


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def layers_for(prompt: str, negative_prompt: str = "") -> list[str]:
    """The layers a prompt asks for, without those the negative prompt names."""
    wanted, unwanted = _words(prompt), _words(negative_prompt)
    return [
        name
        for name, words in WORDS.items()
        if wanted & set(words) and not unwanted & {name, *words}
    ]


def _lowpass(x: np.ndarray, alpha: float) -> np.ndarray:
    """A gentle low-pass in the frequency domain; `alpha` is the cutoff as a
    fraction of the sample rate's Nyquist band divided by 8 (near 0: darker),
    the same feel as a one-pole filter's coefficient."""
    spectrum = np.fft.rfft(x)
    freqs = np.linspace(0.0, 1.0, len(spectrum))
    cutoff = max(alpha / 8.0, 1e-5)
    out: np.ndarray = np.fft.irfft(spectrum / np.sqrt(1.0 + (freqs / cutoff) ** 4), n=len(x))
    return out


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float64)


def _rain(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    hiss = _noise(n, rng)
    hiss = hiss - _lowpass(hiss, 0.15)  # keep the highs: a hiss
    drops = np.zeros(n)
    for at in rng.integers(0, n, size=n // 400):
        length = min(n - at, sr // 200)
        drops[at : at + length] += rng.uniform(0.3, 1.0) * np.exp(-np.arange(length) / (sr / 2000))
    out: np.ndarray = 0.35 * hiss + 0.25 * drops * _noise(n, rng)
    return out


def _wind(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    gusts = 0.6 + 0.4 * np.sin(2 * np.pi * 0.15 * t + rng.uniform(0, 6)) * np.sin(
        2 * np.pi * 0.07 * t
    )
    return 0.5 * _lowpass(_noise(n, rng), 0.02) * gusts * 4


def _ocean(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    swell = (0.5 + 0.5 * np.sin(2 * np.pi * 0.12 * t + rng.uniform(0, 6))) ** 2
    return 0.6 * _lowpass(_noise(n, rng), 0.05) * swell * 3


def _city(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    rumble = _lowpass(_noise(n, rng), 0.01) * 4
    horns = np.zeros(n)
    for at in rng.integers(0, max(1, n - sr // 2), size=max(1, n // (sr * 2))):
        length = min(n - at, int(sr * rng.uniform(0.15, 0.4)))
        tone = rng.choice([330.0, 392.0, 440.0])
        horns[at : at + length] += 0.15 * np.sign(np.sin(2 * np.pi * tone * t[:length]))
    return 0.4 * rumble + horns


def _fire(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    crackle = np.zeros(n)
    for at in rng.integers(0, n, size=n // 1500):
        length = min(n - at, sr // 400)
        crackle[at : at + length] += rng.uniform(-1, 1, length) * rng.uniform(0.3, 1.0)
    return 0.5 * crackle + 0.3 * _lowpass(_noise(n, rng), 0.01) * 3


def _birds(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    for at in rng.integers(0, max(1, n - sr // 4), size=max(1, n // (sr // 3))):
        length = min(n - at, int(sr * rng.uniform(0.05, 0.15)))
        tt = np.arange(length) / sr
        f0 = rng.uniform(2500, 5000)
        sweep = f0 + rng.uniform(-1500, 1500) * tt / max(tt[-1], 1e-6) if length else tt
        phase = 2 * np.pi * np.cumsum(sweep) / sr
        out[at : at + length] += 0.3 * np.sin(phase) * np.hanning(length)
    return out


def _thunder(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    for at in rng.integers(0, max(1, n - sr), size=max(1, n // (sr * 4))):
        length = min(n - at, int(sr * rng.uniform(1.0, 2.5)))
        envelope = np.exp(-np.arange(length) / (sr * 0.6))
        out[at : at + length] += _lowpass(_noise(length, rng), 0.004)[:length] * envelope * 12
    return out


def _music(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A slow pad moving between two chords."""
    t = np.arange(n) / sr
    root = rng.choice([196.0, 220.0, 246.9])
    chords = ((1.0, 1.26, 1.5), (0.89, 1.12, 1.335))
    which = (np.floor(t / 4.0) % 2).astype(int)
    out = np.zeros(n)
    for k in range(3):
        freq = np.where(which == 0, chords[0][k], chords[1][k]) * root
        out += np.sin(2 * np.pi * np.cumsum(freq) / sr)
    return 0.12 * out * (0.7 + 0.3 * np.sin(2 * np.pi * 0.25 * t))


def _ambient(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    return 0.3 * _lowpass(_noise(n, rng), 0.005) * 6


LAYERS: dict[str, Layer] = {
    "rain": _rain,
    "wind": _wind,
    "ocean": _ocean,
    "city": _city,
    "fire": _fire,
    "birds": _birds,
    "thunder": _thunder,
    "music": _music,
}


def soundscape(
    prompt: str, negative_prompt: str, seconds: float, seed: int, sample_rate: int
) -> np.ndarray:
    """Float32 mono samples in -1..1 for `seconds`, with a short fade in and out."""
    n = max(1, round(seconds * sample_rate))
    names = layers_for(prompt, negative_prompt)
    mix = np.zeros(n)
    for name in names or ["ambient"]:
        digest = hashlib.sha256(f"{name}\n{seed}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        mix += (LAYERS.get(name) or _ambient)(n, sample_rate, rng)
    peak = float(np.max(np.abs(mix))) or 1.0
    mix = mix / peak * 0.7
    fade = min(n // 2, sample_rate // 10)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        mix[:fade] *= ramp
        mix[-fade:] *= ramp[::-1]
    return mix.astype(np.float32)
