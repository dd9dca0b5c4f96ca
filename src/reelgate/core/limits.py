"""Per-token limits: the one place that decides whether a token may add a
task or an upload now (answered with 429 and a Retry-After).

The store reads the token's usage under the token's lock in the transaction
that inserts, so these checks hold under any number of concurrent requests.
"""

from __future__ import annotations

import math
import time

from reelgate.config import Settings
from reelgate.domain.errors import PayloadTooLarge, RateLimited
from reelgate.domain.types import TokenUsage


class Limits:
    def __init__(self, settings: Settings) -> None:
        self.per_minute = settings.rate_limit_per_minute
        self.max_active = settings.max_active_tasks
        self.upload_quota = settings.upload_quota_bytes
        self.upload_days = settings.upload_lifetime_seconds / 86_400

    def _rate(self, usage: TokenUsage) -> None:
        """Creates and uploads together, per token per minute."""
        if not self.per_minute or len(usage.recent) < self.per_minute:
            return
        wait = usage.recent[-self.per_minute] + 60 - time.time()
        raise RateLimited(
            f"more than {self.per_minute} tasks and uploads per minute for this token",
            retry_after=max(1, math.ceil(wait)),
        )

    def admit_task(self, usage: TokenUsage) -> None:
        self._rate(usage)
        if self.max_active and usage.active >= self.max_active:
            raise RateLimited(
                f"this token already has {self.max_active} tasks queued or running",
                retry_after=5,
            )

    def admit_upload(self, usage: TokenUsage, size: int) -> None:
        self._rate(usage)
        if self.upload_quota and usage.upload_bytes + size > self.upload_quota:
            raise PayloadTooLarge(
                f"this upload ({size} bytes) would take the token's stored uploads past its "
                f"quota of {self.upload_quota} bytes (uploads are kept for "
                f"{self.upload_days:g} days)"
            )
