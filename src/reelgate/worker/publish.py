"""Turning a finished video file into a task result: thumbnail and last
frame as JPEGs next to it, sizes read from the files themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reelgate.domain.models import Asset, TaskResult
from reelgate.media.images import save_jpeg
from reelgate.media.probe import VideoInfo, probe_video


def publish(
    run_key: str,
    workdir: Path,
    video_path: Path,
    first: np.ndarray,
    last: np.ndarray,
    thumbnail: np.ndarray | None = None,
    info: VideoInfo | None = None,
) -> TaskResult:
    """The result of a run whose video is `workdir/video.mp4` (key `run_key/...`)."""
    info = info or probe_video(video_path)
    thumbnail = first if thumbnail is None else thumbnail
    save_jpeg(thumbnail, workdir / "thumbnail.jpg")
    save_jpeg(last, workdir / "last_frame.jpg")
    th, tw = thumbnail.shape[:2]
    h, w = last.shape[:2]
    return TaskResult(
        video=Asset(
            key=f"{run_key}/video.mp4",
            width=info.width,
            height=info.height,
            content_type="video/mp4",
            bytes=info.bytes,
            duration=info.duration,
            fps=info.fps,
            frames=info.frames,
        ),
        thumbnail=Asset(
            key=f"{run_key}/thumbnail.jpg",
            width=tw,
            height=th,
            content_type="image/jpeg",
            bytes=(workdir / "thumbnail.jpg").stat().st_size,
        ),
        last_frame=Asset(
            key=f"{run_key}/last_frame.jpg",
            width=w,
            height=h,
            content_type="image/jpeg",
            bytes=(workdir / "last_frame.jpg").stat().st_size,
        ),
    )
