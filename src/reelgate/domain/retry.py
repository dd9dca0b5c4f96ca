"""The one retry policy: capped exponential backoff.

Used for a task's next attempt, a callback's next delivery and an upstream
engine's next request, so every wait in the server grows the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float
    """The wait before the first retry, in seconds."""
    factor: float = 2.0
    cap: float = math.inf
    """No wait is longer than this."""

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1 = the first)."""
        exponent = max(0, attempt - 1)
        try:
            return min(self.base * self.factor**exponent, self.cap)
        except OverflowError:
            return self.cap

    def next(self, current: float) -> float:
        """The wait after `current`, for loops that carry their wait along."""
        return min(current * self.factor, self.cap)
