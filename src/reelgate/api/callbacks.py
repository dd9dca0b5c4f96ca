"""Which dialect renders a task's callback payload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reelgate.api import acedata
from reelgate.core.models import Task

_PAYLOADS: dict[str, Callable[[Task, Callable[[str], str]], Any]] = {
    acedata.DIALECT: acedata.callback_payload,
}


def callback_renderer(url_for: Callable[[str], str]) -> Callable[[str, Task], Any]:
    def render(dialect: str, task: Task) -> Any:
        return _PAYLOADS[dialect](task, url_for)

    return render
