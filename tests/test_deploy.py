"""The deployment example cannot rot: every `reelgate` command in
deploy/compose.yaml is one the CLI has, with options it takes, and every
REELGATE_* name there and in the scale-out guide is a setting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
import yaml

from reelgate.cli import app
from reelgate.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "compose.yaml"
GUIDE = ROOT / "docs" / "scale-out.md"
AWS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"}


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _is_setting(name: str) -> bool:
    return name.removeprefix("REELGATE_").lower() in Settings.model_fields


def test_every_command_in_the_compose_file_is_one_the_cli_takes() -> None:
    cli: Any = typer.main.get_command(app)
    commands = [
        s["command"] for s in _services().values() if s.get("command", [""])[0] == "reelgate"
    ]
    assert len(commands) >= 2, "an API process and a worker process"
    for command in commands:
        sub = cli.commands[command[1]]
        options = {opt for param in sub.params for opt in param.opts}
        for token in command[2:]:
            if token.startswith("--"):
                assert token in options, f"`reelgate {command[1]}` has no {token}"
    assert any(c[1] == "serve" and c[c.index("--workers") + 1] == "0" for c in commands)
    assert any(c[1] == "worker" for c in commands)


def test_every_setting_named_in_the_deployment_exists() -> None:
    names: set[str] = set()
    for service in _services().values():
        names.update(k for k in (service.get("environment") or {}) if k != "<<")
    names.update(yaml.safe_load(COMPOSE.read_text())["x-reelgate-env"])
    names.update(re.findall(r"\bREELGATE_[A-Z0-9_]+\b", GUIDE.read_text()))
    ours = {n for n in names if n.startswith("REELGATE_")}
    assert names - ours - AWS <= {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
    unknown = sorted(n for n in ours if not _is_setting(n))
    assert unknown == [], f"not settings: {unknown}"
    assert "REELGATE_STORAGE_URL" in names and "REELGATE_DATABASE_URL" in names


def test_the_image_copies_what_exists() -> None:
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    config = ROOT / "deploy" / "s3.json"
    assert config.exists()
