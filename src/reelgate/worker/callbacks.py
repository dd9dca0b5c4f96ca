"""Delivers the callback outbox.

The payload is rendered at delivery time by the dialect that the task came
from (injected as `render`), so the core never learns a wire format. Each
call is signed with the Standard Webhooks scheme (`webhook-id` stays the same
across retries, so receivers can drop duplicates). A non-2xx answer or a
network error is retried with exponential backoff until the delivery window
(default 24 hours) has passed.

Deliveries go out concurrently, at most `callback_concurrency` at once, and
each one gets `callback_timeout` in all (resolve, connect, send, answer): a
receiver that drips its answer is cut off then, like one that is down. At most
`callback_max_per_token` deliveries of one token's tasks and
`callback_max_per_host` to one host are in flight; the rest stay due for a
later claim. So a slow or hostile receiver, or one token with a flood of
callbacks, holds its share of the pool and never delays everyone else's.

The dispatcher thread runs an event loop of its own; the database and the
dialects' renderers, which block, run in threads beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from reelgate.config import Settings
from reelgate.domain.models import Task
from reelgate.domain.retry import Backoff
from reelgate.domain.types import Delivery
from reelgate.media.fetch import FetchError, GuardedClient
from reelgate.metrics import NO_METRICS, Metrics
from reelgate.store.callbacks import Busy, CallbackStore, host_of
from reelgate.store.tasks import TaskStore

log = logging.getLogger(__name__)

RenderCallback = Callable[[str, Task, str], Any]
"""(dialect, task, event) -> JSON payload; event is the state the call reports."""

TICK = 0.05
"""Seconds between looks at the thread events that wake and stop the dispatcher."""

STOP_GRACE = 1.0
"""Seconds in-flight deliveries get to finish when the server stops; the rest
are handed back to the outbox unsent."""

LEASE_MARGIN = 60.0
"""Seconds a claimed delivery stays leased beyond its POST's deadline."""


class Shares:
    """Deliveries in flight per token and per host, and the caps on them; and
    the tasks with one in flight (a task's callbacks go out one at a time, so
    "dreaming" is never overtaken by "completed")."""

    def __init__(self, per_token: int, per_host: int) -> None:
        self.per_token = per_token
        self.per_host = per_host
        self.tokens: Counter[str | None] = Counter()
        self.hosts: Counter[str] = Counter()
        self.tasks: set[str] = set()

    def admits(self, owner: str | None, delivery: Delivery) -> bool:
        """Whether one more delivery for `owner` stays within both caps (a
        delivery whose task is gone has no token to count against) and its
        task has none in flight."""
        token_ok = owner is None or self.tokens[owner] < self.per_token
        host_ok = self.hosts[host_of(delivery.url)] < self.per_host
        return token_ok and host_ok and delivery.task_id not in self.tasks

    def add(self, owner: str | None, delivery: Delivery) -> None:
        self.tokens[owner] += 1
        self.hosts[host_of(delivery.url)] += 1
        self.tasks.add(delivery.task_id)

    def remove(self, owner: str | None, delivery: Delivery) -> None:
        """Count one delivery out; `-=` keeps only positive counts, so tokens
        and hosts seen once are not remembered for ever."""
        self.tokens -= Counter({owner: 1})
        self.hosts -= Counter({host_of(delivery.url): 1})
        self.tasks.discard(delivery.task_id)

    def busy(self) -> Busy:
        """What a claim should pass over in its query."""
        return Busy(
            owners=frozenset(o for o, n in self.tokens.items() if o and n >= self.per_token),
            hosts=frozenset(h for h, n in self.hosts.items() if n >= self.per_host),
            tasks=frozenset(self.tasks),
        )

    def copy(self) -> Shares:
        twin = Shares(self.per_token, self.per_host)
        twin.tokens.update(self.tokens)
        twin.hosts.update(self.hosts)
        twin.tasks.update(self.tasks)
        return twin


class CallbackDispatcher:
    def __init__(
        self,
        settings: Settings,
        callbacks: CallbackStore,
        tasks: TaskStore,
        client: GuardedClient,
        render: RenderCallback,
        signer: Webhook,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.callbacks = callbacks
        self.tasks = tasks
        self.client = client
        self.render = render
        self.signer = signer
        self.backoff = Backoff(
            settings.callback_backoff_seconds, cap=settings.callback_max_backoff_seconds
        )
        self.shares = Shares(settings.callback_max_per_token, settings.callback_max_per_host)
        self.running: dict[asyncio.Task[None], Delivery] = {}

    def run(self, stop: threading.Event, wake: threading.Event) -> None:
        """The dispatcher thread: deliver until `stop` is set."""
        asyncio.run(self._serve(stop, wake))

    async def _serve(self, stop: threading.Event, wake: threading.Event) -> None:
        """Claim when woken, when a delivery ends (a slot and perhaps a share
        came free) or every poll interval; wait for nothing in between."""
        freed = asyncio.Event()
        async with self.client.async_http() as http:
            next_poll = 0.0
            while not stop.is_set():
                if wake.is_set() or freed.is_set() or time.monotonic() >= next_poll:
                    wake.clear()
                    freed.clear()
                    next_poll = time.monotonic() + self.settings.poll_interval
                    await self._start_due(http, freed)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(freed.wait(), TICK)
            await self._stop_running()

    async def _start_due(self, http: httpx.AsyncClient, freed: asyncio.Event) -> None:
        try:
            due = await self._claim()
        except Exception:
            log.exception("claiming due callbacks failed")
            return
        for delivery, owner in due:
            self.shares.add(owner, delivery)
            task = asyncio.create_task(self._deliver(http, delivery))
            self.running[task] = delivery
            task.add_done_callback(functools.partial(self._finished, owner, freed))

    async def _claim(self) -> list[tuple[Delivery, str | None]]:
        """Lease as many due deliveries as there are free slots, skipping those
        whose token or host has its share in flight already."""
        free = self.settings.callback_concurrency - len(self.running)
        if free <= 0:
            return []
        view = self.shares.copy()  # the claim runs in a thread; counts change here
        owners: dict[str, str | None] = {}

        def admit(delivery: Delivery, owner: str | None) -> bool:
            if not view.admits(owner, delivery):
                return False
            view.add(owner, delivery)
            owners[delivery.id] = owner
            return True

        # The POST has its deadline; the lease also covers reading the task,
        # rendering and recording, which have none of their own.
        lease = self.settings.callback_timeout + LEASE_MARGIN
        due = await asyncio.to_thread(
            self.callbacks.claim_due, free, lease, admit, self.shares.busy()
        )
        return [(delivery, owners[delivery.id]) for delivery in due]

    def _finished(self, owner: str | None, freed: asyncio.Event, task: asyncio.Task[None]) -> None:
        delivery = self.running.pop(task)
        self.shares.remove(owner, delivery)
        freed.set()

    async def _stop_running(self) -> None:
        """Let in-flight deliveries finish for a moment, then cancel the rest
        and hand them back, so the next dispatcher sends them at once."""
        if not self.running:
            return
        _, pending = await asyncio.wait(list(self.running), timeout=STOP_GRACE)
        unsent = [self.running[task].id for task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        try:
            await asyncio.to_thread(self.callbacks.release, unsent)
        except Exception:
            log.exception("handing back unsent callbacks failed")

    def signed(self, delivery: Delivery, payload: Any) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        now = datetime.now(UTC)
        return body.encode("utf-8"), {
            "content-type": "application/json",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(delivery.id, now, body),
        }

    async def _deliver(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        """One attempt, recorded; a failed one is retried with the backoff."""
        try:
            task = await asyncio.to_thread(self.tasks.get, delivery.task_id)
            if task is None:
                self.metrics.callback_delivered("task_gone", 0.0)
                await asyncio.to_thread(
                    self.callbacks.record_attempt,
                    delivery.id,
                    ok=False,
                    status=None,
                    error="task no longer exists",
                    retry_at=None,
                )
                return
            began = time.perf_counter()
            status, error = await self._send(http, delivery, task)
            ok = status is not None and 200 <= status < 300
            if not ok and error is None:
                error = f"receiver answered HTTP {status}"
            if not ok:
                log.info("callback %s for task %s: %s", delivery.id, delivery.task_id, error)
            retry_at = None if ok else self._retry_at(delivery)
            outcome = "delivered" if ok else "retry" if retry_at is not None else "gave_up"
            self.metrics.callback_delivered(outcome, time.perf_counter() - began)
            await asyncio.to_thread(
                self.callbacks.record_attempt,
                delivery.id,
                ok=ok,
                status=status,
                error=error,
                retry_at=retry_at,
            )
        except Exception:  # its lease runs out and it is tried again
            log.exception("callback %s for task %s", delivery.id, delivery.task_id)

    async def _send(
        self, http: httpx.AsyncClient, delivery: Delivery, task: Task
    ) -> tuple[int | None, str | None]:
        """POST the signed payload: (status, None), or (None, why it failed)."""
        try:
            payload = await asyncio.to_thread(self.render, delivery.dialect, task, delivery.event)
            body, headers = self.signed(delivery, payload)
            return await self.client.post_async(http, delivery.url, body, headers), None
        except FetchError as exc:
            return None, str(exc)
        except Exception as exc:  # network errors: retried
            return None, f"{exc.__class__.__name__}: {exc}"

    def _retry_at(self, delivery: Delivery) -> float | None:
        """Exponential backoff, capped; None once the delivery window is over."""
        delay = self.backoff.delay(delivery.attempts + 1)
        at = time.time() + delay
        return at if at <= delivery.created_at + self.settings.callback_window_seconds else None
