"""An upload belongs to the token that made it: another token naming its link
as an input, in any dialect, is refused up front as if there were no such
upload; the owner's own use works until the upload expires."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from reelgate.store.schema import UploadRow
from reelgate.testing import Api, InProcess, in_process, png_bytes, textured_image

LIFETIME = 3600


@pytest.fixture
def app(tmp_path: Path) -> Iterator[InProcess]:
    """No workers: a create that is accepted is queued, and that is all we need."""
    with in_process(tmp_path / "data", workers=0, upload_lifetime_seconds=LIFETIME) as inproc:
        yield inproc


def token(app: InProcess, name: str) -> tuple[str, Api]:
    info, secret = app.runtime.tokens.create(name)
    return info.id, Api(app, secret)


def upload(api: Api) -> dict[str, str]:
    image = png_bytes(textured_image(64, 48))
    uri = "data:image/png;base64," + base64.b64encode(image).decode()
    answer = api.post("/luma/generations/file_upload", {"url": uri})
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    return body


# Each way a dialect takes an image: (name, create with this image link, status of
# an accepted create, the error message in that dialect's error shape).
Create = Callable[[Api, str], httpx.Response]
WAYS: list[tuple[str, Create, int, Callable[[httpx.Response], str]]] = [
    (
        "generations image_url",
        lambda api, link: api.post("/luma/generations", {"user_prompt": "a", "image_url": link}),
        201,
        lambda r: str(r.json()["message"]),
    ),
    (
        "generations image_end_url",
        lambda api, link: api.post(
            "/luma/generations", {"user_prompt": "a", "image_end_url": link}
        ),
        201,
        lambda r: str(r.json()["message"]),
    ),
    (
        "official frame0",
        lambda api, link: api.post(
            "/dream-machine/v1/generations",
            {
                "model": "ray-2",
                "prompt": "abc",
                "keyframes": {"frame0": {"type": "image", "url": link}},
            },
        ),
        201,
        lambda r: str(r.json()["detail"]),
    ),
    (
        "official frame1",
        lambda api, link: api.post(
            "/dream-machine/v1/generations",
            {
                "model": "ray-2",
                "prompt": "abc",
                "keyframes": {"frame1": {"type": "image", "url": link}},
            },
        ),
        201,
        lambda r: str(r.json()["detail"]),
    ),
    (
        "acedata start_image_url",
        lambda api, link: api.post(
            "/luma/videos", {"prompt": "a", "start_image_url": link, "async": True}
        ),
        200,
        lambda r: str(r.json()["error"]["message"]),
    ),
    (
        "acedata end_image_url",
        lambda api, link: api.post(
            "/luma/videos", {"prompt": "a", "end_image_url": link, "async": True}
        ),
        200,
        lambda r: str(r.json()["error"]["message"]),
    ),
    (
        "acedata image_urls",
        lambda api, link: api.post(
            "/luma/videos", {"prompt": "a", "image_urls": [link], "async": True}
        ),
        200,
        lambda r: str(r.json()["error"]["message"]),
    ),
]


def test_an_upload_lives_under_its_owner_with_a_link_that_lasts_as_long_as_it(
    app: InProcess,
) -> None:
    alice_id, alice = token(app, "alice")
    before = time.time()
    made = upload(alice)
    link = urlsplit(made["public_url"])
    assert link.path.startswith(f"/assets/uploads/{alice_id}/{made['id']}.")
    expires = int(parse_qs(link.query)["expires"][0])
    assert before + LIFETIME - 2 <= expires <= time.time() + LIFETIME + 1
    assert app.http().get(made["public_url"]).status_code == 200


@pytest.mark.parametrize(("way", "create", "accepted", "message"), WAYS, ids=[w[0] for w in WAYS])
def test_another_token_cannot_use_an_upload_the_owner_can(
    app: InProcess,
    way: str,
    create: Create,
    accepted: int,
    message: Callable[[httpx.Response], str],
) -> None:
    alice_id, alice = token(app, "alice")
    mallory_id, mallory = token(app, "mallory")
    link = upload(alice)["public_url"]
    forged = link.replace(f"/uploads/{alice_id}/", f"/uploads/{mallory_id}/")
    elsewhere = "https://cdn.example" + urlsplit(link).path
    for attempt in (link, forged, elsewhere):
        refused = create(mallory, attempt)
        assert refused.status_code == 404, (way, attempt, refused.text)
        assert "no such upload" in message(refused), refused.text
    absent = create(mallory, link.replace(urlsplit(link).path[-10:], "0123456789"))
    assert absent.status_code == 404 and message(absent) == message(refused), (
        "another token's upload reads exactly as one that does not exist"
    )
    assert app.runtime.tasks.list_owned(mallory_id, 10, 0)[1] == 0, "nothing was queued"

    own = create(alice, link)
    assert own.status_code == accepted, own.text


def test_an_expired_upload_is_refused_to_its_owner_too(app: InProcess) -> None:
    _, alice = token(app, "alice")
    made = upload(alice)
    ok = alice.post("/luma/generations", {"user_prompt": "a", "image_url": made["public_url"]})
    assert ok.status_code == 201
    with app.runtime.db.write() as s:
        s.execute(
            update(UploadRow).where(UploadRow.id == made["id"]).values(expires_at=time.time() - 1)
        )
    late = alice.post("/luma/generations", {"user_prompt": "a", "image_url": made["public_url"]})
    assert late.status_code == 404 and "no such upload" in late.json()["message"]


def test_the_worker_reads_an_upload_only_for_its_owners_task(tmp_path: Path) -> None:
    """A task that names another token's upload without going through a
    create (a row written by an older version, or by hand) fails at the
    worker instead of reading the file."""
    from reelgate.testing import new_task

    with in_process(tmp_path / "data", workers=1) as inproc:
        _, alice = token(inproc, "alice")
        bob_id, _ = token(inproc, "bob")
        link = upload(alice)["public_url"]
        task = new_task(inproc.runtime.tasks, bob_id, start_image=link)
        deadline = time.monotonic() + 60
        while (seen := inproc.runtime.tasks.get(task.id)) and not seen.state.terminal:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert seen is not None and seen.state.value == "failed"
        assert "no such upload" in (seen.failure_reason or "")
