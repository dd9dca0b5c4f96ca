"""Delivers the callback outbox.

The payload is rendered at delivery time by the dialect that the task came
from (injected as `render`), so the core never learns a wire format. Each
call is signed with the Standard Webhooks scheme (`webhook-id` stays the same
across retries, so receivers can drop duplicates). A non-2xx answer or a
network error is retried with exponential backoff until the delivery window
(default 24 hours) has passed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from reelgate.config import Settings
from reelgate.domain.models import Task
from reelgate.domain.retry import Backoff
from reelgate.domain.types import Delivery
from reelgate.media.fetch import FetchError, GuardedClient
from reelgate.store.callbacks import CallbackStore
from reelgate.store.tasks import TaskStore

log = logging.getLogger(__name__)

RenderCallback = Callable[[str, Task, str], Any]
"""(dialect, task, event) -> JSON payload; event is the state the call reports."""


class CallbackDispatcher:
    def __init__(
        self,
        settings: Settings,
        callbacks: CallbackStore,
        tasks: TaskStore,
        client: GuardedClient,
        render: RenderCallback,
        signer: Webhook,
    ) -> None:
        self.settings = settings
        self.callbacks = callbacks
        self.tasks = tasks
        self.client = client
        self.render = render
        self.signer = signer
        self.backoff = Backoff(
            settings.callback_backoff_seconds, cap=settings.callback_max_backoff_seconds
        )

    def run(self, stop: threading.Event, wake: threading.Event) -> None:
        while not stop.is_set():
            try:
                sent = self.run_once()
            except Exception:
                log.exception("callback dispatcher error")
                sent = 0
            if not sent:
                wake.wait(self.settings.poll_interval)
                wake.clear()

    def run_once(self, limit: int = 16) -> int:
        due = self.callbacks.claim_due(limit, lease_seconds=self.settings.callback_timeout * 3)
        for delivery in due:
            self.deliver(delivery)
        return len(due)

    def signed(self, delivery: Delivery, payload: Any) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        now = datetime.now(UTC)
        return body.encode("utf-8"), {
            "content-type": "application/json",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(delivery.id, now, body),
        }

    def deliver(self, delivery: Delivery) -> None:
        task = self.tasks.get(delivery.task_id)
        if task is None:
            self.callbacks.record_attempt(
                delivery.id, ok=False, status=None, error="task no longer exists", retry_at=None
            )
            return
        status: int | None = None
        error: str | None = None
        try:
            body, headers = self.signed(
                delivery, self.render(delivery.dialect, task, delivery.event)
            )
            status = self.client.post(delivery.url, body, headers)
        except FetchError as exc:
            error = str(exc)
        except Exception as exc:  # network errors: retried
            error = f"{exc.__class__.__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        if not ok and error is None:
            error = f"receiver answered HTTP {status}"
        if not ok:
            log.info("callback %s for task %s: %s", delivery.id, delivery.task_id, error)
        self.callbacks.record_attempt(
            delivery.id,
            ok=ok,
            status=status,
            error=error,
            retry_at=None if ok else self._retry_at(delivery),
        )

    def _retry_at(self, delivery: Delivery) -> float | None:
        """Exponential backoff, capped; None once the delivery window is over."""
        delay = self.backoff.delay(delivery.attempts + 1)
        at = time.time() + delay
        return at if at <= delivery.created_at + self.settings.callback_window_seconds else None
