"""Which dialect renders a task's callback payload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reelgate.api.dialects import DIALECTS, UrlFor
from reelgate.domain.models import Task

_PAYLOADS = {dialect.name: dialect.callback_payload for dialect in DIALECTS}


def callback_renderer(url_for: UrlFor) -> Callable[[str, Task, str], Any]:
    def render(dialect: str, task: Task, event: str) -> Any:
        return _PAYLOADS[dialect](task, url_for, event)

    return render
