"""Turning a finished video file into a task result (thumbnail and last
frame as JPEGs next to it, sizes read from the files themselves), or a
finished picture into an image result."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reelgate.domain.models import IMAGE_FORMATS, Asset, TaskResult
from reelgate.media.images import save_image, save_jpeg
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


def publish_image(
    run_key: str, workdir: Path, picture: np.ndarray, image_format: str
) -> TaskResult:
    """The result of a run that made one picture: `workdir/image.<format>`,
    and a JPEG thumbnail of it (the same picture, for lists and galleries)."""
    name = f"image.{image_format}"
    save_image(picture, workdir / name, image_format)
    save_jpeg(picture, workdir / "thumbnail.jpg")
    h, w = picture.shape[:2]
    return TaskResult(
        image=Asset(
            key=f"{run_key}/{name}",
            width=w,
            height=h,
            content_type=IMAGE_FORMATS[image_format],
            bytes=(workdir / name).stat().st_size,
        ),
        thumbnail=Asset(
            key=f"{run_key}/thumbnail.jpg",
            width=w,
            height=h,
            content_type="image/jpeg",
            bytes=(workdir / "thumbnail.jpg").stat().st_size,
        ),
    )
