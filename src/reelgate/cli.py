"""The `reelgate` command: serve, worker, tokens, generate, gc.

Options left out fall back to `REELGATE_*` variables and the TOML file,
all read by the one settings object.
"""

from __future__ import annotations

import base64
import contextlib
import faulthandler
import mimetypes
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reelgate import logs
from reelgate.cli_admin import describe_limits, tasks_app, tokens_limits
from reelgate.cli_common import DatabaseUrl, DataDir, err
from reelgate.cli_common import settings_or_exit as _settings
from reelgate.cli_common import when as _when

app = typer.Typer(
    help="reelgate: a self-hosted video-generation API server.",
    no_args_is_help=True,
    add_completion=False,
)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
app.add_typer(tasks_app, name="tasks")
tokens_app.command("limits")(tokens_limits)


def _shown_url(url: str) -> str:
    """A database URL fit to print: its password, if any, as `***`."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(unparsable database URL)"
    if parsed.password is None:
        return url  # nothing to hide (a SQLite path): shown exactly as given
    return parsed.render_as_string(hide_password=True)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""What stops `reelgate worker`."""


@contextlib.contextmanager
def _stop_signals() -> Iterator[Callable[[], None]]:
    """While entered, SIGINT and SIGTERM ask to stop (and nothing more): yields
    what blocks the main thread until one of them has arrived.

    Not an event that a handler sets: Python runs a handler in the main thread
    between two bytecodes, and the kernel hands a process's signal to any of
    its threads, so a signal that lands in another thread, or in the main
    thread just before it blocks, wakes no wait on a lock or an event, and the
    handler waits for a bytecode that never comes (`reelgate worker` sat on
    such a SIGTERM for good); a handler that sets the event the main thread is
    entering the wait of can also deadlock on that event's lock. Python's
    C-level handler, in whichever thread takes the signal, writes its number
    to a socket (`set_wakeup_fd`), and the main thread waits on that socket."""
    receiver, sender = socket.socketpair()
    sender.setblocking(False)
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def noted(signum: int, _frame: Any) -> None:  # also when called directly
        with contextlib.suppress(OSError):  # the socket is full: noted already
            sender.send(bytes([signum]))

    def wait() -> None:
        while not any(number in STOP_SIGNALS for number in receiver.recv(64)):
            pass  # another signal Python handles (SIGALRM, ...): not a stop

    previous_fd = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, noted)
        yield wait
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        receiver.close()
        sender.close()


def _logging(level: str, fmt: logs.LogFormat = "text") -> None:
    """Text lines, or JSON lines with request and task ids (`logs.py`)."""
    logs.configure(level, fmt)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [REELGATE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [REELGATE_PORT]")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="In-process render workers; 0 to run workers separately [REELGATE_WORKERS]"
        ),
    ] = None,
    public_base_url: Annotated[
        str | None, typer.Option(help="Base URL used in answers [REELGATE_PUBLIC_BASE_URL]")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [REELGATE_LOG_LEVEL]")] = None,
) -> None:
    """Start the API with in-process workers (none with --workers 0: the
    API alone, beside `reelgate worker` processes)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from reelgate.api.app import create_app
    from reelgate.runtime import Runtime

    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        workers=workers,
        public_base_url=public_base_url,
        log_level=log_level,
    )
    _logging(settings.log_level, settings.log_format)
    runtime = Runtime(settings)
    if runtime.tokens.count_active() == 0:
        _, secret = runtime.tokens.create("default")
        err.print("[bold]No API token existed, so one was created. It is shown only once:[/bold]")
        print(secret, flush=True)
    err.print(
        f"reelgate listening on http://{settings.host}:{settings.port} "
        f"(answers use {settings.resolved_public_base_url}), "
        f"{settings.workers} worker(s), data in {settings.data_dir}"
    )
    try:
        uvicorn.run(
            create_app(runtime, workers=settings.workers),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=10,
            access_log=False,  # ours (api/observe.py) names routes, not paths and queries
            # JSON: uvicorn's own lines go through the root logger's JSON handler
            log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
        )
    finally:
        runtime.close()


@app.command()
def worker(
    workers: Annotated[int | None, typer.Option(help="Render workers [REELGATE_WORKERS]")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [REELGATE_LOG_LEVEL]")] = None,
) -> None:
    """Run workers alone against the same database (no HTTP). SIGTERM or
    SIGINT stops them: a task being worked on goes back to the queue at once,
    its attempt not counted."""
    from reelgate.api.callbacks import callback_renderer
    from reelgate.runtime import Runtime

    settings = _settings(
        workers=workers, data_dir=data_dir, database_url=database_url, log_level=log_level
    )
    _logging(settings.log_level, settings.log_format)
    runtime = Runtime(settings)
    with _stop_signals() as wait_for_stop:
        # `kill -USR1` prints every thread's stack: what a stop that drags waits on
        with contextlib.suppress(ValueError, OSError):  # no stderr file (embedded)
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        # Callback bodies carry asset links: a worker whose links would point at
        # a guessed API address leaves delivering them to the API processes.
        links_right = bool(settings.public_base_url) or not runtime.storage.links_through_api
        if not links_right:
            err.print(
                "REELGATE_PUBLIC_BASE_URL is not set: the API processes deliver callbacks "
                "(this worker's links to /assets/ would not know the API's address)"
            )
        count = max(1, settings.workers)
        runtime.start_workers(
            count,
            callback_renderer(runtime.asset_url),
            deliver_callbacks=links_right,
            metrics_port=settings.metrics_port,  # no API here to serve /metrics
        )
        database = _shown_url(settings.resolved_database_url)
        err.print(f"reelgate worker: {count} worker(s) on {database}")
        wait_for_stop()
        began = time.monotonic()
        err.print("reelgate worker: stopping")
        runtime.close()  # a second signal meanwhile changes nothing
        err.print(f"reelgate worker: stopped in {time.monotonic() - began:.1f} s")


@tokens_app.command("create")
def tokens_create(name: str, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Create a token and print it (alone, on stdout)."""
    from reelgate.runtime import Runtime

    runtime = Runtime(_settings(data_dir=data_dir, database_url=database_url))
    _, secret = runtime.tokens.create(name)
    print(secret)


@tokens_app.command("list")
def tokens_list(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List tokens (their secrets are never shown again) and their own limits
    (`reelgate tokens limits`; none: the server's settings)."""
    from reelgate.runtime import Runtime

    runtime = Runtime(_settings(data_dir=data_dir, database_url=database_url))
    table = Table("id", "name", "prefix", "created", "revoked", "limits")
    for info in runtime.tokens.list():
        table.add_row(
            info.id,
            info.name,
            info.prefix + "…",
            _when(info.created_at),
            _when(info.revoked_at) if info.revoked_at else "",
            describe_limits(info.limits),
        )
    Console().print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token: Annotated[str, typer.Argument(help="id, name or prefix")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a token by id, name or prefix."""
    from reelgate.runtime import Runtime

    runtime = Runtime(_settings(data_dir=data_dir, database_url=database_url))
    count = runtime.tokens.revoke(token)
    if not count:
        err.print(f"[red]no active token matches {token!r}[/red]")
        raise typer.Exit(1)
    err.print(f"revoked {count} token(s)")


@app.command("webhook-secret")
def webhook_secret(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Print the secret that signs callbacks (Standard Webhooks), for receivers to verify."""
    from reelgate.runtime import Runtime

    print(Runtime(_settings(data_dir=data_dir, database_url=database_url)).webhook_secret)


@app.command()
def gc(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Remove expired files once: finished tasks' files older than
    REELGATE_ASSET_RETENTION_DAYS (0 keeps them) and expired uploads.
    `serve` does this every REELGATE_GC_INTERVAL_SECONDS; several may run at once."""
    from reelgate.runtime import Runtime

    settings = _settings(data_dir=data_dir, database_url=database_url)
    runtime = Runtime(settings)
    try:
        collected = runtime.retention.collect()
    finally:
        runtime.close()
    if settings.asset_retention_days > 0:
        kept = f"older than {settings.asset_retention_days:g} day(s)"
        print(f"removed the files of {collected.tasks} expired task(s) ({kept})")
    else:
        print("kept every task's files (REELGATE_ASSET_RETENTION_DAYS is 0)")
    print(f"removed {collected.uploads} expired upload(s)")


@app.command("upstream-keys")
def upstream_keys(
    reset: Annotated[bool, typer.Option(help="Put every set-aside key back in use")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show the upstream API keys (by their last characters): in use, resting or set aside, why."""
    import json

    from reelgate.runtime import Runtime
    from reelgate.store.upstream_keys import FOREVER

    runtime = Runtime(_settings(data_dir=data_dir, database_url=database_url))
    if reset:
        err.print(f"{runtime.upstream_keys.reset()} key(s) back in use")
    configured = {fingerprint for fingerprint in _configured_keys(runtime)}
    rows: list[dict[str, Any]] = []  # printed as JSON, or as the table below
    for key in runtime.upstream_keys.statuses():
        if key.usable:
            state = "in use"
        elif key.set_aside_until == FOREVER:
            state = "set aside"
        else:
            state = f"resting until {_when(key.set_aside_until or 0)}"
        rows.append(
            {
                "key": key.label,
                "engine": key.engine,
                "state": state,
                "configured": key.id in configured,
                "in_flight": key.in_flight,
                "failures": key.failures,
                "reason": key.set_aside_reason or "",
                "last_error": key.last_error or "",
            }
        )
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("key", "engine", "state", "in flight", "failures", "reason")
    for row in rows:
        table.add_row(
            row["key"] + ("" if row["configured"] else " (no longer configured)"),
            row["engine"],
            row["state"],
            str(row["in_flight"]),
            str(row["failures"]),
            row["reason"],
        )
    Console().print(table)


def _configured_keys(runtime: Any) -> list[str]:
    from reelgate.domain.keys import fingerprint

    return [fingerprint(k.get_secret_value()) for k in runtime.settings.luma_api_keys]


def _image_ref(value: str | None) -> str | None:
    """URLs pass through; a local file becomes a data URI."""
    if value is None or value.startswith(("http://", "https://", "data:")):
        return value
    path = Path(value)
    if not path.is_file():
        err.print(f"[red]{value}: not a URL and not a file[/red]")
        raise typer.Exit(2)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


@app.command()
def generate(
    prompt: str,
    start_image: Annotated[str | None, typer.Option(help="URL or local file")] = None,
    end_image: Annotated[str | None, typer.Option(help="URL or local file")] = None,
    aspect_ratio: Annotated[str | None, typer.Option(help="e.g. 16:9")] = None,
    resolution: Annotated[str | None, typer.Option(help="540p, 720p, 1080p")] = None,
    duration: Annotated[str | None, typer.Option(help="5s or 9s")] = None,
    loop: Annotated[bool, typer.Option(help="Make the clip loop")] = False,
    wait: Annotated[bool, typer.Option(help="Show progress until the video is ready")] = False,
    server: Annotated[str | None, typer.Option(help="Server URL [REELGATE_SERVER_URL]")] = None,
    token: Annotated[str | None, typer.Option(help="API token [REELGATE_TOKEN]")] = None,
) -> None:
    """Submit a video to a running server; prints the task id, or the video URL with --wait."""
    settings = _settings(server_url=server, token=token)
    if not settings.token:
        err.print("[red]no token: pass --token or set REELGATE_TOKEN[/red]")
        raise typer.Exit(2)
    body = {
        "prompt": prompt,
        "start_image_url": _image_ref(start_image),
        "end_image_url": _image_ref(end_image),
        "aspect_ratio": aspect_ratio,
        "resolution": resolution,
        "duration": duration,
        "loop": loop,
        "async": True,
    }
    with httpx.Client(
        base_url=settings.resolved_server_url,
        timeout=60,
        headers={"authorization": f"Bearer {settings.token}"},
    ) as client:
        answer = _call(client, "/luma/videos", {k: v for k, v in body.items() if v is not None})
        task_id = answer["task_id"]
        if not wait:
            print(task_id)
            return
        result = _follow(client, task_id)
    if result.get("state") != "completed":
        err.print(f"[red]failed:[/red] {result.get('error', {}).get('message', result)}")
        raise typer.Exit(1)
    print(result["video_url"])


def _call(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        response = client.post(path, json=body)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach {client.base_url}: {exc}[/red]")
        raise typer.Exit(1) from exc
    data: dict[str, Any] = response.json()
    if response.status_code >= 400:
        err.print(f"[red]{response.status_code}: {data.get('error', data)}[/red]")
        raise typer.Exit(1)
    return data


def _follow(client: httpx.Client, task_id: str) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err) as progress:
        bar = progress.add_task(f"rendering {task_id[:8]}", total=1.0)
        while True:
            item = _call(client, "/luma/tasks", {"id": task_id, "action": "retrieve"})
            response: dict[str, Any] = item["response"]
            if response.get("state") in ("completed", "failed"):
                progress.update(bar, completed=1.0)
                return response
            progress.update(bar, completed=float(response.get("progress", 0.0)))
            time.sleep(1.0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
