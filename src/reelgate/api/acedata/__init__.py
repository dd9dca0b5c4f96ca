"""The AceData dialect: `POST /luma/videos` and `POST /luma/tasks`."""

from reelgate.api.acedata.present import callback_payload
from reelgate.api.acedata.routes import (
    DIALECT,
    PREFIXES,
    build_router,
    render_error,
    retrieves_one,
    task_action,
)
from reelgate.api.acedata.schemas import TasksRequest

__all__ = [
    "DIALECT",
    "PREFIXES",
    "TasksRequest",
    "build_router",
    "callback_payload",
    "render_error",
    "retrieves_one",
    "task_action",
]
