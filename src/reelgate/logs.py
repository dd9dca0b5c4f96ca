"""Logging: plain text (the default) or JSON lines, and the context every
line carries.

What a line is about (the request id, the task id, the name of the token
that made the request) lives in one context variable, bound by the HTTP
middleware for each request and by the worker around each task, and read
when a line is written, so no call site passes it along. The context is a
mutable object: the authenticator runs in a worker thread of its own
(FastAPI runs sync dependencies in a thread pool, with a copy of the
context), and the token name it notes must still reach the access line
written back in the event loop. A token's secret is never part of it: only
its name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import IO, Literal

LogFormat = Literal["text", "json"]

FIELDS = ("request_id", "task_id", "token")
"""Context fields a JSON line carries when they are known."""
EXTRAS = ("http",)
"""Structured fields a line may be given (`extra=`): the access line's request."""

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
"""A request id a client may choose: short, printable, no spaces or quotes."""


@dataclass
class LogContext:
    request_id: str | None = None
    task_id: str | None = None
    token: str | None = None
    """The token's name (never its secret)."""


_context: ContextVar[LogContext | None] = ContextVar("reelgate_log_context", default=None)


def current() -> LogContext | None:
    return _context.get()


@contextlib.contextmanager
def bound(**fields: str | None) -> Iterator[LogContext]:
    """Lines written inside carry `fields` (and what the outer context had)."""
    outer = _context.get()
    context = replace(outer or LogContext(), **fields)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def note(**fields: str | None) -> None:
    """Add to the context bound now (e.g. the token name, once known); seen
    by every line of the request or task from here on, in any thread that
    shares it. Outside a bound context it does nothing."""
    context = _context.get()
    if context is not None:
        for name, value in fields.items():
            setattr(context, name, value)


def request_id(given: str | None) -> str:
    """The client's `X-Request-ID` when it is a sane one, else a new id."""
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class _ContextFilter(logging.Filter):
    """Stamps the context onto each record where it is written (the thread
    that logs it), whatever formats it later."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, getattr(context, name) if context else None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger,
    message, the context fields that are known, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, object] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*FIELDS, *EXTRAS):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """The plain format, with the context that is known after the message
    (`[request_id=... token=...]`)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        known = [f"{n}={getattr(record, n)}" for n in FIELDS if getattr(record, n, None)]
        if not known:
            return line
        head, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{head} [{' '.join(known)}]{newline}{rest}"


def handler(fmt: LogFormat = "text", stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing `fmt` lines to `stream` (standard error), with the context."""
    out = logging.StreamHandler(stream or sys.stderr)
    out.addFilter(_ContextFilter())
    out.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return out


def configure(level: str, fmt: LogFormat = "text") -> None:
    """Set up the root logger for a `reelgate` process (replacing what an
    earlier call set up)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(fmt))
    root.setLevel(level.upper())
    # httpx logs every outgoing request's URL at INFO: callback URLs and
    # users' image links can carry secrets in their queries.
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)
