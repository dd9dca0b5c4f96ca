"""Streaming H.264/MP4 encoding: frames go to the encoder as they are made."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from reelgate.media.prefetch import prefetch

SAMPLE_RATE = 48_000


@dataclass
class EncodeSummary:
    """What the caller needs after encoding without re-reading the file:
    the first frame makes the thumbnail, the last frame the `last_frame` asset."""

    frames: int
    first_frame: np.ndarray
    last_frame: np.ndarray
    encode_seconds: float = 0.0
    """Time spent in the encoder and muxer, not waiting for frames (metrics)."""


def encode_mp4(
    frames: Iterable[np.ndarray],
    path: Path,
    *,
    width: int,
    height: int,
    fps: int = 24,
    preset: str = "veryfast",
    crf: int = 20,
    threads: int = 0,
    on_frame: Callable[[int], None] | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> EncodeSummary:
    """Encode RGB uint8 frames to an H.264 (yuv420p) MP4 at `path`.

    Frames are pulled one at a time so a long clip never sits in memory; a
    second thread renders a few frames ahead so rendering and encoding overlap.
    yuv420p + faststart is the combination every browser and phone plays and
    can start before the download ends. On any failure the partial file is
    removed so storage never receives a truncated video.

    `audio` (float32 mono samples in -1..1 at `sample_rate`) adds an AAC
    track, interleaved with the video as it plays. `threads`: x264's threads
    (0: its own choice).
    """
    _check_size(width, height, fps)
    path = Path(path)
    container = av.open(
        str(path), mode="w", format="mp4", container_options={"movflags": "+faststart"}
    )
    try:
        stream = _add_h264_stream(container, width, height, fps, preset, crf, threads)
        track = _AudioTrack(container, audio, sample_rate) if audio is not None else None

        def played(count: int) -> None:
            if track is not None:
                track.until(count / fps)
            if on_frame is not None:
                on_frame(count)

        summary = _encode_all(container, stream, prefetch(frames), width, height, played)
        flushing = time.perf_counter()
        for packet in stream.encode(None):  # flush delayed (B-)frames
            container.mux(packet)
        summary.encode_seconds += time.perf_counter() - flushing
        if track is not None:
            track.finish()
        container.close()
    except BaseException:
        _close_quietly(container)
        path.unlink(missing_ok=True)
        raise
    return summary


class _AudioTrack:
    """An AAC track fed in step with the video (one AAC frame at a time)."""

    FRAME = 1024

    def __init__(
        self, container: av.container.OutputContainer, samples: np.ndarray, rate: int
    ) -> None:
        self.container = container
        self.samples = np.clip(np.asarray(samples, np.float32).ravel(), -1.0, 1.0)
        self.rate = rate
        self.stream = container.add_stream("aac", rate=rate, layout="mono")
        self.pos = 0

    def _encode(self, end: int) -> None:
        chunk = self.samples[self.pos : end]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.pos
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.pos = end

    def until(self, seconds: float) -> None:
        end = min(len(self.samples), int(seconds * self.rate))
        while self.pos + self.FRAME <= end:
            self._encode(self.pos + self.FRAME)

    def finish(self) -> None:
        while self.pos < len(self.samples):
            self._encode(min(len(self.samples), self.pos + self.FRAME))
        for packet in self.stream.encode(None):
            self.container.mux(packet)


def _check_size(width: int, height: int, fps: int) -> None:
    """yuv420p subsamples chroma 2x2, so odd sides cannot be encoded."""
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"frame size must be positive and even, got {width}x{height}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")


def _add_h264_stream(
    container: av.container.OutputContainer,
    width: int,
    height: int,
    fps: int,
    preset: str,
    crf: int,
    threads: int = 0,
) -> av.VideoStream:
    options = {"preset": preset, "crf": str(crf)}
    if threads:
        options["threads"] = str(threads)
    stream = container.add_stream("libx264", rate=fps, options=options)
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = Fraction(1, fps)
    return stream


def _encode_all(
    container: av.container.OutputContainer,
    stream: av.VideoStream,
    frames: Iterable[np.ndarray],
    width: int,
    height: int,
    on_frame: Callable[[int], None] | None,
) -> EncodeSummary:
    """Encode every frame, keeping copies of the first and last (the producer
    may reuse its buffers)."""
    count = 0
    first: np.ndarray | None = None
    last: np.ndarray | None = None
    busy = 0.0
    for frame in frames:
        began = time.perf_counter()
        arr = _checked_frame(frame, width, height, count)
        video_frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        video_frame.pts = count
        for packet in stream.encode(video_frame):
            container.mux(packet)
        busy += time.perf_counter() - began
        if first is None:
            first = arr.copy()
        last = arr
        count += 1
        if on_frame is not None:
            on_frame(count)
    if first is None or last is None:
        raise ValueError("no frames to encode: the clip would be empty")
    return EncodeSummary(
        frames=count, first_frame=first, last_frame=last.copy(), encode_seconds=busy
    )


def _checked_frame(frame: np.ndarray, width: int, height: int, index: int) -> np.ndarray:
    """A wrong-sized frame is a bug in the producer; fail loudly, not with a
    stretched or garbled video."""
    arr = np.asarray(frame)
    if arr.shape != (height, width, 3):
        raise ValueError(f"frame {index} has shape {arr.shape}, expected {(height, width, 3)}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frame {index} has dtype {arr.dtype}, expected uint8")
    return np.ascontiguousarray(arr)


def _close_quietly(container: av.container.OutputContainer) -> None:
    """Closing after a failure can itself fail (nothing was written); the
    original error is the one worth reporting."""
    with contextlib.suppress(Exception):
        container.close()
