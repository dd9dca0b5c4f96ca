"""Callback delivery records as the dialects show them on a task."""

from __future__ import annotations

from typing import Any

from reelgate.domain.types import Delivery


def delivery_dict(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "url": d.url,
        "event": d.event,
        "state": d.state,
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "delivered_at": d.delivered_at,
    }
