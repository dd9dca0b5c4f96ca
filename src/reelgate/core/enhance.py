"""Prompt enhancement: turn a terse prompt into one with concrete visual detail.

The default enhancer is deterministic (same prompt, same result) so tests and
retries agree; a deployment can plug in its own with `REELGATE_ENHANCER=module:attr`.
"""

from __future__ import annotations

import hashlib
import importlib
from typing import Protocol


class Enhancer(Protocol):
    def enhance(self, prompt: str) -> str: ...


_DETAILS: dict[str, tuple[str, ...]] = {
    "camera": (
        "slow dolly-in",
        "gentle handheld drift",
        "smooth lateral tracking shot",
        "sweeping crane shot",
        "steady orbit around the subject",
        "locked-off wide shot",
    ),
    "light": (
        "warm golden-hour light",
        "soft overcast light",
        "crisp morning light",
        "moody blue-hour light",
        "dramatic rim lighting",
        "neon reflections",
    ),
    "lens": (
        "35mm lens, shallow depth of field",
        "anamorphic lens with subtle flares",
        "50mm lens, natural perspective",
        "wide-angle lens, deep focus",
    ),
    "texture": (
        "fine film grain",
        "rich saturated colours",
        "muted pastel palette",
        "high-contrast cinematic grade",
        "volumetric haze in the air",
    ),
}


class DetailEnhancer:
    """Adds camera, light, lens and texture details chosen by a hash of the prompt."""

    def enhance(self, prompt: str) -> str:
        base = prompt.strip().rstrip(".")
        if not base:
            return prompt
        digest = hashlib.sha256(base.lower().encode("utf-8")).digest()
        picks = [opts[digest[i] % len(opts)] for i, opts in enumerate(_DETAILS.values())]
        return f"{base}. {picks[0].capitalize()}, {picks[1]}, {picks[2]}, {picks[3]}."


class NoEnhancer:
    def enhance(self, prompt: str) -> str:
        return prompt


def load_enhancer(spec: str) -> Enhancer:
    """`detail`, `none`, or `package.module:attribute` (a class or an instance)."""
    if spec == "detail":
        return DetailEnhancer()
    if spec == "none":
        return NoEnhancer()
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"enhancer {spec!r}: expected 'detail', 'none' or 'module:attribute'")
    target = getattr(importlib.import_module(module_name), attr)
    enhancer: Enhancer = target() if isinstance(target, type) else target  # a plug-in: duck-typed
    return enhancer
