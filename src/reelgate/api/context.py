"""What every dialect's routes need, handed over by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reelgate.api.auth import Authenticator
from reelgate.api.waiting import CompletionHub
from reelgate.config import Settings
from reelgate.core.inputs import UploadService
from reelgate.core.service import TaskService


@dataclass
class ApiContext:
    settings: Settings
    service: TaskService
    hub: CompletionHub
    auth: Authenticator
    url_for: Callable[[str], str]
    uploads: UploadService
