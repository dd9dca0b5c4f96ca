"""Neutral errors. Each dialect renders them in its own error shape and status."""

from __future__ import annotations


class ReelgateError(Exception):
    code = "internal"

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id


class InvalidRequest(ReelgateError):
    code = "invalid_request"


class Unauthorized(ReelgateError):
    code = "unauthorized"


class Forbidden(ReelgateError):
    code = "forbidden"


class NotFound(ReelgateError):
    code = "not_found"


class PayloadTooLarge(ReelgateError):
    code = "payload_too_large"


class RateLimited(ReelgateError):
    """Too many requests; `retry_after` (seconds) becomes the Retry-After header."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WaitTimeout(ReelgateError):
    """A synchronous call ran out of time; the task goes on and can be polled."""

    code = "timeout"


class TaskFailed(ReelgateError):
    """A synchronous call whose task failed; `input_error` tells the client's
    fault (unusable inputs) from the server's."""

    code = "task_failed"

    def __init__(
        self, message: str, *, task_id: str | None = None, input_error: bool = False
    ) -> None:
        super().__init__(message, task_id=task_id)
        self.input_error = input_error
