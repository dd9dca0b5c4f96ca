"""Small value types that cross layers: who is calling, how a callback went,
which upstream key a create may use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TokenLimits:
    """One token's own limits, kept with the token. A None field falls back
    to the server's setting (`core/limits.py` decides with both); 0 turns a
    count off. `engines` and `models` name what the token may use (None:
    every one). `priority` orders its tasks in the queue (higher first)."""

    creates_per_minute: int | None = None
    max_active: int | None = None
    tasks_per_day: int | None = None
    engines: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    priority: int | None = None

    def to_dict(self) -> dict[str, Any] | None:
        """The fields that are set, as stored (JSON); None when none is."""
        data = {
            f.name: list(value) if isinstance(value, tuple) else value
            for f in fields(self)
            if (value := getattr(self, f.name)) is not None
        }
        return data or None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TokenLimits:
        """From the stored JSON; keys this version does not know are ignored."""
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in data.items()
            if key in known
        }
        return cls(**values)


@dataclass(frozen=True)
class TokenInfo:
    """An API token as the rest of the server sees it (never its secret)."""

    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None
    limits: TokenLimits = TokenLimits()


@dataclass(frozen=True)
class Delivery:
    """One callback in the outbox and how its delivery has gone so far."""

    id: str
    task_id: str
    url: str
    dialect: str
    event: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True)
class Reservation:
    """Either an upstream key to create with now, or how long to wait for one."""

    key_id: str | None
    wait: float = 0.0
    why: str = ""


@dataclass(frozen=True)
class TokenUsage:
    """What one token has in use, read under its lock so limits hold under
    concurrent requests: creation times of its newest tasks and uploads in
    the last minute (oldest first; only as many as its per-minute limit, the
    most the rate check looks at), its queued and running tasks, its stored uploads,
    the tasks it created in the last 24 hours (and when the oldest of them
    was), and its own limits (read under the same lock, so a change applies
    to the next create)."""

    recent: list[float]
    active: int
    upload_bytes: int
    day: int = 0
    day_oldest: float | None = None
    limits: TokenLimits = TokenLimits()
    live: bool = True
    """False: the token is revoked (or gone), read in the same transaction."""


@dataclass(frozen=True)
class QueueEstimate:
    """Where a queued task stands: its place among the tasks its worker pool
    will claim (1: the next one) and about how long until a worker starts it,
    from the pool's recent run times (None: no recent history to go by)."""

    position: int
    wait_seconds: int | None

    @property
    def ahead(self) -> int:
        return self.position - 1

    def describe(self) -> str:
        """In words, for messages: "number 3 in the queue, about 40 s from starting"."""
        where = f"number {self.position} in the queue"
        if self.wait_seconds is None:
            return where
        return f"{where}, about {self.wait_seconds} s from starting"
