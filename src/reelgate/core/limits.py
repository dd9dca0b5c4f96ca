"""Per-token limits: the one place that decides whether a token may add a
task or an upload now, and the queue priority its task gets.

Each limit is the token's own (`TokenLimits`, kept with the token and set
with `reelgate tokens limits`), or the server's setting where the token has
none; 0 turns a count off. Rates and counts are answered with 429 and a
Retry-After; an engine or model the token may not use with 403, naming it.

The store reads the token's usage and limits under the token's lock in the
transaction that inserts, so these checks hold under any number of
concurrent requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace

from reelgate.config import Settings
from reelgate.domain.errors import (
    INVALID_TOKEN,
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
)
from reelgate.domain.types import TokenLimits, TokenUsage

DAY_SECONDS = 86_400.0


def _allowed(what: str, name: str, allowed: Sequence[str] | None) -> None:
    if allowed is not None and name not in allowed:
        choices = ", ".join(allowed) if allowed else "none"
        raise Forbidden(f"this token may not use the {what} {name!r} (it may use: {choices})")


class Limits:
    def __init__(self, settings: Settings) -> None:
        self.per_minute = settings.rate_limit_per_minute
        self.max_active = settings.max_active_tasks
        self.per_day = settings.tasks_per_day
        self.upload_quota = settings.upload_quota_bytes
        self.upload_days = settings.upload_lifetime_seconds / 86_400

    def effective(self, limits: TokenLimits) -> TokenLimits:
        """A token's limits in force: its own, else the server's settings
        (engines and models None: every one; priority 0)."""

        def own(value: int | None, default: int) -> int:
            return default if value is None else value

        return replace(
            limits,
            creates_per_minute=own(limits.creates_per_minute, self.per_minute),
            max_active=own(limits.max_active, self.max_active),
            tasks_per_day=own(limits.tasks_per_day, self.per_day),
            priority=own(limits.priority, 0),
        )

    @staticmethod
    def _live(usage: TokenUsage) -> None:
        """A token revoked since its request was authenticated is refused
        here, read with its usage (`api/auth.py`)."""
        if not usage.live:
            raise Unauthorized(INVALID_TOKEN)

    def rate_window(self, limits: TokenLimits) -> int:
        """How many of a token's newest creates and uploads of the last
        minute `_rate` looks at (a `store.usage.Window`): its per-minute
        limit in force, 0 when its rate is not limited."""
        return self.effective(limits).creates_per_minute or 0

    def _rate(self, usage: TokenUsage) -> None:
        """Creates and uploads together, per token per minute."""
        per_minute = self.rate_window(usage.limits)
        if not per_minute or len(usage.recent) < per_minute:
            return
        wait = usage.recent[-per_minute] + 60 - time.time()
        raise RateLimited(
            f"more than {per_minute} tasks and uploads per minute for this token",
            retry_after=max(1, math.ceil(wait)),
        )

    @staticmethod
    def allow(limits: TokenLimits, engine: str, model: str) -> None:
        """Refuse (403) an engine or model the token's limits leave out;
        `model` is the one asked for, or the one the task would report."""
        _allowed("engine", engine, limits.engines)
        _allowed("model", model, limits.models)

    def admit_task(
        self, usage: TokenUsage, engine: str | None = None, model: str | None = None
    ) -> int:
        """Raise to refuse the token's next task; else the queue priority it
        gets (the token's, 0 by default). `engine` and `model` are checked
        against the token's allowed ones when given."""
        self._live(usage)
        limits = self.effective(usage.limits)
        if engine is not None and model is not None:
            self.allow(limits, engine, model)
        self._rate(usage)
        max_active = limits.max_active
        if max_active and usage.active >= max_active:
            raise RateLimited(
                f"this token already has {max_active} tasks queued or running",
                retry_after=5,
            )
        per_day = limits.tasks_per_day
        if per_day and usage.day >= per_day:
            oldest = usage.day_oldest if usage.day_oldest is not None else time.time()
            raise RateLimited(
                f"this token created {per_day} tasks in the last 24 hours, its daily limit",
                retry_after=max(1, math.ceil(oldest + DAY_SECONDS - time.time())),
            )
        return limits.priority or 0

    def admit_upload(self, usage: TokenUsage, size: int) -> None:
        self._live(usage)
        self._rate(usage)
        if self.upload_quota and usage.upload_bytes + size > self.upload_quota:
            raise PayloadTooLarge(
                f"this upload ({size} bytes) would take the token's stored uploads past its "
                f"quota of {self.upload_quota} bytes (uploads are kept for "
                f"{self.upload_days:g} days)"
            )
