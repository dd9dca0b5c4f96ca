"""The `reelgate` command never prints a database password."""

from __future__ import annotations

import signal
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


def test_worker_prints_the_database_url_without_its_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`reelgate worker` with a stand-in runtime: no database, no threads.
    The stand-in sends the SIGTERM handler the command installed, so the
    command returns as soon as its workers "started"."""
    import reelgate.runtime

    handlers: dict[int, Callable[..., Any]] = {}
    monkeypatch.setattr(signal, "signal", lambda sig, handler: handlers.__setitem__(sig, handler))

    class FakeRuntime:
        def __init__(self, settings: Any) -> None:
            self.settings = settings
            self.storage = SimpleNamespace(links_through_api=False)

        def asset_url(self, key: str) -> str:
            return key

        def start_workers(self, count: int, renderer: Any, **options: Any) -> None:
            handlers[signal.SIGTERM](signal.SIGTERM, None)

        def close(self) -> None:
            pass

    monkeypatch.setattr(reelgate.runtime, "Runtime", FakeRuntime)
    result = CliRunner().invoke(
        cli.app, ["worker", "--database-url", PG_URL, "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert "reelgate worker: 1 worker(s) on postgresql://user:***@127.0.0.1:5432/db" in (
        result.output
    )
