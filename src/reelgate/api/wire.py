"""The base of every request body the dialects read.

Whatever a dialect accepts is stored and sent back later, so text that cannot
be (a lone surrogate, a NUL) and numbers that are not JSON (`NaN`,
`Infinity`) are refused here, at the edge, with a 400 that names the field,
instead of failing later in the database or in every answer that shows it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import Request
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from reelgate.api.errors import ErrorRouting
from reelgate.domain.errors import InvalidRequest
from reelgate.domain.text import unstorable


class WireModel(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        problem = unstorable(data)
        if problem:
            raise PydanticCustomError("unstorable", problem)
        return data


class PathGuard:
    """ASGI middleware refusing a path or query that holds a NUL (`%00`):
    ids and options are looked up in the database, which cannot take one."""

    def __init__(self, app: Any, errors: ErrorRouting) -> None:
        self.app = app
        self.errors = errors

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope.get("path", "")
            query: bytes = scope.get("query_string", b"")
            if "\x00" in path or b"\x00" in unquote_to_bytes(query):
                error = InvalidRequest("the URL contains a NUL character (%00)")
                await self.errors.render(Request(scope), error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
