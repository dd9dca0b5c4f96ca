"""Neutral tasks as official `Generation` objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reelgate.api.timefmt import iso_utc
from reelgate.domain.models import GENERATION_TYPES, Kind, State, Task

UrlFor = Callable[[str], str]

STATES = {
    State.QUEUED: "queued",
    State.RUNNING: "dreaming",
    State.COMPLETED: "completed",
    State.FAILED: "failed",
    State.CANCELLED: "failed",
}


def generation(task: Task, url_for: UrlFor, state: State | None = None) -> dict[str, Any]:
    """The Generation object; `state` renders it as of an earlier state change."""
    state = state or task.state
    result = task.result if state is State.COMPLETED else None
    return {
        "id": task.id,
        "generation_type": GENERATION_TYPES[task.kind],
        "state": STATES[state],
        "failure_reason": task.failure_reason if state in (State.FAILED, State.CANCELLED) else None,
        "created_at": iso_utc(task.created_at),
        "assets": {
            "video": url_for(result.video.key) if result and result.video else None,
            "image": url_for((result.image or result.thumbnail).key) if result else None,
            "progress_video": None,
        },
        "model": task.model,
        "request": _request(task),
    }


def _request(task: Task) -> dict[str, Any]:
    """The request echoed: what the client sent, with what was decided for
    it where it left that open (an upscale's resolution)."""
    echo = {**task.origin_request, "generation_type": GENERATION_TYPES[task.kind]}
    if task.kind is Kind.UPSCALE:
        echo["resolution"] = task.resolution
    return echo


def callback_payload(task: Task, url_for: UrlFor, event: str) -> dict[str, Any]:
    return generation(task, url_for, State(event))
