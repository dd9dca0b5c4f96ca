"""The dialects this server speaks: one line each.

A dialect is a package that owns a path prefix: its routes translate wire
fields to neutral requests and neutral tasks back, its error renderer shapes
every error under its prefix, and its callback payload is what its clients
receive when a task changes state. The app factory and the callback
dispatcher take everything from this list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from reelgate.api import acedata, generations, official
from reelgate.api.context import ApiContext
from reelgate.api.errors import ErrorRenderer
from reelgate.domain.models import Task

UrlFor = Callable[[str], str]


@dataclass(frozen=True)
class Dialect:
    name: str
    """Stored on tasks (`origin`, callback dialect)."""
    prefixes: tuple[str, ...]
    render_error: ErrorRenderer
    build_router: Callable[[ApiContext], APIRouter]
    callback_payload: Callable[[Task, UrlFor, str], Any]
    """(task, url_for, event) -> the JSON body of a callback."""


DIALECTS = (
    Dialect(
        acedata.DIALECT,
        acedata.PREFIXES,
        acedata.render_error,
        acedata.build_router,
        acedata.callback_payload,
    ),
    Dialect(
        generations.DIALECT,
        (generations.PREFIX,),
        generations.render_error,
        generations.build_router,
        generations.callback_payload,
    ),
    Dialect(
        official.DIALECT,
        (official.PREFIX,),
        official.render_error,
        official.build_router,
        official.callback_payload,
    ),
)
