"""Retention: a finished task's files are deleted `asset_retention_days` after
it finished, and the task then answers "expired" (410) in every dialect
instead of links to files that are gone; expired uploads are removed too."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from reelgate import cli
from reelgate.domain.models import Asset, Task, TaskResult
from reelgate.runtime import Runtime
from reelgate.store.schema import TaskRow, UploadRow
from reelgate.testing import Api, InProcess, in_process, new_task, png_bytes, textured_image

DAY = 86_400.0


def token(app: InProcess) -> tuple[str, Api]:
    info, secret = app.runtime.tokens.create(f"t-{uuid.uuid4().hex[:8]}")
    return info.id, Api(app, secret)


def finished(rt: Runtime, owner_id: str, days_ago: float) -> Task:
    """A completed task with real files (a run's video, thumbnail and last
    frame, and an input), finished `days_ago` days ago."""
    task = new_task(rt.tasks, owner_id)
    claimed = rt.tasks.claim(60, 3)
    assert claimed is not None and claimed.id == task.id and claimed.lease_owner
    run = f"{task.id}/{uuid.uuid4().hex}"
    files = {"video": "video.mp4", "thumbnail": "thumbnail.jpg", "last_frame": "last_frame.jpg"}
    for name in files.values():
        rt.storage.write(f"{run}/{name}", b"x" * 64)
    rt.storage.write(f"{task.id}/inputs/start.png", png_bytes(textured_image(8, 8)))
    assets = {
        part: Asset(f"{run}/{name}", 960, 544, "video/mp4" if part == "video" else "image/jpeg")
        for part, name in files.items()
    }
    assert rt.tasks.complete(task.id, claimed.lease_owner, TaskResult(**assets))
    with rt.db.write() as s:
        s.execute(
            update(TaskRow)
            .where(TaskRow.id == task.id)
            .values(finished_at=time.time() - days_ago * DAY)
        )
    done = rt.tasks.get(task.id)
    assert done is not None and done.result is not None
    return done


def files_of(rt: Runtime, task_id: str) -> list[str]:
    return list(rt.storage.list_keys(task_id))


@pytest.fixture
def kept30(tmp_path: Path) -> Iterator[InProcess]:
    """An app without workers that keeps finished tasks' files for 30 days."""
    with in_process(tmp_path / "data", workers=0, asset_retention_days=30) as app:
        # the janitor's first pass runs at start: let it end before a test
        # makes old tasks, so only the test decides when they expire
        deadline = time.monotonic() + 30
        while app.runtime.retention.last_run is None and time.monotonic() < deadline:
            time.sleep(0.01)
        yield app


def test_gc_deletes_an_old_tasks_files_and_keeps_a_recent_ones(
    tmp_path: Path, database_url: str
) -> None:
    with in_process(
        tmp_path / "data", workers=0, database_url=database_url, asset_retention_days=30
    ) as app:
        rt = app.runtime
        owner, _ = token(app)
        old = finished(rt, owner, days_ago=31)
        recent = finished(rt, owner, days_ago=29)
        continued = finished(rt, owner, days_ago=40)
        extend = new_task(rt.tasks, owner, kind="extend", source_task_id=continued.id)
        assert len(files_of(rt, old.id)) == 4 and len(files_of(rt, recent.id)) == 4

        collected = rt.retention.collect()
        assert collected.tasks == 1
        assert files_of(rt, old.id) == [], "the run's files and the task's inputs are gone"
        assert len(files_of(rt, recent.id)) == 4
        assert (rt.tasks.get(old.id) or old).expired_at is not None
        assert (rt.tasks.get(recent.id) or recent).expired_at is None
        assert len(files_of(rt, continued.id)) == 4, "kept while a queued task extends it"
        assert rt.retention.collect().tasks == 0, "a second run finds nothing more"

        claimed = rt.tasks.claim(60, 3)
        assert claimed is not None and claimed.id == extend.id and claimed.lease_owner
        rt.tasks.fail(extend.id, claimed.lease_owner, "no")
        assert rt.retention.collect().tasks == 1
        assert files_of(rt, continued.id) == []


@pytest.mark.slow  # over a second: the slow tier
def test_collectors_running_at_once_expire_each_task_once(
    tmp_path: Path, database_url: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from reelgate.core.retention import Retention

    with in_process(
        tmp_path / "data", workers=0, database_url=database_url, asset_retention_days=1
    ) as app:
        rt = app.runtime
        owner, _ = token(app)
        old = [finished(rt, owner, days_ago=2).id for _ in range(7)]
        collectors = [Retention(rt.tasks, rt.storage, rt.uploads, 1, batch=2) for _ in range(3)]
        with ThreadPoolExecutor(3) as pool:
            counts = list(pool.map(lambda r: r.expire_tasks(), collectors))
        assert sum(counts) == 7, counts
        assert all(files_of(rt, task_id) == [] for task_id in old)
        for task_id in old:
            task = rt.tasks.get(task_id)
            assert task is not None and task.expired_at is not None


def test_gc_with_retention_off_deletes_no_task_files(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", workers=0) as app:  # asset_retention_days 0
        owner, _ = token(app)
        ancient = finished(app.runtime, owner, days_ago=3650)
        assert app.runtime.retention.collect().tasks == 0
        assert len(files_of(app.runtime, ancient.id)) == 4
        assert (app.runtime.tasks.get(ancient.id) or ancient).expired_at is None


def test_an_expired_task_answers_410_in_each_dialect_and_lists_leave_it_out(
    kept30: InProcess,
) -> None:
    rt = kept30.runtime
    owner, api = token(kept30)
    gone, kept = finished(rt, owner, days_ago=31), finished(rt, owner, days_ago=1)
    official = api.client.get(f"/dream-machine/v1/generations/{gone.id}").json()
    video_url = official["assets"]["video"]
    image_url = official["assets"]["image"]
    http = kept30.http()
    assert http.get(video_url).status_code == 200
    assert rt.retention.collect().tasks == 1

    answer = api.client.get(f"/dream-machine/v1/generations/{gone.id}")
    assert answer.status_code == 410
    detail = answer.json()["detail"]
    assert detail == (
        f"task {gone.id} expired: its files were deleted 31 days after it finished"
    ), detail

    answer = api.client.get(f"/luma/generations/{gone.id}")
    assert answer.status_code == 410
    body = answer.json()
    assert body["code"] == 410 and body["data"] is None and "expired" in body["message"]
    download = api.client.get(f"/luma/generations/{gone.id}/download_video_url")
    assert download.status_code == 410

    answer = api.retrieve(gone.id)
    assert answer.status_code == 410
    body = answer.json()
    assert body["success"] is False and body["error"]["code"] == "expired"
    assert "31 days" in body["error"]["message"] and body["task_id"] == gone.id

    for url in (video_url, image_url):
        asset = http.get(url)
        assert asset.status_code == 410, url
        assert "expired" in asset.json()["detail"]

    # Lists show only tasks whose files are kept: no entry links to a file that is gone.
    listed = api.client.get("/dream-machine/v1/generations").json()
    assert [g["id"] for g in listed["generations"]] == [kept.id] and listed["count"] == 1
    batch = api.post("/luma/tasks", {"ids": [gone.id, kept.id], "action": "retrieve_batch"})
    assert [item["id"] for item in batch.json()["items"]] == [kept.id]
    by_ids = api.post("/luma/tasks", {"ids": [gone.id, kept.id]}).json()
    assert [g["id"] for g in by_ids["data"]] == [kept.id]

    # An expired task can still be deleted; then it is simply gone.
    assert api.client.delete(f"/dream-machine/v1/generations/{gone.id}").status_code == 204
    assert api.client.get(f"/dream-machine/v1/generations/{gone.id}").status_code == 404


def test_extending_or_reusing_an_expired_task_is_refused(kept30: InProcess) -> None:
    rt = kept30.runtime
    owner, api = token(kept30)
    gone = finished(rt, owner, days_ago=31)
    shown = api.client.get(f"/luma/generations/{gone.id}").json()
    last_frame, video = shown["last_frame"]["url"], shown["video"]["url"]
    rt.retention.collect()

    official = api.post(
        "/dream-machine/v1/generations",
        {"prompt": "more", "keyframes": {"frame0": {"type": "generation", "id": gone.id}}},
    )
    assert official.status_code == 410
    assert "expired" in official.json()["detail"]
    assert "cannot be extended" in official.json()["detail"]

    generations = api.post(f"/luma/generations/{gone.id}/extend", {"user_prompt": "more"})
    assert generations.status_code == 410 and "expired" in generations.json()["message"]

    acedata = api.post(
        "/luma/videos",
        {"action": "extend", "video_id": gone.video_id, "prompt": "more", "async": True},
    )
    assert acedata.status_code == 410
    assert acedata.json()["error"]["code"] == "expired"
    assert f"video {gone.video_id} expired" in acedata.json()["error"]["message"]

    # Its last frame as the start of a new video: refused up front, not a failed task.
    reused = api.post(
        "/luma/videos", {"prompt": "again", "start_image_url": last_frame, "async": True}
    )
    assert reused.status_code == 410 and "cannot be used" in reused.json()["error"]["message"]
    by_url = api.post(
        "/luma/videos", {"action": "extend", "video_url": video, "prompt": "on", "async": True}
    )
    assert by_url.status_code == 410 and "expired" in by_url.json()["error"]["message"]
    assert rt.tasks.list_owned(owner, 10, 0)[1] == 1, "nothing was queued"


@pytest.mark.slow  # over a second: the slow tier
def test_reelgate_gc_removes_expired_files_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with in_process(data, workers=0) as app:
        owner, api = token(app)
        old = finished(app.runtime, owner, days_ago=10)
        upload = api.post("/luma/generations/file_upload", {"url": _uri()}).json()
        with app.runtime.db.write() as s:
            s.execute(update(UploadRow).values(expires_at=time.time() - 1))
        upload_key = app.runtime.storage.key_in_path(upload["public_url"])
        assert upload_key and app.runtime.storage.exists(upload_key)

        off = CliRunner().invoke(cli.app, ["gc"], env={"REELGATE_DATA_DIR": str(data)})
        assert off.exit_code == 0, off.output
        assert "kept every task's files" in off.stdout
        assert "removed 1 expired upload(s)" in off.stdout
        assert len(files_of(app.runtime, old.id)) == 4
        assert not app.runtime.storage.exists(upload_key)

        env = {"REELGATE_DATA_DIR": str(data), "REELGATE_ASSET_RETENTION_DAYS": "7"}
        on = CliRunner().invoke(cli.app, ["gc"], env=env)
        assert on.exit_code == 0, on.output
        assert "removed the files of 1 expired task(s) (older than 7 day(s))" in on.stdout
        assert files_of(app.runtime, old.id) == []
        assert api.client.get(f"/luma/generations/{old.id}").status_code == 410


def test_gc_removes_expired_uploads_and_keeps_live_ones(kept30: InProcess) -> None:
    _, api = token(kept30)
    rt = kept30.runtime
    first = api.post("/luma/generations/file_upload", {"url": _uri()}).json()
    second = api.post("/luma/generations/file_upload", {"url": _uri()}).json()
    with rt.db.write() as s:
        s.execute(
            update(UploadRow).where(UploadRow.id == first["id"]).values(expires_at=time.time() - 1)
        )
    assert rt.retention.collect().uploads == 1
    http = kept30.http()
    assert http.get(first["public_url"]).status_code == 404
    assert http.get(second["public_url"]).status_code == 200


def _uri() -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(textured_image(32, 24))).decode()
