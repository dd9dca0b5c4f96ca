"""Neutral errors.

Two families. `ReelgateError`s answer a request: each dialect renders them in
its own error shape and status. `TaskError`s end a task's attempt: each
carries the failure code clients see (so a dialect can tell the client's
fault from the server's or the upstream's) and whether another attempt may
succeed, so the worker has one rule for retrying.
"""

from __future__ import annotations

from reelgate.domain.models import FailureCode


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


INVALID_TOKEN = "invalid or revoked token"
"""What a request with an unknown or revoked token is told (`Unauthorized`)."""


class Forbidden(ReelgateError):
    code = "forbidden"


class NotFound(ReelgateError):
    code = "not_found"


class Conflict(ReelgateError):
    """The task is not in a state that allows this (cancelling a finished
    task, retrying one that has not failed): 409."""

    code = "conflict"


class Expired(ReelgateError):
    """The task named has expired: retention deleted its files (410 Gone)."""

    code = "expired"


class ServiceUnavailable(ReelgateError):
    """Something the server relies on (the object store) is down for now."""

    code = "unavailable"


class PayloadTooLarge(ReelgateError):
    code = "payload_too_large"


class MethodNotAllowed(ReelgateError):
    """The path exists but not for this HTTP method; `allowed` lists the ones
    it takes (the Allow header)."""

    code = "method_not_allowed"

    def __init__(self, message: str, *, allowed: str = "") -> None:
        super().__init__(message)
        self.allowed = allowed


class RangeNotSatisfiable(ReelgateError):
    """A byte range outside the file; `size` goes in `Content-Range: bytes */size`."""

    code = "range_not_satisfiable"

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


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
    """A synchronous call whose task failed; `failure_code` says whose fault it was."""

    code = "task_failed"

    def __init__(
        self,
        message: str,
        *,
        task_id: str | None = None,
        failure_code: FailureCode = FailureCode.INTERNAL,
    ) -> None:
        super().__init__(message, task_id=task_id)
        self.failure_code = failure_code


# Why a task's attempt ended


class TaskError(Exception):
    """An attempt at a task cannot finish. The message is safe to show the client."""

    code: FailureCode = FailureCode.INTERNAL
    retryable: bool = False
    """Whether another attempt may succeed where this one failed."""

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class InvalidInput(TaskError):
    """The client's request or inputs cannot be used (another attempt would repeat it)."""

    code = FailureCode.INVALID_INPUT


class UpstreamFailed(TaskError):
    """The service an engine relies on failed or refused the generation."""

    code = FailureCode.UPSTREAM


class InputUnreachable(UpstreamFailed):
    """The upstream could not fetch input images it was given (`urls`). When
    the links were our own, the server was probably unreachable for a moment
    (a restart), and the worker makes it `retryable` with a new generation."""

    def __init__(
        self, message: str, *, urls: tuple[str, ...], retryable: bool | None = None
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.urls = urls


class Unavailable(TaskError):
    """The server cannot do this now (no usable key, an engine that cannot load,
    a transient failure); retried when `retryable`."""

    code = FailureCode.UNAVAILABLE


class TimedOut(TaskError):
    """The generation took longer than its deadline."""

    code = FailureCode.TIMEOUT


class NoUsableKey(Unavailable):
    """Every configured upstream key is set aside for good; the message says why."""


class StorageUnavailable(Unavailable):
    """The object store failed or could not be reached. The message names the
    operation and the kind of failure only: never the endpoint, the bucket,
    a key or the store's error body (which can carry credentials)."""

    retryable = True
