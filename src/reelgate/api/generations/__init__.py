"""The `/luma/generations` gateway dialect."""

from reelgate.api.generations.present import callback_payload
from reelgate.api.generations.routes import (
    DIALECT,
    PREFIX,
    build_router,
    render_error,
    tasks_by_ids,
)

__all__ = ["DIALECT", "PREFIX", "build_router", "callback_payload", "render_error", "tasks_by_ids"]
