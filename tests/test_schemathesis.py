"""Property-based fuzzing of every dialect through the app's own OpenAPI
document: whatever schemathesis sends, the server never answers 5xx (the one
exception is a sync AceData call that outlives its `timeout`, a documented
504 that still carries the task id)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from reelgate.api.app import create_app
from reelgate.config import Settings
from reelgate.runtime import Runtime

pytestmark = pytest.mark.slow  # dozens of generated requests per operation

EXAMPLES = int(os.environ.get("REELGATE_FUZZ_EXAMPLES", "40"))


def _no_dns(host: str, port: int) -> list[str]:
    raise OSError("tests resolve no outside names")


def _app():
    data = Path(tempfile.mkdtemp(prefix="reelgate-fuzz-"))
    runtime = Runtime(
        Settings(
            data_dir=data,
            workers=0,
            max_wait_seconds=0.2,
            rate_limit_per_minute=0,
            max_active_tasks=0,
            max_body_bytes=1_000_000,
        )
    )
    runtime.client.resolver = _no_dns
    _, token = runtime.tokens.create("fuzz")
    return create_app(runtime), token


APP, TOKEN = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_produces_a_server_error(case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    if response.status_code == 504:
        body = response.json()
        assert body["error"]["code"] == "timeout" and body["task_id"], response.text
        return
    assert response.status_code < 500, (
        case.method,
        case.path,
        response.status_code,
        response.text[:500],
    )
