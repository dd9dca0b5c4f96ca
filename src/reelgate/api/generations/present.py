"""Neutral tasks as the gateway's web-style generation objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reelgate.api.timefmt import iso_utc
from reelgate.domain.models import Asset, State, Task
from reelgate.domain.types import QueueEstimate

UrlFor = Callable[[str], str]

STATES = {
    State.QUEUED: "pending",
    State.RUNNING: "processing",
    State.COMPLETED: "completed",
    State.FAILED: "failed",
    State.CANCELLED: "failed",
}


def _image(asset: Asset, url_for: UrlFor) -> dict[str, Any]:
    return {"url": url_for(asset.key), "width": asset.width, "height": asset.height}


def queue_state(estimate: QueueEstimate | None) -> dict[str, int] | None:
    """A waiting task's place in line (1: next to start); null once it runs."""
    if estimate is None:
        return None
    return {"position": estimate.position, "ahead": estimate.ahead}


def task_object(
    task: Task, url_for: UrlFor, estimate: QueueEstimate | None = None
) -> dict[str, Any]:
    """The web-style object; `estimate` (the service's, for a queued task)
    fills `queue_state` and `estimate_wait_seconds`, else they are null."""
    result = task.result if task.state is State.COMPLETED else None
    video = None
    if result is not None and result.video is not None:
        video = {
            **_image(result.video, url_for),
            "thumbnail": url_for(result.thumbnail.key),
            "download_url": url_for(result.video.key),
        }
    return {
        "id": task.id,
        "prompt": task.prompt,
        "state": STATES[task.state],
        "queue_state": queue_state(estimate),
        "created_at": iso_utc(task.created_at),
        "batch_id": "",
        "video": video,
        "video_raw": _image(result.video, url_for) if result and result.video else None,
        "liked": None,
        "estimate_wait_seconds": estimate.wait_seconds if estimate else None,
        "thumbnail": _image(result.thumbnail, url_for) if result else None,
        "last_frame": _image(result.last_frame, url_for) if result and result.last_frame else None,
        "image": _image(result.image, url_for) if result and result.image else None,
        "request": {"prompt": task.prompt, "aspect_ratio": task.aspect_ratio},
        "enhanced_prompt": task.enhanced_prompt,
        "failure_reason": task.failure_reason,
        "failure_code": failure_code(task),
    }


def failure_code(task: Task) -> str | None:
    """Why a generation ended without a video: `cancelled`, or whose fault it was."""
    if task.state is State.CANCELLED:
        return "cancelled"
    return task.failure_code.value if task.failure_code else None


def wrapped(task: Task, request_id: str) -> dict[str, Any]:
    """The answer some gateways give instead: an envelope around a summary."""
    return {
        "code": 200,
        "message": "success",
        "request_id": request_id,
        "data": {
            "task_id": task.id,
            "task_status": STATES[task.state],
            "created_at": int(task.created_at),
            "updated_at": int(task.updated_at),
        },
    }


def callback_payload(task: Task, url_for: UrlFor, event: str = "completed") -> dict[str, Any]:
    """`notify_hook` gets the task object when the task ends."""
    return task_object(task, url_for)
