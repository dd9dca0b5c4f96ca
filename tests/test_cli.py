"""The `reelgate` command never prints a database password."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from reelgate import cli

PG_URL = "postgresql://user:s3cret@127.0.0.1:5432/db"


def test_shown_url_hides_only_the_password() -> None:
    assert cli._shown_url(PG_URL) == "postgresql://user:***@127.0.0.1:5432/db"
    assert cli._shown_url("postgresql+psycopg://user@db.example/app") == (
        "postgresql+psycopg://user@db.example/app"
    )
    sqlite = "sqlite:////var/lib/reelgate data/reelgate.db"
    assert cli._shown_url(sqlite) == sqlite


def _stand_in(on_start: Callable[[], None]) -> type:
    """A runtime for `reelgate worker` without a database or threads: starting
    its workers calls `on_start`."""

    class StandIn:
        def __init__(self, settings: Any) -> None:
            self.settings = settings
            self.storage = SimpleNamespace(links_through_api=False)

        def asset_url(self, key: str) -> str:
            return key

        def start_workers(self, count: int, renderer: Any, **options: Any) -> None:
            on_start()

        def close(self) -> None:
            pass

    return StandIn


def test_worker_prints_the_database_url_without_its_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`reelgate worker` with a stand-in runtime: no database, no threads.
    The stand-in sends the SIGTERM handler the command installed, so the
    command returns as soon as its workers "started"."""
    import reelgate.runtime

    handlers: dict[int, Callable[..., Any]] = {}
    monkeypatch.setattr(signal, "signal", lambda sig, handler: handlers.__setitem__(sig, handler))

    monkeypatch.setattr(
        reelgate.runtime,
        "Runtime",
        _stand_in(lambda: handlers[signal.SIGTERM](signal.SIGTERM, None)),
    )
    result = CliRunner().invoke(
        cli.app, ["worker", "--database-url", PG_URL, "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert "reelgate worker: 1 worker(s) on postgresql://user:***@127.0.0.1:5432/db" in (
        result.output
    )


def _settled(thread_id: int, timeout: float = 5.0) -> None:
    """Until the thread's Python frame has stood still for 0.1 s (it waits)."""
    last, still = None, 0
    deadline = time.monotonic() + timeout
    while still < 5 and time.monotonic() < deadline:
        frame = sys._current_frames().get(thread_id)
        now = (frame.f_code, frame.f_lasti) if frame is not None else None
        still = still + 1 if now == last else 0
        last = now
        time.sleep(0.02)


def test_worker_stops_on_a_sigterm_that_another_of_its_threads_takes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The kernel hands a process's SIGTERM to any of its threads, and Python
    runs the handler in the main thread, between two bytecodes: `reelgate
    worker` (a stand-in runtime here) still stops at once when a worker
    thread takes the signal while the main thread waits. It used to wait on
    an event only the handler set, and sat on that SIGTERM until another
    signal woke its main thread (an in-process test hung in CI)."""
    import reelgate.runtime

    main = threading.get_ident()
    sent: list[float] = []

    def signal_in_a_worker_thread() -> None:
        _settled(main)  # the command waits for a stop
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            sent.append(time.monotonic())
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    def start() -> None:
        threading.Thread(target=signal_in_a_worker_thread, daemon=True).start()

    monkeypatch.setattr(reelgate.runtime, "Runtime", _stand_in(start))
    # A command that missed the SIGTERM would wait forever: after 2 s a signal
    # the main thread takes itself wakes it (and runs the pending handler).
    returned = threading.Event()

    def rescue() -> None:
        if not returned.wait(2.0):
            signal.pthread_kill(main, signal.SIGUSR2)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    handlers[signal.SIGUSR2] = signal.signal(signal.SIGUSR2, lambda *_: None)
    rescuer = threading.Thread(target=rescue, daemon=True)
    rescuer.start()
    try:
        result = CliRunner().invoke(cli.app, ["worker", "--data-dir", str(tmp_path)])
        stopped = time.monotonic()
    finally:
        returned.set()
        rescuer.join()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert result.exit_code == 0, result.output
    assert sent, "the command waited for a stop with the SIGTERM handler installed"
    assert stopped - sent[0] < 1.0, f"stopped {stopped - sent[0]:.1f} s after the SIGTERM"
    assert "reelgate worker: stopped" in result.output
