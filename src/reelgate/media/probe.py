"""Reading videos back: facts about a file, and its frames, straight from the bytes.

Facts are measured from the file rather than trusted from the request, so the
sizes and durations we report are the ones a player will see.
"""

from __future__ import annotations

import math
import re
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from reelgate.media.errors import MediaError
from reelgate.media.images import cover_fit


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    duration: float
    frames: int
    bytes: int


def probe_video(path: Path) -> VideoInfo:
    """Measure a video file: size, frame rate, frame count, duration, bytes.

    The container's frame count is used when present; otherwise (streams
    without an index) frames are counted by decoding, which is slower but
    exact. Raises MediaError when the file is not a playable video.
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        fps = _frame_rate(stream)
        frames = int(stream.frames or 0)
        if frames <= 0:
            frames = _count_decoded(container, stream)
        if frames <= 0:
            raise MediaError(f"{path.name} is not a playable video (no decodable frames)")
        duration = _duration(stream, frames, fps)
        return VideoInfo(
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            fps=fps,
            duration=duration,
            frames=frames,
            bytes=path.stat().st_size,
        )


def iter_frames(
    path: Path, size: tuple[int, int] | None = None
) -> Generator[np.ndarray, None, None]:
    """Yield RGB uint8 frames one at a time (memory stays bounded).

    With `size=(width, height)` each frame is cover-fitted, so a source clip
    of another shape can be continued at the task's size.
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        for frame in _decode(container, stream, path):
            yield _fitted(frame.to_ndarray(format="rgb24"), size)


TIMESTAMP_SLACK = Fraction(1, 1000)
"""How early a frame may be stamped and still count as on screen at a time:
containers that keep milliseconds (Matroska, WebM, FLV) round each timestamp
by up to half of one, and a 24 fps frame stamped 42 ms must still be the one
shown at 1/24 s."""


def frame_count_at(duration: float, fps: int) -> int:
    """How many frames at `fps` play for `duration` seconds (at least one)."""
    return max(1, round(duration * fps))


def iter_frames_at(
    path: Path,
    fps: int,
    size: tuple[int, int] | None = None,
    *,
    max_seconds: float | None = None,
) -> Generator[np.ndarray, None, None]:
    """Yield the video as it plays at `fps`: at each time t = i / fps, the
    frame on screen at t (a repeated frame is the same array).

    A clip re-stamped frame for frame at another rate changes speed (60 fps
    at 24 fps plays 2.5 times slower); picking frames by their timestamps
    keeps its duration within half a frame, variable frame rates included.
    Only the frame on screen is held, so memory stays bounded. Timestamps are
    the file's word, so with `max_seconds` a clip whose timestamps run past
    that is refused (MediaError) instead of becoming hours of repeats.
    """
    path = Path(path)
    limit = None if max_seconds is None else math.ceil(max_seconds * fps) + 1
    slot = 0
    with _open_video(path) as (container, stream):
        for until, frame, last in _on_screen(container, stream, path):
            picture: np.ndarray | None = None
            while _shows(slot, fps, until, last):
                if limit is not None and slot >= limit:
                    raise MediaError(f"{path.name} plays for longer than {max_seconds:g} s")
                if picture is None:
                    picture = _fitted(frame.to_ndarray(format="rgb24"), size)
                yield picture
                slot += 1


def _shows(slot: int, fps: int, until: Fraction, last: bool) -> bool:
    """Whether output frame `slot` (at slot / fps) falls before `until`, when
    the next frame is due; for the last frame, whether it is within the
    duration rounded to whole output frames."""
    if last:
        return slot < frame_count_at(float(until), fps)
    return Fraction(slot, fps) + TIMESTAMP_SLACK < until


def _on_screen(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> Iterator[tuple[Fraction, av.VideoFrame, bool]]:
    """(shown until, frame, whether it is the last) for each frame, in
    seconds from the first frame. A frame stamped no later than the one
    before replaces it; the last lasts its own duration, or as long as the
    one before it did."""
    period = _period(stream)
    held: tuple[Fraction, av.VideoFrame] | None = None
    for start, frame in _stamped(container, stream, path):
        if held is not None and start > held[0]:
            yield start, held[1], False
            period = start - held[0]
        elif held is not None:
            start = held[0]
        held = (start, frame)
    if held is not None:
        start, frame = held
        own = frame.duration * (frame.time_base or _time_base(stream)) if frame.duration else 0
        yield start + (own or period), frame, True


def _stamped(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> Iterator[tuple[Fraction, av.VideoFrame]]:
    """Each frame with its time in seconds from the first frame; a frame
    without a timestamp comes one frame period after the one before."""
    period = _period(stream)
    origin: Fraction | None = None
    time = Fraction(0)
    for index, frame in enumerate(_decode(container, stream, path)):
        stamp = None if frame.pts is None else frame.pts * (frame.time_base or _time_base(stream))
        if index == 0:
            origin = stamp
        elif stamp is None or origin is None:
            time += period
        else:
            time = stamp - origin
        yield time, frame


def _time_base(stream: av.VideoStream) -> Fraction:
    return stream.time_base or Fraction(1)


def _period(stream: av.VideoStream) -> Fraction:
    """One frame's time at the stream's declared rate (a second when it has none)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return 1 / Fraction(rate)
    return Fraction(1)


def read_first_frame(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The opening frame (what a reverse extend leads into)."""
    frames = iter_frames(path, size)
    try:
        return next(frames)
    except StopIteration:
        raise MediaError(
            f"{Path(path).name} is not a playable video (no decodable frames)"
        ) from None
    finally:
        frames.close()


def read_last_frame(path: Path) -> np.ndarray:
    """The final frame of a video (what an extend continues from).

    Seeks to the last keyframe before the end first, so long sources are not
    decoded from the beginning; falls back to a full decode when the file
    cannot seek.
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        last = _last_after_seek(container, stream, path)
    if last is None:
        for frame in iter_frames(path):
            last = frame
    if last is None:
        raise MediaError(f"{path.name} is not a playable video (no decodable frames)")
    return np.ascontiguousarray(last)


@contextmanager
def _open_video(path: Path) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """Open a file and its first video stream, turning every library or OS
    failure into a MediaError a user can read."""
    if not path.is_file():
        raise MediaError(f"video file {path.name} does not exist")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path.name} is not a readable video ({_why(exc)})") from exc
    try:
        if not container.streams.video:
            raise MediaError(f"{path.name} has no video stream")
        if _is_picture(container):
            raise MediaError(f"{path.name} is a still image, not a video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield container, stream
    finally:
        container.close()


def _is_picture(container: av.container.InputContainer) -> bool:
    """Whether FFmpeg read the file with a still-image demuxer (PNG, JPEG,
    WebP...), which presents a picture as a one-frame video."""
    names = set(container.format.name.split(","))
    return "image2" in names or any(name.endswith("_pipe") for name in names)


def _decode(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except av.FFmpegError as exc:
        raise MediaError(f"{path.name} is corrupt and cannot be decoded ({_why(exc)})") from exc


def _fitted(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return np.ascontiguousarray(rgb)
    return cover_fit(rgb, size[0], size[1])


def _frame_rate(stream: av.VideoStream) -> float:
    """Average rate first (what players show); guessed rate for odd containers."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _count_decoded(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    count = 0
    for _ in _decode(container, stream, Path(container.name)):
        count += 1
    return count


def _duration(stream: av.VideoStream, frames: int, fps: float) -> float:
    """Stream duration when the container records it; else frames / fps."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return frames / fps if fps > 0 else 0.0


def _last_after_seek(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> np.ndarray | None:
    """Decode from the last keyframe before the end; None if seeking is impossible."""
    if not stream.duration:
        return None
    try:
        container.seek(
            int(stream.start_time or 0) + int(stream.duration), stream=stream, backward=True
        )
    except av.FFmpegError:
        return None
    last = None
    for frame in _decode(container, stream, path):
        last = frame
    return None if last is None else last.to_ndarray(format="rgb24")


def _why(exc: BaseException) -> str:
    """A short reason for the user-facing message, without the file's path
    (FFmpeg and OS errors append it) or object reprs."""
    if isinstance(exc, (av.FFmpegError, OSError)) and exc.strerror:
        return str(exc.strerror).strip()[:200]
    text = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc))
    text = re.sub(r"""(?:^|\s)['"]?/[^\s'"]+['"]?""", "", text).strip(" :")
    return (text or type(exc).__name__)[:200]
