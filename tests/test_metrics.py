"""Prometheus metrics at `/metrics`: off unless a metrics token is set, open
to that token only, and right after real work: tasks finished by outcome and
failure code, waits and runs, renders and encodes, callbacks, HTTP requests,
and the queue read from the database. The slow test scrapes two API
processes of one host (they add up to the same totals) and a worker on a
host of its own (it serves its own)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reelgate.config import Settings
from reelgate.domain.errors import UpstreamFailed
from reelgate.domain.keys import fingerprint
from reelgate.engines.base import UpstreamJob
from reelgate.engines.luma import LumaConfig, LumaEngine
from reelgate.testing import (
    Api,
    InProcess,
    Peer,
    Server,
    free_port,
    in_process,
    new_task,
    running,
)
from tests.test_luma_engine import Context

METRICS_TOKEN = "metrics-secret-for-tests"
SCRAPE = {"authorization": f"Bearer {METRICS_TOKEN}"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def test_metrics_are_off_without_a_metrics_token(api: Api) -> None:
    assert api.client.get("/metrics").status_code == 404
    assert api.client.get("/metrics", headers=SCRAPE).status_code == 404


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One for the module: a process has one multiprocess directory at a time."""
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, metrics_dir: Path) -> Iterator[InProcess]:
    data = tmp_path_factory.mktemp("metered") / "data"
    with in_process(
        data, workers=2, metrics_token=METRICS_TOKEN, metrics_dir=metrics_dir
    ) as inproc:
        yield inproc


def test_only_the_metrics_token_opens_metrics(metered: InProcess) -> None:
    api_token = metered.create_token("not-for-metrics")
    with metered.http() as anonymous, metered.http(api_token) as client:
        assert anonymous.get("/metrics").status_code == 401
        assert client.get("/metrics").status_code == 401, "an API token is not the metrics token"
        refused = anonymous.get("/metrics", headers={"authorization": "Bearer wrong"})
        assert refused.status_code == 401 and METRICS_TOKEN not in refused.text
        assert anonymous.get("/metrics", headers=SCRAPE).status_code == 200


@pytest.mark.slow  # over a second: the slow tier
def test_metrics_after_real_work(metered: InProcess, peer: Peer) -> None:
    api = Api(metered, metered.create_token("metered"))
    with metered.http() as client:
        before = scrape(client)
        made = api.post(
            "/luma/videos",
            {"prompt": "a lighthouse", "async": True, "callback_url": peer.url("/hook")},
        )
        assert made.status_code == 200, made.text
        missing = api.post(
            "/luma/videos",
            {"prompt": "no such image", "async": True, "start_image_url": peer.url("/none.png")},
        )
        for answer in (made, missing):
            api.wait_done(answer.json()["task_id"])
        assert peer.wait_posts("/hook", timeout=30), "the callback arrives"
        after = scrape(client)
        deadline = time.monotonic() + 10  # the delivery is counted just after it is sent
        while value(after, "reelgate_callback_deliveries_total", outcome="delivered") <= value(
            before, "reelgate_callback_deliveries_total", outcome="delivered"
        ):
            assert time.monotonic() < deadline, "the delivery is counted"
            time.sleep(0.1)
            after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    finished = "reelgate_tasks_finished_total"
    assert grew(finished, engine="preview", outcome="completed", code="none") == 1
    assert grew(finished, engine="preview", outcome="failed", code="invalid_input") == 1
    assert grew("reelgate_task_wait_seconds_count", engine="preview") == 2
    assert grew("reelgate_task_run_seconds_count", engine="preview", outcome="completed") == 1
    assert grew("reelgate_task_run_seconds_count", engine="preview", outcome="failed") == 1
    assert grew("reelgate_engine_render_seconds_count", engine="preview") == 1
    assert grew("reelgate_engine_encode_seconds_count", engine="preview") == 1
    assert grew("reelgate_engine_encode_seconds_sum", engine="preview") > 0
    assert grew("reelgate_callback_deliveries_total", outcome="delivered") == 1
    assert grew("reelgate_callback_delivery_seconds_count", outcome="delivered") == 1
    posted = dict(route="/luma/videos", method="POST", status="200")
    assert grew("reelgate_http_requests_total", **posted) == 2
    assert grew("reelgate_http_request_duration_seconds_count", route="/luma/videos") == 2
    assert value(after, "reelgate_worker_slots", pool="render") == 2
    assert value(after, "reelgate_worker_busy_slots", pool="render") == 0
    # read from the database at scrape time
    assert value(after, "reelgate_database_up") == 1
    assert value(after, "reelgate_queue_tasks", state="queued", engine="preview") == 0
    assert value(after, "reelgate_queue_tasks", state="running", engine="preview") == 0
    assert value(after, "reelgate_queue_oldest_age_seconds", engine="preview") == 0
    assert value(after, "reelgate_callbacks_outbox_pending") == 0
    assert value(after, "reelgate_workers_alive", engine="preview") == 1


def test_routes_are_labelled_by_template_and_unknown_paths_as_one(metered: InProcess) -> None:
    api = Api(metered, metered.create_token("templates"))
    with metered.http() as client:
        for _ in range(2):
            assert api.client.get("/luma/generations/nope-1").status_code == 404
            assert api.client.get(f"/no/such/path/{time.time()}").status_code == 404
        samples = scrape(client)
    labels = {dict(ls).get("route") for (n, ls) in samples if n == "reelgate_http_requests_total"}
    assert "/luma/generations/{generation_id}" in labels
    assert "unmatched" in labels
    assert not [r for r in labels if r and ("nope" in r or "/no/such" in r)]


def test_upstream_requests_are_counted_by_outcome_and_key_fingerprint(
    metered: InProcess, peer: Peer, tmp_path: Path
) -> None:
    """The luma engine against an upstream that answers 500 to every create:
    each attempt is counted under the key's fingerprint, never the key."""
    runtime = metered.runtime
    key = "luma-key-for-metrics-qzxv"  # a tail no number or metric name can contain
    owner, _ = runtime.tokens.create("upstream-metrics")
    new_task(runtime.tasks, owner.id, engine="luma")
    task = runtime.tasks.claim(lease_seconds=60, max_attempts=3, only=["luma"])
    assert task is not None
    peer.post_status = 500
    config = LumaConfig(base_url=peer.url("/dream-machine/v1"), keys=[key], poll=0.05, poll_max=0.1)
    engine = LumaEngine(config, runtime.upstream_keys, runtime.metrics)
    job = UpstreamJob(
        task_id=task.id,
        prompt="p",
        model="ray-2",
        aspect_ratio="16:9",
        resolution="540p",
        duration="5s",
        loop=False,
        workdir=tmp_path,
    )
    with pytest.raises(UpstreamFailed, match="not trying again"):
        engine.produce(job, Context(runtime.tasks, task.id, task.lease_owner or ""))
    with metered.http() as client:
        text = client.get("/metrics", headers=SCRAPE).text
    assert key not in text and key[-4:] not in text
    samples = parse(text)
    upstream = "reelgate_upstream_requests_total"
    assert (
        value(samples, upstream, engine="luma", key=fingerprint(key), outcome="server_error") == 3
    )


def test_the_queue_gauges_read_the_database(tmp_path: Path, metrics_dir: Path) -> None:
    data = tmp_path / "data"
    with in_process(data, workers=0, metrics_token=METRICS_TOKEN, metrics_dir=metrics_dir) as app:
        api = Api(app, app.create_token("waiting"))
        for i in range(3):
            assert api.post("/luma/videos", {"prompt": f"queued {i}", "async": True}).is_success
        time.sleep(0.05)
        with app.http() as client:
            samples = scrape(client)
    assert value(samples, "reelgate_queue_tasks", state="queued", engine="preview") == 3
    assert value(samples, "reelgate_queue_oldest_age_seconds", engine="preview") > 0
    assert value(samples, "reelgate_workers_alive", engine="preview") == 0


COUNTING = """
import os, sys
from pathlib import Path
from reelgate.metrics import open_metrics
m = open_metrics(Path(sys.argv[1]))
m.attempt_ended("preview", "completed", 1.5, None)
m.attempt_ended("preview", "failed", 0.3, "internal")
if sys.argv[2] == "die-busy":
    with m.busy("render"):
        os._exit(0)
sys.stdout.buffer.write(m.scrape())
"""


def test_a_host_keeps_its_totals_when_processes_end(tmp_path: Path) -> None:
    """A process killed mid-task leaves its counters (folded into the
    archive by the next process to start) and no busy slot."""

    def run(mode: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", COUNTING, str(tmp_path), mode],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout

    run("die-busy")
    assert {p.name.split("_")[0] for p in tmp_path.glob("*.db")} == {
        "counter",
        "gauge",
        "histogram",
    }
    samples = parse(run("scrape"))
    finished = "reelgate_tasks_finished_total"
    assert value(samples, finished, outcome="completed") == 2
    assert value(samples, finished, outcome="failed", code="internal") == 2
    assert value(samples, "reelgate_task_run_seconds_bucket", outcome="completed", le="2.5") == 2
    assert value(samples, "reelgate_worker_busy_slots", pool="render") == 0
    archived = sorted(p.name for p in tmp_path.glob("*_archive.db"))
    assert archived == ["counter_archive.db", "histogram_archive.db"]


# Several processes: two API processes of one host, a worker on another


@pytest.mark.slow
def test_two_api_processes_and_a_remote_worker_add_up(tmp_path: Path) -> None:
    """Two `serve` processes on one host share a data directory: each serves
    the host's totals (both processes' requests and their workers' tasks). A
    `reelgate worker` with a data directory of its own (another host) serves
    its own on REELGATE_METRICS_PORT. Host totals plus the worker's are every
    task made."""
    data = tmp_path / "data"
    env = {
        "REELGATE_METRICS_TOKEN": METRICS_TOKEN,
        # what every process shares: the database and the files
        "REELGATE_DATABASE_URL": f"sqlite:///{data / 'reelgate.db'}",
        "REELGATE_STORAGE_URL": f"file://{tmp_path / 'assets'}",
    }
    worker_port = free_port()
    with (
        running(Server(data, env=env, workers=1)) as first,
        running(Server(data, env=env, workers=0)) as second,
    ):
        remote = first.worker(
            tmp_path / "remote",
            env={**env, "REELGATE_METRICS_PORT": str(worker_port)},
        )
        try:
            token = first.create_token("two-processes")
            ids = []
            for i, server in enumerate([first, second] * 3):
                with server.http(token) as client:
                    answer = client.post("/luma/videos", json={"prompt": f"p{i}", "async": True})
                    assert answer.status_code == 200, answer.text
                    ids.append(answer.json()["task_id"])
            api = Api(first, token)
            for task_id in ids:
                assert api.wait_done(task_id)["response"]["state"] == "completed"
            remote_url = f"http://127.0.0.1:{worker_port}"
            with httpx.Client(base_url=remote_url, timeout=30) as client:
                assert client.get("/metrics").status_code == 401
                on_remote = scrape(client)
            with first.http() as a, second.http() as b:
                on_first, on_second = scrape(a), scrape(b)
        finally:
            remote.terminate()
            remote.wait(15)

    finished = "reelgate_tasks_finished_total"
    host = value(on_first, finished, outcome="completed")
    assert host == value(on_second, finished, outcome="completed"), "one host, one total"
    assert host + value(on_remote, finished, outcome="completed") == len(ids)
    creates = dict(route="/luma/videos", method="POST", status="200")
    assert value(on_first, "reelgate_http_requests_total", **creates) == len(ids)
    assert value(on_second, "reelgate_http_requests_total", **creates) == len(ids)
    assert value(on_remote, "reelgate_http_requests_total") == 0
    assert value(on_first, "reelgate_worker_slots", pool="render") == 1
    assert value(on_remote, "reelgate_worker_slots", pool="render") == 1
    # the database's gauges: the same from every API process
    assert value(on_first, "reelgate_workers_alive", engine="preview") == 2
    assert value(on_second, "reelgate_queue_tasks", engine="preview") == 0


# The dashboard and the docs cannot rot

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def defined_metrics() -> set[str]:
    """Every metric name the server defines (one place each: `metrics.py`,
    and the database's gauges in `api/operations.py`)."""
    sources = [ROOT / "src/reelgate/metrics.py", ROOT / "src/reelgate/api/operations.py"]
    return {m for s in sources for m in re.findall(r'"(reelgate_[a-z_]+)"', s.read_text())}


def named(text: str) -> set[str]:
    names = set()
    for name in re.findall(r"\breelgate_[a-z_]+", text):
        for suffix in SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in defined_metrics():
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def test_the_dashboard_and_the_docs_name_every_metric_and_no_other() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    defined = defined_metrics()
    assert len(defined) >= 19
    assert named(exprs) == defined, "the dashboard shows every metric, and only those"
    docs = (ROOT / "docs/operations.md").read_text()
    assert named(docs) == defined, "the docs describe every metric, and only those"


def test_the_operations_guide_names_only_settings_that_exist() -> None:
    docs = (ROOT / "docs/operations.md").read_text()
    names = set(re.findall(r"\bREELGATE_[A-Z0-9_]+\b", docs))
    assert "REELGATE_METRICS_TOKEN" in names
    fields = Settings.model_fields
    assert sorted(n for n in names if n.removeprefix("REELGATE_").lower() not in fields) == []
