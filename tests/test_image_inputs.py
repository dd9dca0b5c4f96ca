"""Start and end images are decoded at the size the render uses: the picture
matches a full-size decode fitted to the frame, and a 40-megapixel input
costs memory in proportion to the frame, not to the input."""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from reelgate.domain.models import frame_size
from reelgate.media.errors import MediaError
from reelgate.media.images import check_image, cover_fit, decode_image
from reelgate.testing import detailed_image, png_bytes, psnr, textured_image

FRAMES = [frame_size("16:9", "540p"), frame_size("9:16", "540p"), frame_size("21:9", "720p")]


def _encoded(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


@functools.cache
def _inputs() -> dict[str, bytes]:
    picture = detailed_image(2400, 1600)
    rgba = np.dstack([picture, np.full(picture.shape[:2], 255, np.uint8)])
    rgba[:, :800, 3] = 0  # a transparent band: black in the video
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown upright
    grey16 = (picture[:, :, 0].astype(np.uint16) * 257).astype(np.uint16)
    return {
        "png": png_bytes(picture),
        "jpeg": _encoded(Image.fromarray(picture), "JPEG", quality=95),
        "rotated jpeg": _encoded(Image.fromarray(picture), "JPEG", quality=95, exif=exif),
        "rgba png": _encoded(Image.fromarray(rgba), "PNG", compress_level=1),
        "palette gif": _encoded(
            Image.fromarray(picture).quantize(256, method=Image.Quantize.FASTOCTREE), "GIF"
        ),
        "16-bit png": _encoded(Image.fromarray(grey16), "PNG", compress_level=1),
        "small webp": _encoded(Image.fromarray(textured_image(320, 200)), "WEBP", lossless=True),
    }


INPUT_NAMES = [
    "png",
    "jpeg",
    "rotated jpeg",
    "rgba png",
    "palette gif",
    "16-bit png",
    "small webp",
]
"""The kinds `_inputs` encodes, named here so collecting the tests encodes nothing."""


@pytest.mark.slow  # over a second: the slow tier
@pytest.mark.parametrize("name", INPUT_NAMES)
def test_an_image_decoded_for_a_frame_is_the_fitted_full_size_picture(name: str) -> None:
    assert list(_inputs()) == INPUT_NAMES
    data = _inputs()[name]
    full = decode_image(data)
    for width, height in FRAMES:
        fitted = decode_image(data, cover=(width, height))
        assert fitted.shape == (height, width, 3) and fitted.dtype == np.uint8
        assert psnr(fitted, cover_fit(full, width, height)) >= 40, (name, width, height)
    if name == "rotated jpeg":
        assert full.shape == (2400, 1600, 3), "the orientation the user saw"
    if name == "rgba png":
        assert decode_image(data, cover=(640, 360))[:, :40].max() == 0, "transparent is black"


@pytest.mark.slow  # over a second: the slow tier
def test_fine_detail_does_not_alias_when_decoded_small() -> None:
    """Stripes too fine for the frame average out to grey, as in a full-size
    decode shrunk with an area filter; they must not turn into coarse bands."""
    y, x = np.mgrid[0:2160, 0:3840]
    stripes = (127 + 120 * np.sin(x * 2.1 + y * 0.3)).astype(np.uint8)
    picture = np.dstack([stripes, stripes, stripes])
    for data in (png_bytes(picture), _encoded(Image.fromarray(picture), "JPEG", quality=95)):
        fitted = decode_image(data, cover=(640, 360))
        assert psnr(fitted, cover_fit(decode_image(data), 640, 360)) >= 35
        assert fitted.std() < 5 and abs(fitted.mean() - 127) < 5


def test_check_image_reads_every_byte_but_keeps_no_pixels() -> None:
    picture = textured_image(640, 480)
    assert check_image(png_bytes(picture)) == "PNG"
    truncated = png_bytes(detailed_image(640, 480))
    with pytest.raises(MediaError, match="not a decodable image"):
        check_image(truncated[: len(truncated) // 2])
    with pytest.raises(MediaError, match="too large"):
        check_image(png_bytes(picture), max_pixels=1000)


_PEAK = """
import json, sys
import numpy as np
from reelgate.media.images import decode_image
decode_image(open(sys.argv[2], "rb").read(), cover=(32, 32))  # imports and first use
data = open(sys.argv[1], "rb").read()

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak starts again from here
before = peak()
out = decode_image(data, cover=(1280, 720))
np.save(sys.argv[3], out)
print(json.dumps({"peak": peak() - before}))
"""


@pytest.mark.slow  # builds and decodes 40-megapixel files in subprocesses
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_40_megapixel_input_costs_memory_for_the_frame_it_fills(tmp_path: Path, fmt: str) -> None:
    """Decoding used to hold several full-size copies (over 500 MiB for one
    40 Mpx picture). Now a JPEG never exists at full size, and a PNG (which
    cannot be decoded scaled) exists there once, briefly."""
    width, height = 7680, 5120  # 39.3 Mpx, under the default limit of 40
    big = cv2.resize(textured_image(960, 640), (width, height), interpolation=cv2.INTER_CUBIC)
    options: dict[str, object] = {"quality": 92} if fmt == "JPEG" else {"compress_level": 1}
    path = tmp_path / "big"
    path.write_bytes(_encoded(Image.fromarray(big), fmt, **options))
    small = tmp_path / "small"
    small.write_bytes(_encoded(Image.fromarray(textured_image(64, 48)), fmt))
    out = tmp_path / "out.npy"
    run = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path), str(small), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    peak = json.loads(run.stdout)["peak"]
    one_full_copy = width * height * 3  # the picture as an RGB array, 112 MiB
    bound = 0.75 * one_full_copy if fmt == "JPEG" else 2 * one_full_copy
    assert peak < bound, f"{fmt}: {peak / 2**20:.0f} MiB at peak"
    fitted = np.load(out)
    assert fitted.shape == (720, 1280, 3)
    assert psnr(fitted, cover_fit(big, 1280, 720)) >= 40
