"""The official Luma dialect under `/dream-machine/v1` (works with the `lumaai` SDK)."""

from reelgate.api.official.present import callback_payload
from reelgate.api.official.routes import DIALECT, PREFIX, build_router, render_error

__all__ = ["DIALECT", "PREFIX", "build_router", "callback_payload", "render_error"]
