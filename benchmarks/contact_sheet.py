"""A contact sheet of the preview engine's text-to-video: the middle frame of
each prompt tests/test_prompt_scenes.py checks, captioned with its prompt,
in one picture for the README (not a test).

Usage: python benchmarks/contact_sheet.py [--out docs/preview/contact-sheet.jpg]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reelgate.domain.models import FPS
from reelgate.engines.base import RenderJob
from reelgate.engines.preview import PreviewEngine

ROOT = Path(__file__).resolve().parent.parent
TILE_W, TILE_H = 320, 176
CAPTION = 22
COLUMNS = 4
FRAMES = 49


def prompts() -> tuple[str, ...]:
    """The prompts the scene tests check, from the test module itself."""
    path = ROOT / "tests" / "test_prompt_scenes.py"
    spec = importlib.util.spec_from_file_location("test_prompt_scenes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found: tuple[str, ...] = module.PROMPTS
    return found


def middle_frame(prompt: str) -> np.ndarray:
    """Rendered at twice the tile's size and scaled down, as a viewer would see it."""
    job = RenderJob(
        task_id="sheet",
        prompt=prompt,
        seed=3,
        width=TILE_W * 2,
        height=TILE_H * 2,
        fps=FPS,
        num_frames=FRAMES,
    )
    frames = PreviewEngine().render(job, lambda _: None)
    frame = next(f for i, f in enumerate(frames) if i == FRAMES // 2)
    small: np.ndarray = cv2.resize(frame, (TILE_W, TILE_H), interpolation=cv2.INTER_AREA)
    return small


def sheet(texts: tuple[str, ...]) -> Image.Image:
    rows = -(-len(texts) // COLUMNS)
    out = Image.new("RGB", (COLUMNS * TILE_W, rows * (TILE_H + CAPTION)), (18, 18, 20))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(13)
    for index, text in enumerate(texts):
        x = (index % COLUMNS) * TILE_W
        y = (index // COLUMNS) * (TILE_H + CAPTION)
        out.paste(Image.fromarray(middle_frame(text)), (x, y))
        draw.text((x + 6, y + TILE_H + 4), text, fill=(225, 225, 225), font=font)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "preview" / "contact-sheet.jpg")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet(prompts()).save(args.out, quality=85, optimize=True)
    print(f"{args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
