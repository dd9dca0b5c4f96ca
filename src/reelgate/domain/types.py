"""Small value types that cross layers: who is calling, how a callback went,
which upstream key a create may use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenInfo:
    """An API token as the rest of the server sees it (never its secret)."""

    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None


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
    concurrent requests: creation times of its tasks and uploads in the last
    minute (oldest first), its queued and running tasks, its stored uploads."""

    recent: list[float]
    active: int
    upload_bytes: int


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
