"""The operators' commands against a deployment's database: `reelgate tasks
list|show|cancel|retry` and `reelgate tokens list|limits|revoke`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from reelgate.cli import app as cli_app
from reelgate.cli_admin import parse_span
from reelgate.testing import Api, InProcess, Peer, in_process


@pytest.fixture(scope="module")
def idle_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """No workers: tasks stay where the commands put them."""
    with in_process(tmp_path_factory.mktemp("admin") / "data", workers=0) as app:
        yield app


def run(app: InProcess, *args: str) -> Result:
    """`reelgate ARGS` on the app's data, whatever its exit code."""
    env = {"REELGATE_DATA_DIR": str(app.data_dir), "COLUMNS": "250"}
    return CliRunner().invoke(cli_app, list(args), env=env)


def test_token_limits_are_set_shown_and_applied(idle_app: InProcess) -> None:
    api = Api(idle_app, idle_app.create_token("studio"))
    shown = json.loads(
        idle_app.cli(
            "tokens",
            "limits",
            "studio",
            "--max-active",
            "1",
            "--engines",
            "preview",
            "--models",
            "ray-2,reelgate-preview",
            "--priority",
            "3",
        )
    )
    assert shown["token"] == "studio"
    assert shown["limits"] == {
        "max_active": 1,
        "engines": ["preview"],
        "models": ["ray-2", "reelgate-preview"],
        "priority": 3,
    }
    assert shown["in_force"]["max_active"] == 1 and shown["in_force"]["priority"] == 3
    assert "max_active=1" in run(idle_app, "tokens", "list").stdout

    first = api.post("/luma/videos", {"prompt": "a harbour at dawn", "async": True})
    assert first.status_code == 200
    assert api.post("/luma/videos", {"prompt": "too many", "async": True}).status_code == 429
    task = idle_app.runtime.tasks.get(first.json()["task_id"])
    assert task is not None and task.priority == 3

    unset = json.loads(idle_app.cli("tokens", "limits", "studio", "--unset", "max-active"))
    assert "max_active" not in unset["limits"] and unset["limits"]["priority"] == 3
    cleared = json.loads(idle_app.cli("tokens", "limits", "studio", "--clear"))
    assert cleared["limits"] == {} and cleared["in_force"]["priority"] == 0
    missing = run(idle_app, "tokens", "limits", "nobody", "--priority", "1")
    assert missing.exit_code == 1 and "no token matches 'nobody'" in missing.output
    unknown = run(idle_app, "tokens", "limits", "studio", "--engines", "warp-drive")
    assert unknown.exit_code == 2 and "no engine is called 'warp-drive'" in unknown.output


def test_tasks_list_show_cancel_and_retry(idle_app: InProcess, peer: Peer) -> None:
    api = Api(idle_app, idle_app.create_token("ops"))
    hook = peer.url("/ops")
    body: dict[str, Any] = {"prompt": "a storm at sea", "async": True, "callback_url": hook}
    task_id = api.post("/luma/videos", body).json()["task_id"]

    listed = run(idle_app, "tasks", "list", "--state", "queued", "--token", "ops").stdout
    assert task_id in listed and "queued" in listed
    assert task_id not in idle_app.cli("tasks", "list", "--token", "ops", "--older-than", "10m")
    assert task_id not in idle_app.cli("tasks", "list", "--state", "failed")
    shown = json.loads(idle_app.cli("tasks", "show", task_id))
    assert shown["id"] == task_id and shown["state"] == "queued" and shown["token"] == "ops"
    assert shown["prompt"] == "a storm at sea" and shown["callbacks"] == []

    refused = run(idle_app, "tasks", "retry", task_id)
    message = " ".join(refused.output.split())  # however wide the terminal wraps it
    assert refused.exit_code == 1 and "only a failed or cancelled task" in message

    assert "cancelled task" in idle_app.cli("tasks", "cancel", task_id)
    (callback,) = peer.wait_posts("/ops", timeout=30)
    assert callback["json"]["error"] == {
        "code": "cancelled",
        "message": "cancelled by an operator",
    }
    again = run(idle_app, "tasks", "cancel", task_id)
    assert again.exit_code == 1 and "is cancelled already" in again.output

    assert "queued again" in idle_app.cli("tasks", "retry", task_id)
    item = api.retrieve(task_id).json()
    assert item["response"]["state"] == "processing" and item["finished_at"] is None
    task = idle_app.runtime.tasks.get(task_id)
    assert task is not None and task.attempts == 0 and task.failure_reason is None
    assert run(idle_app, "tasks", "show", "no-such-task").exit_code == 1


def test_revoke_by_name_and_time_spans(idle_app: InProcess) -> None:
    api = Api(idle_app, idle_app.create_token("leaving"))
    assert api.post("/luma/videos", {"prompt": "a last one", "async": True}).status_code == 200
    assert run(idle_app, "tokens", "revoke", "leaving").exit_code == 0
    assert "leaving" in idle_app.cli("tokens", "list")
    assert [parse_span(s) for s in ("90", "90s", "10m", "2h", "1d")] == [
        90,
        90,
        600,
        7200,
        86_400,
    ]
