"""Operators' commands: `reelgate tasks list|show|cancel|retry` and
`reelgate tokens limits`. They work on the deployment's database directly,
through the same stores and service as the API, so a cancel or a retry
here is the one the API would make (its callback included)."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from reelgate.cli_common import DatabaseUrl, DataDir, err, settings_or_exit
from reelgate.domain.errors import ReelgateError
from reelgate.domain.models import State
from reelgate.domain.types import TokenLimits

if TYPE_CHECKING:
    from reelgate.runtime import Runtime

tasks_app = typer.Typer(
    help="Inspect, cancel and retry tasks of every token.", no_args_is_help=True
)

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_span(text: str) -> float:
    """`90`, `90s`, `10m`, `2h`, `1d` -> seconds."""
    match = _SPAN.match(text.lower())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a time span (e.g. 90s, 10m, 2h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _names(text: str | None) -> tuple[str, ...] | None:
    """`a,b` -> ("a", "b"); `all` -> None (every one)."""
    if text is None or text.strip().lower() == "all":
        return None
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def describe_limits(limits: TokenLimits) -> str:
    """A token's own limits in one line (empty: the server's settings)."""
    return " ".join(
        f"{key}={','.join(value) if isinstance(value, list) else value}"
        for key, value in (limits.to_dict() or {}).items()
    )


@contextmanager
def _runtime(data_dir: Any, database_url: str | None) -> Iterator[Runtime]:
    """The deployment's runtime (no workers), closed on the way out; a
    refusal from the service is printed and exits 1."""
    from reelgate.runtime import Runtime

    runtime = Runtime(settings_or_exit(data_dir=data_dir, database_url=database_url))
    try:
        yield runtime
    except ReelgateError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        runtime.close()


def _age(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


@tasks_app.command("list")
def tasks_list(
    state: Annotated[
        list[State] | None,
        typer.Option("--state", help="Only tasks in this state (repeat for several)"),
    ] = None,
    engine: Annotated[
        list[str] | None, typer.Option("--engine", help="Only this engine's (repeatable)")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Only this token's (name, id or prefix)")
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Only tasks created longer ago than this (10m, 2h)"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many")] = 50,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Tasks of every token, newest first (the queue: --state queued).
    Waiting tasks are claimed by priority, aged by waiting: see
    `reelgate tokens limits --help`."""
    cutoff = time.time() - parse_span(older_than) if older_than else None
    with _runtime(data_dir, database_url) as runtime:
        names = {info.id: info.name for info in runtime.tokens.list()}
        owners = None
        if token is not None:
            owners = [info.id for info in runtime.tokens.find(token)]
            if not owners:
                err.print(f"[red]no token matches {token!r}[/red]")
                raise typer.Exit(1)
        tasks = runtime.tasks.search(
            states=[s.value for s in state or ()],
            engines=engine or (),
            owners=owners,
            created_before=cutoff,
            limit=limit,
        )
    now = time.time()
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)  # whole, to copy
    for column in ("state", "engine", "token", "prio", "age", "tries"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    table.add_column("note")
    for task in tasks:
        note = task.failure_reason or (f"{task.progress:.0%}" if task.progress else "")
        table.add_row(
            task.id,
            task.state.value,
            task.engine,
            names.get(task.owner_id, task.owner_id),
            str(task.priority),
            _age(now - task.created_at),
            str(task.attempts),
            note,
        )
    Console().print(table)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@tasks_app.command("show")
def tasks_show(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Every field of one task, its token's name and its callbacks, as JSON."""
    with _runtime(data_dir, database_url) as runtime:
        task = runtime.tasks.get(task_id)
        if task is None:
            err.print(f"[red]task {task_id} was not found[/red]")
            raise typer.Exit(1)
        owner = {info.id: info.name for info in runtime.tokens.list()}.get(task.owner_id)
        deliveries = runtime.service.deliveries([task])[task.id]
    shown = {**_jsonable(task), "token": owner, "callbacks": _jsonable(deliveries)}
    print(json.dumps(shown, indent=2, ensure_ascii=False))


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Cancel a queued or running task, as its client could: its render
    stops, its generation upstream is cancelled, its callback reports it
    (the reason says an operator cancelled it)."""
    from reelgate.core.service import CANCELLED_BY_OPERATOR

    with _runtime(data_dir, database_url) as runtime:
        task = runtime.tasks.get(task_id)
        if task is None:
            err.print(f"[red]task {task_id} was not found[/red]")
            raise typer.Exit(1)
        runtime.service.cancel(task.owner_id, task_id, reason=CANCELLED_BY_OPERATOR)
    print(f"cancelled task {task_id} (it was {task.state.value})")


@tasks_app.command("retry")
def tasks_retry(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Queue a failed or cancelled task again, its attempts reset (in its
    old place in line; its callback is sent again when it ends)."""
    with _runtime(data_dir, database_url) as runtime:
        runtime.service.retry(task_id)
    print(f"task {task_id} is queued again")


def tokens_limits(
    token: Annotated[str, typer.Argument(metavar="NAME", help="name, id or prefix")],
    creates_per_minute: Annotated[
        int | None, typer.Option(min=0, help="Creates and uploads per minute (0: no limit)")
    ] = None,
    max_active: Annotated[
        int | None, typer.Option(min=0, help="Tasks queued or running at once (0: no limit)")
    ] = None,
    tasks_per_day: Annotated[
        int | None, typer.Option(min=0, help="Tasks created in any 24 hours (0: no limit)")
    ] = None,
    engines: Annotated[
        str | None, typer.Option(help="Engines it may use: a,b (all: every one)")
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="Models it may ask for: x,y (all: every one)")
    ] = None,
    priority: Annotated[
        int | None, typer.Option(help="Queue priority (default 0; higher goes first)")
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(help="Back to the server's setting for this limit (repeatable)"),
    ] = None,
    clear: Annotated[bool, typer.Option(help="Back to the server's settings for all")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show or set a token's own limits (they apply to its next create) and
    print them as JSON, with the values in force. A limit it has none of is
    the server's setting (REELGATE_RATE_LIMIT_PER_MINUTE, _MAX_ACTIVE_TASKS,
    _TASKS_PER_DAY). Over a rate or count a create answers 429 with
    Retry-After; an engine or model it may not use, 403.

    Priority: workers take the waiting task whose priority is highest, where
    a task's priority is its token's when it was created (0 unless set)
    plus one for every REELGATE_PRIORITY_AGING_SECONDS (default 60) it has
    waited; among equals, the oldest. So a task waits behind later tasks of
    a higher priority for at most (difference in priority) x that many
    seconds: no task is passed over forever."""
    from reelgate.engines.registry import ENGINES

    fields = {f.name for f in dataclasses.fields(TokenLimits)}
    for name in unset or ():
        if name.replace("-", "_") not in fields:
            raise typer.BadParameter(f"{name!r} is none of {', '.join(sorted(fields))}")
    allowed_engines = _names(engines)
    for name in allowed_engines or ():
        if name not in ENGINES:
            raise typer.BadParameter(f"no engine is called {name!r} ({', '.join(ENGINES)})")
    changes: dict[str, Any] = {
        "creates_per_minute": creates_per_minute,
        "max_active": max_active,
        "tasks_per_day": tasks_per_day,
        "priority": priority,
    }
    changed = {k: v for k, v in changes.items() if v is not None}
    if engines is not None:
        changed["engines"] = allowed_engines
    if models is not None:
        changed["models"] = _names(models)
    with _runtime(data_dir, database_url) as runtime:
        found = runtime.tokens.find(token)
        if len(found) != 1:
            which = "no token matches" if not found else "several tokens match"
            ids = "".join(f"\n  {info.id} ({info.name})" for info in found)
            err.print(f"[red]{which} {token!r}{'; name one by id:' if found else ''}{ids}[/red]")
            raise typer.Exit(1)
        info = found[0]
        limits = TokenLimits() if clear else info.limits
        limits = dataclasses.replace(
            limits, **{name.replace("-", "_"): None for name in unset or ()}, **changed
        )
        if clear or unset or changed:
            updated = runtime.tokens.set_limits(info.id, limits)
            info = updated or info
        in_force = runtime.service.limits.effective(info.limits)
    print(
        json.dumps(
            {
                "token": info.name,
                "id": info.id,
                "limits": info.limits.to_dict() or {},
                "in_force": _jsonable(in_force),
            },
            indent=2,
        )
    )
