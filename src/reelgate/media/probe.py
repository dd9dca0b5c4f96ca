"""Reading videos back: facts about a file, and its frames, straight from the bytes.

Facts are measured from the file rather than trusted from the request, so the
sizes and durations we report are the ones a player will see.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield container, stream
    finally:
        container.close()


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
    return (str(exc).strip() or type(exc).__name__)[:200]
