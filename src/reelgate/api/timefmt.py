"""Times as the web-style dialects write them."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(ts: float) -> str:
    """UNIX seconds as ISO-8601 with microseconds and a `Z`, as Luma answers."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
