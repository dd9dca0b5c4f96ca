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
