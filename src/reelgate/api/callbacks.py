"""Which dialect renders a task's callback payload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reelgate.api import acedata, generations, official
from reelgate.core.models import Task

UrlFor = Callable[[str], str]

_PAYLOADS: dict[str, Callable[[Task, UrlFor, str], Any]] = {
    acedata.DIALECT: acedata.callback_payload,
    generations.DIALECT: generations.callback_payload,
    official.DIALECT: official.callback_payload,
}


def callback_renderer(url_for: UrlFor) -> Callable[[str, Task, str], Any]:
    def render(dialect: str, task: Task, event: str) -> Any:
        return _PAYLOADS[dialect](task, url_for, event)

    return render
