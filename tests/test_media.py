"""Media building blocks on real files: image decoding, encoding, probing."""

from __future__ import annotations

import io
import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelgate.media.encode import encode_mp4
from reelgate.media.errors import MediaError
from reelgate.media.images import cover_fit, decode_image, save_jpeg
from reelgate.media.probe import iter_frames, iter_frames_at, probe_video, read_last_frame
from reelgate.testing import png_bytes, psnr, textured_image


def test_decode_image_gives_rgb_and_applies_alpha_and_orientation() -> None:
    img = textured_image(64, 48)
    assert np.array_equal(decode_image(png_bytes(img)), img)
    rgba = Image.new("RGBA", (10, 8), (200, 100, 50, 0))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    assert decode_image(buf.getvalue()).max() == 0, "transparent pixels become black"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue()).shape == (64, 48, 3)


@pytest.mark.parametrize("data", [b"", b"not an image", png_bytes(textured_image(8, 8))[:40]])
def test_decode_image_refuses_garbage(data: bytes) -> None:
    with pytest.raises(MediaError):
        decode_image(data)


def test_decode_image_refuses_too_many_pixels_before_decoding() -> None:
    with pytest.raises(MediaError, match="too large"):
        decode_image(png_bytes(textured_image(200, 200)), max_pixels=10_000)


@pytest.mark.parametrize(("w", "h"), [(320, 96), (96, 320), (128, 128)])
def test_cover_fit_fills_the_frame_from_the_centre(w: int, h: int) -> None:
    img = textured_image(300, 200)
    out = cover_fit(img, w, h)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    same = cover_fit(img, 300, 200)
    assert np.array_equal(same, img)


def test_encode_then_probe_and_decode(tmp_path: Path) -> None:
    frames = [np.roll(textured_image(192, 128), 3 * i, axis=1) for i in range(25)]
    path = tmp_path / "clip.mp4"
    seen: list[int] = []
    summary = encode_mp4(iter(frames), path, width=192, height=128, fps=24, on_frame=seen.append)
    assert summary.frames == 25 and seen[-1] == 25
    assert np.array_equal(summary.last_frame, frames[-1])
    info = probe_video(path)
    assert (info.width, info.height, info.frames) == (192, 128, 25)
    assert info.fps == 24 and info.duration == pytest.approx(25 / 24, abs=0.01)
    assert info.bytes == path.stat().st_size
    decoded = list(iter_frames(path))
    assert len(decoded) == 25
    assert psnr(decoded[0], frames[0]) >= 30
    assert psnr(read_last_frame(path), frames[-1]) >= 30
    assert next(iter(iter_frames(path, (96, 96)))).shape == (96, 96, 3)


def test_encode_removes_the_partial_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"

    def frames():
        yield textured_image(64, 64)
        yield np.zeros((10, 10, 3), np.uint8)  # wrong size

    with pytest.raises(ValueError):
        encode_mp4(frames(), path, width=64, height=64)
    assert not path.exists()


def test_probe_refuses_a_corrupt_video(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500)
    with pytest.raises(MediaError):
        probe_video(path)


def test_save_jpeg(tmp_path: Path) -> None:
    img = textured_image(64, 48)
    save_jpeg(img, tmp_path / "a.jpg")
    assert psnr(np.asarray(Image.open(tmp_path / "a.jpg")), img) >= 30


def test_prefetch_keeps_order_and_hands_over_errors() -> None:
    from reelgate.media.prefetch import prefetch

    assert list(prefetch(range(100), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        list(prefetch(failing()))

    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    stream = prefetch(endless(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert closed == [True], "stopping the consumer stops the producer"


@pytest.mark.slow  # makes a 400 Mpx PNG
def test_decompression_bomb_is_refused_from_the_header() -> None:
    """A small file declaring a huge canvas is refused without decoding it."""
    buf = io.BytesIO()
    Image.new("L", (20_000, 20_000)).save(buf, format="PNG")  # 400 Mpx of zeros, a few hundred KB
    with pytest.raises(MediaError, match="too large"):
        decode_image(buf.getvalue())


def test_cover_fit_crops_the_centre_instead_of_stretching() -> None:
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = 255  # white centre square between black sides
    assert cover_fit(img, 50, 50).mean() > 250


def test_encode_refuses_an_empty_clip(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    with pytest.raises(ValueError, match="no frames"):
        encode_mp4(iter([]), path, width=64, height=64)
    assert not path.exists()


def test_encode_consumes_frames_lazily(tmp_path: Path) -> None:
    """Only a bounded number of frames is ever ahead of the encoder."""
    produced = 0

    def frames():
        nonlocal produced
        for i in range(40):
            produced += 1
            yield np.roll(textured_image(64, 64), i, axis=1)

    ahead: list[int] = []
    encode_mp4(
        frames(),
        tmp_path / "lazy.mp4",
        width=64,
        height=64,
        on_frame=lambda c: ahead.append(produced - c),
    )
    assert len(ahead) == 40 and max(ahead) <= 8


def test_probe_refuses_a_file_without_video(tmp_path: Path) -> None:
    import av

    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(MediaError, match="no video"):
        probe_video(path)
    with pytest.raises(MediaError):
        probe_video(tmp_path / "missing.mp4")


def timed_clip(path: Path, shown: list[tuple[int, int]], ms: int = 1000) -> None:
    """A clip of flat grey frames, each (grey level, milliseconds on screen),
    stamped in a millisecond time base as Matroska and WebM files are (so a
    frame rate that does not divide 1000 is rounded, as it is in the wild)."""
    import av

    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=24, options={"bframes": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, ms)
        starts = list(itertools.accumulate((lasts for _, lasts in shown), initial=0))
        durations = {start: lasts for start, (_, lasts) in zip(starts, shown, strict=False)}
        packets = []
        for start, (level, _) in zip(starts, shown, strict=False):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), level, np.uint8), "rgb24")
            frame.pts = start
            packets += stream.encode(frame)
        for packet in [*packets, *stream.encode(None)]:
            packet.duration = durations[packet.pts]
            container.mux(packet)


def greys(path: Path, fps: int = 24, **kw) -> list[int]:
    return [round(float(f.mean())) for f in iter_frames_at(path, fps, **kw)]


def test_frames_at_a_rate_follow_the_timestamps_of_a_variable_rate_clip(tmp_path: Path) -> None:
    """A frame stays on screen until the next one is due, gaps included, and
    the clip keeps its length: 100 ms, 400 ms, 100 ms and 400 ms."""
    path = tmp_path / "vfr.mkv"
    timed_clip(path, [(20, 100), (80, 400), (140, 100), (200, 400)])
    seen = greys(path)
    assert len(seen) == 24, "one second at 24 fps"
    runs = [(level, len(list(run))) for level, run in itertools.groupby(seen)]
    assert [level for level, _ in runs] == pytest.approx([20, 80, 140, 200], abs=3)
    assert [count for _, count in runs] == [3, 9, 3, 9]


def test_frames_at_their_own_rate_come_out_one_for_one(tmp_path: Path) -> None:
    """24 fps stamped in milliseconds (0, 42, 83, 125 ...) is rounded either
    way; not one frame is repeated or dropped."""
    path = tmp_path / "ms.mkv"
    stamps = [round(k * 1000 / 24) for k in range(25)]
    timed_clip(path, [(8 * k, b - a) for k, (a, b) in enumerate(itertools.pairwise(stamps))])
    assert greys(path) == pytest.approx([8 * k for k in range(24)], abs=3)


def test_frames_at_a_rate_refuse_timestamps_past_the_limit(tmp_path: Path) -> None:
    """Timestamps are the file's word: a few frames far apart must not turn
    into hours of repeated frames."""
    path = tmp_path / "gap.mkv"
    timed_clip(path, [(20, 1000), (80, 600_000), (140, 1000)])
    with pytest.raises(MediaError, match="longer than 10 s"):
        greys(path, max_seconds=10)
    assert len(greys(path, max_seconds=700)) == 602 * 24
