"""What every `reelgate` subcommand module shares: the options that name a
deployment's data, reading the settings (a bad one named, never echoed),
the error console and how times are printed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from reelgate.config import Settings, load_settings

err = Console(stderr=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory [REELGATE_DATA_DIR]")
]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL [REELGATE_DATABASE_URL]")
]


def settings_or_exit(**overrides: Any) -> Settings:
    """The settings, or exit 2 naming what is wrong with them."""
    try:
        return load_settings(**overrides)
    except ValidationError as exc:  # name the setting, never echo its value (keys)
        for error in exc.errors(include_input=False):
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            err.print(f"[red]invalid configuration:[/red] {where}: {error['msg']}")
        raise typer.Exit(2) from None
    except Exception as exc:
        err.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from exc


def when(ts: float) -> str:
    """A UNIX time as local date and time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
