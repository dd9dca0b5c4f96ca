"""Neutral tasks in AceData's wire shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reelgate.domain.models import FailureCode, State, Task

UrlFor = Callable[[str], str]


FAILURES: dict[FailureCode, tuple[str, int]] = {
    FailureCode.INVALID_INPUT: ("bad_request", 400),
    FailureCode.UPSTREAM: ("api_error", 502),
    FailureCode.UNAVAILABLE: ("api_error", 503),
    FailureCode.TIMEOUT: ("timeout", 504),
    FailureCode.INTERNAL: ("api_error", 500),
}
"""AceData's error code and HTTP status for each way a task can fail."""


def failure_error(code: FailureCode | None) -> tuple[str, int]:
    return FAILURES[code or FailureCode.INTERNAL]


def error_code_for_failure(task: Task) -> str:
    """The `error.code` of a task that ended without a video: `cancelled`
    for one that was cancelled, else by whose fault it failed."""
    if task.state is State.CANCELLED:
        return "cancelled"
    return failure_error(task.failure_code)[0]


def flat_result(task: Task, url_for: UrlFor) -> dict[str, Any]:
    """The `/luma/videos` answer: the finished video, or the task's state so far.

    An unfinished task says "processing" and never `success: false`, which
    real clients would read as a failure."""
    base: dict[str, Any] = {"task_id": task.id, "video_id": task.video_id, "prompt": task.prompt}
    if task.state is State.COMPLETED and task.result is not None:
        video, thumb = task.result.video, task.result.thumbnail
        made: dict[str, Any] = {"video_url": None, "image_url": url_for(task.result.main.key)}
        if video is not None:  # else an image generation of the official dialect
            made = {
                "video_url": url_for(video.key),
                "video_width": video.width,
                "video_height": video.height,
            }
        return {
            "success": True,
            **base,
            **made,
            "state": "completed",
            "thumbnail_url": url_for(thumb.key),
            "thumbnail_width": thumb.width,
            "thumbnail_height": thumb.height,
        }
    if task.state in (State.FAILED, State.CANCELLED):
        return {
            "success": False,
            **base,
            "state": "failed",
            "error": {
                "code": error_code_for_failure(task),
                "message": task.failure_reason or task.state.value,
            },
        }
    return {**base, "state": "processing", "progress": round(task.progress, 3)}


def retrieve_item(task: Task, url_for: UrlFor) -> dict[str, Any]:
    response = flat_result(task, url_for)
    return {
        "id": task.id,
        "video_id": task.video_id,
        "created_at": task.created_at,
        "finished_at": task.finished_at,
        "request": task.origin_request,
        "enhanced_prompt": task.enhanced_prompt,
        "response": response,
        "data": response,
    }


def callback_payload(task: Task, url_for: UrlFor, event: str = "completed") -> dict[str, Any]:
    """The flat result; AceData calls back only when a task ends."""
    return flat_result(task, url_for)
