"""Waiting for tasks without a thread or a connection per waiting client.

Each waiting request is only an asyncio future. One poller asks the store,
in a single query, which of the awaited tasks have finished; workers in the
same process also ring the hub directly, and on PostgreSQL the process's
listener rings it for tasks finished anywhere, so sync answers go out at once.
The poll is the safety net for what a ring misses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

from anyio.to_thread import run_sync

from reelgate.store.tasks import TaskStore

log = logging.getLogger(__name__)


class CompletionHub:
    def __init__(self, tasks: TaskStore, poll_interval: float | Callable[[], float]) -> None:
        """`poll_interval`: seconds between polls, or what says it before each
        (longer while notifications arrive)."""
        self.tasks = tasks
        self.poll_interval = poll_interval
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Task[None] | None = None
        self._poll_now: asyncio.Event | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._poll_now = asyncio.Event()
        self._poller = asyncio.create_task(self._poll_forever(), name="completion-poller")

    async def stop(self) -> None:
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    @property
    def waiting(self) -> int:
        return sum(len(s) for s in self._waiters.values())

    async def wait(self, task_id: str, timeout: float) -> bool:
        """True when the task reached a terminal state within `timeout` seconds."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[task_id].add(future)
        try:
            # A task may finish between creation and registration: check once.
            if await run_sync(self.tasks.terminal_among, [task_id]):
                return True
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[task_id]

    def notify_threadsafe(self, task_id: str) -> None:
        """Called by in-process workers (other threads) when a task finishes."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._resolve, task_id)

    def poll_soon_threadsafe(self) -> None:
        """Poll at once (from any thread): rings may have been missed, as
        while the listener was disconnected."""
        if self._loop is not None and self._poll_now is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._poll_now.set)

    def _resolve(self, task_id: str) -> None:
        for future in self._waiters.get(task_id, ()):
            if not future.done():
                future.set_result(None)

    async def _next_poll(self) -> None:
        """Sleep until the next poll is due, or until asked to poll at once."""
        interval = self.poll_interval
        seconds = interval() if callable(interval) else interval
        if self._poll_now is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poll_now.wait(), seconds)
        self._poll_now.clear()

    async def _poll_forever(self) -> None:
        while True:
            await self._next_poll()
            if not self._waiters:
                continue
            try:
                done = await run_sync(self.tasks.terminal_among, list(self._waiters))
            except Exception:  # a database hiccup must not end the poller
                log.exception("completion poll failed")
                continue
            for task_id in done:
                self._resolve(task_id)
