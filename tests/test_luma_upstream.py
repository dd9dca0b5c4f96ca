"""The `luma` engine end to end: a downstream reelgate whose engine is an
upstream reelgate (preview engine, official dialect) on loopback, with a
recording proxy between them where a test needs to see or break the traffic."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import lumaai
import numpy as np
import pytest
from lumaai import LumaAI

from reelgate.testing import (
    Api,
    FaultProxy,
    Peer,
    Server,
    decode_mp4,
    png_bytes,
    running,
    wait_generation,
)

pytestmark = pytest.mark.slow  # two servers in processes, one in front of the other

BAD_KEY = "rg_this_key_was_never_issued_0000"
FAST = {
    "REELGATE_LUMA_POLL_SECONDS": "0.2",
    "REELGATE_LUMA_POLL_MAX_SECONDS": "1",
    "REELGATE_DEFAULT_ENGINE": "luma",
}


def official(server: Server, token: str) -> LumaAI:
    return LumaAI(auth_token=token, base_url=server.url + "/dream-machine/v1", max_retries=0)


def assert_failure_reads_as(
    server: Server, token: str, task_id: str, code: str, acedata: str
) -> None:
    """A failed task's category, as the generations and AceData dialects show it."""
    auth = {"authorization": f"Bearer {token}"}
    shown = httpx.get(f"{server.url}/luma/generations/{task_id}", headers=auth).json()
    assert shown["state"] == "failed" and shown["failure_code"] == code
    item = httpx.post(
        f"{server.url}/luma/tasks", json={"id": task_id, "action": "retrieve"}, headers=auth
    ).json()
    assert item["response"]["error"]["code"] == acedata


def solid_png(rgb: tuple[int, int, int]) -> bytes:
    return png_bytes(np.full((288, 512, 3), rgb, dtype=np.uint8))


# Servers: one upstream that renders, one that never does, downstreams in front


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(Server(tmp_path_factory.mktemp("upstream") / "data", workers=2)) as srv:
        yield srv


@pytest.fixture(scope="module")
def upstream_key(upstream: Server) -> str:
    return upstream.create_token("gateway")


@pytest.fixture(scope="module")
def proxy(upstream: Server) -> Iterator[FaultProxy]:
    p = FaultProxy(upstream.url)
    yield p
    p.close()


def downstream(tmp: Path, base_url: str, keys: str, **env: str | None) -> Server:
    """A reelgate whose default engine is `luma`, in front of `base_url` (not started)."""
    return Server(
        tmp / "data",
        workers=3,
        env={
            **FAST,
            "REELGATE_LUMA_BASE_URL": base_url + "/dream-machine/v1",
            "REELGATE_LUMA_API_KEYS": keys,
            **env,
        },
    )


@pytest.fixture(scope="module")
def down(
    tmp_path_factory: pytest.TempPathFactory, proxy: FaultProxy, upstream_key: str
) -> Iterator[Server]:
    """Through the proxy, no public URL: follows upstream generations by polling."""
    with running(
        downstream(
            tmp_path_factory.mktemp("down"), proxy.url, upstream_key, REELGATE_PUBLIC_BASE_URL=None
        )
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def down_token(down: Server) -> str:
    return down.create_token("app")


def upstream_ids(proxy: FaultProxy, since: int) -> list[str]:
    return [c.answer["id"] for c in proxy.creates(since) if c.status == 201]


# The request shapes, end to end through both servers


def test_text_generation_is_made_upstream_and_rehosted(
    down: Server, down_token: str, upstream: Server, upstream_key: str, proxy: FaultProxy
) -> None:
    mark = proxy.mark()
    client = official(down, down_token)
    created = client.generations.create(
        model="ray-2", prompt="a lighthouse at dusk, waves", aspect_ratio="16:9"
    )
    done = wait_generation(client, created.id)
    assert done.state == "completed", done.failure_reason
    assert done.model == "ray-2"

    [create] = [c for c in proxy.creates(mark) if c.status == 201]
    assert create.key == upstream_key
    assert create.body["model"] == "ray-2" and create.body["prompt"].startswith("a lighthouse")
    assert create.body["aspect_ratio"] == "16:9" and create.body["resolution"] == "540p"
    assert "callback_url" not in create.body  # no public URL: followed by polling

    # Answered with our own links, to a copy of the upstream's video.
    assert done.assets.video.startswith(down.url + "/assets/")
    assert done.assets.image.startswith(down.url + "/assets/")
    ours = httpx.get(done.assets.video).content
    theirs = official(upstream, upstream_key).generations.get(create.answer["id"])
    assert theirs.state == "completed"
    assert ours == httpx.get(theirs.assets.video).content
    video = decode_mp4(ours)
    assert (video.width, video.height, len(video.frames)) == (960, 544, 121)
    assert httpx.get(done.assets.image).headers["content-type"] == "image/jpeg"

    # The other dialects read the same task with sizes from the re-hosted file.
    item = Api(down, down_token).retrieve(created.id).json()["response"]
    assert (item["video_width"], item["video_height"]) == (960, 544)
    assert item["video_url"] == done.assets.video


def test_start_and_end_images_reach_the_upstream(
    down: Server, down_token: str, proxy: FaultProxy, peer: Peer
) -> None:
    mark = proxy.mark()
    end_url = peer.serve("/blue.png", solid_png((20, 40, 230)), "image/png")
    start = "data:image/png;base64," + base64.b64encode(solid_png((230, 30, 20))).decode()
    answer = Api(down, down_token).post(
        "/luma/videos",
        {
            "prompt": "a red card turning blue",
            "start_image_url": start,
            "end_image_url": end_url,
            "async": True,
        },
    )
    assert answer.status_code == 200, answer.text
    item = Api(down, down_token).wait_done(answer.json()["task_id"])
    assert item["response"]["state"] == "completed", item

    [create] = [c for c in proxy.creates(mark) if c.status == 201]
    frames = create.body["keyframes"]
    # A data URI becomes a checked copy the upstream can fetch from us; a URL passes as is.
    assert frames["frame0"]["type"] == "image"
    assert frames["frame0"]["url"].startswith(down.url + "/assets/")
    assert frames["frame1"] == {"type": "image", "url": end_url}
    assert create.body["model"] == "ray-2"  # AceData's legacy "luma" maps to the default

    # The input's link is its own: unguessable, signed, expiring within the
    # hour the upstream needs it; neither the bare path nor one derived from
    # the video's link serves it.
    link = httpx.URL(frames["frame0"]["url"])
    task_id, inputs, name = link.path.removeprefix("/assets/").split("/")
    assert (task_id, inputs) == (answer.json()["task_id"], "inputs") and len(name) > 32
    expires = int(link.params["expires"])
    assert time.time() + 3000 < expires <= time.time() + 3600
    assert httpx.get(str(link)).status_code == 200
    assert httpx.get(str(link.copy_with(query=None))).status_code == 403
    video_url = httpx.URL(item["response"]["video_url"])
    guessed = video_url.copy_with(path=f"/assets/{task_id}/inputs/start_image.jpg", query=None)
    assert httpx.get(str(guessed)).status_code in (403, 404)
    # The request is echoed with a short link in place of the data URI.
    echoed = item["request"]["start_image_url"]
    assert echoed.startswith(down.url + "/assets/") and len(echoed) < 300

    video = decode_mp4(httpx.get(item["response"]["video_url"]).content)
    first, last = video.frames[0].mean(axis=(0, 1)), video.frames[-1].mean(axis=(0, 1))
    assert first[0] > 150 and first[2] < 90, first  # starts red
    assert last[2] > 150 and last[0] < 90, last  # ends blue


def test_extend_refers_to_the_upstream_generation(
    down: Server, down_token: str, proxy: FaultProxy
) -> None:
    client = official(down, down_token)
    mark = proxy.mark()
    first = wait_generation(
        client, client.generations.create(model="ray-2", prompt="a paper boat on a pond").id
    )
    assert first.state == "completed", first.failure_reason
    [first_upstream] = upstream_ids(proxy, mark)

    mark = proxy.mark()
    extended = wait_generation(
        client,
        client.generations.create(
            model="ray-2",
            prompt="the boat drifts under a bridge",
            keyframes={"frame0": {"type": "generation", "id": first.id}},
        ).id,
    )
    assert extended.state == "completed", extended.failure_reason
    [create] = [c for c in proxy.creates(mark) if c.status == 201]
    assert create.body["keyframes"] == {"frame0": {"type": "generation", "id": first_upstream}}
    source = decode_mp4(httpx.get(first.assets.video).content)
    longer = decode_mp4(httpx.get(extended.assets.video).content)
    assert len(longer.frames) == len(source.frames) + 121  # the source, then the new clip


def test_loop_is_passed_upstream(down: Server, down_token: str, proxy: FaultProxy) -> None:
    client = official(down, down_token)
    mark = proxy.mark()
    done = wait_generation(
        client,
        client.generations.create(
            model="ray-flash-2", prompt="a spinning top, seamless loop", loop=True
        ).id,
    )
    assert done.state == "completed", done.failure_reason
    [create] = [c for c in proxy.creates(mark) if c.status == 201]
    assert create.body["loop"] is True and create.body["model"] == "ray-flash-2"
    video = decode_mp4(httpx.get(done.assets.video).content)
    gap = np.abs(video.frames[0].astype(int) - video.frames[-1].astype(int)).mean()
    assert gap < 12, gap  # the upstream made it loop, and the copy keeps that


def test_a_failed_upstream_generation_fails_the_task_with_its_reason(
    down: Server, down_token: str, peer: Peer, proxy: FaultProxy
) -> None:
    mark = proxy.mark()
    client = official(down, down_token)
    done = wait_generation(
        client,
        client.generations.create(
            model="ray-2",
            prompt="from a picture that is gone",
            keyframes={"frame0": {"type": "image", "url": peer.url("/missing.png")}},
        ).id,
    )
    assert done.state == "failed"
    assert "upstream generation failed" in done.failure_reason
    assert "404" in done.failure_reason  # the upstream's own words
    # The client's own link: another generation would fail the same way.
    assert [c.status for c in proxy.creates(mark)] == [201]

    # So would a link that only looks like ours (no such asset here).
    mark = proxy.mark()
    lookalike = wait_generation(
        client,
        client.generations.create(
            model="ray-2",
            prompt="from a picture we never had",
            keyframes={"frame0": {"type": "image", "url": down.url + "/assets/none/x.png"}},
        ).id,
    )
    assert lookalike.state == "failed" and "404" in lookalike.failure_reason
    assert [c.status for c in proxy.creates(mark)] == [201]


def test_our_image_link_the_upstream_could_not_fetch_makes_a_new_generation(
    tmp_path: Path, upstream: Server, upstream_key: str, proxy: FaultProxy
) -> None:
    """The upstream fetches a data URI's image from this server; when this
    server cannot answer then (a 503 in front of it, as while it restarts),
    the task tries again with a new generation instead of failing."""
    srv = downstream(tmp_path, proxy.url, upstream_key)
    front = FaultProxy(srv.url)  # the address the upstream is given for us
    srv.env["REELGATE_PUBLIC_BASE_URL"] = front.url
    try:
        with running(srv):
            front.inject("GET", "", 503)  # the first fetch of our link
            mark = proxy.mark()
            client = official(srv, srv.create_token("app"))
            start = "data:image/png;base64," + base64.b64encode(solid_png((230, 30, 20))).decode()
            created = client.generations.create(
                model="ray-2",
                prompt="a red card, fetched on the second try",
                keyframes={"frame0": {"type": "image", "url": start}},
            )
            done = wait_generation(client, created.id)
            assert done.state == "completed", done.failure_reason

            first, second = [c for c in proxy.creates(mark) if c.status == 201]
            for create in (first, second):
                assert create.body["keyframes"]["frame0"]["url"].startswith(front.url + "/assets/")
            failed = official(upstream, upstream_key).generations.get(first.answer["id"])
            assert failed.state == "failed" and "503" in (failed.failure_reason or "")
            video = decode_mp4(httpx.get(done.assets.video).content)
            assert video.frames[0].mean(axis=(0, 1))[0] > 150  # starts red: it got the image
    finally:
        front.close()


def test_extending_a_video_the_upstream_never_saw_is_refused(down: Server, down_token: str) -> None:
    answer = Api(down, down_token).post(
        "/luma/videos",
        {"action": "extend", "video_url": "https://example.com/clip.mp4", "prompt": "more"},
    )
    assert answer.status_code == 400
    assert "only extend videos it generated" in answer.json()["error"]["message"]


# Errors on the way upstream


def test_429_waits_for_retry_after(down: Server, down_token: str, proxy: FaultProxy) -> None:
    mark = proxy.mark()
    proxy.inject("POST", "/generations/video", 429, retry_after="2")
    client = official(down, down_token)
    done = wait_generation(
        client, client.generations.create(model="ray-2", prompt="patience under a rate limit").id
    )
    assert done.state == "completed", done.failure_reason
    refused, accepted = proxy.creates(mark)[:2]
    assert (refused.status, accepted.status) == (429, 201)
    assert accepted.at - refused.at >= 1.9  # it waited as told, not at once


def test_500s_are_retried(down: Server, down_token: str, proxy: FaultProxy) -> None:
    mark = proxy.mark()
    proxy.inject("POST", "/generations/video", 500, times=2)
    client = official(down, down_token)
    created = client.generations.create(model="ray-2", prompt="through a flaky network")
    # Once the create got through, its first status reads fail too.
    deadline = time.monotonic() + 30
    while not upstream_ids(proxy, mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    [upstream_id] = upstream_ids(proxy, mark)
    proxy.inject("GET", f"/generations/{upstream_id}", 500, times=2)
    done = wait_generation(client, created.id)
    assert done.state == "completed", done.failure_reason
    assert [c.status for c in proxy.creates(mark)] == [500, 500, 201]
    reads = [
        s.status for s in proxy.seen[mark:] if s.method == "GET" and s.path.endswith(upstream_id)
    ]
    assert reads.count(500) == 2 and reads[-1] == 200


def test_creates_that_may_have_reached_the_upstream_are_not_retried_forever(
    down: Server, down_token: str, proxy: FaultProxy
) -> None:
    mark = proxy.mark()
    proxy.inject("POST", "/generations/video", 502, times=3)
    client = official(down, down_token)
    done = wait_generation(
        client, client.generations.create(model="ray-2", prompt="every create answer is lost").id
    )
    assert done.state == "failed"
    assert "not trying again" in done.failure_reason and "502" in done.failure_reason
    assert [c.status for c in proxy.creates(mark)] == [502, 502, 502]


# Callbacks instead of polling


def test_upstream_callbacks_drive_the_task(
    tmp_path: Path, upstream: Server, upstream_key: str
) -> None:
    """With a public URL, the upstream calls back; polling is only a slow safety net
    (once a minute here), so finishing in seconds shows the callbacks worked."""
    with running(
        downstream(tmp_path, upstream.url, upstream_key, REELGATE_LUMA_POLL_MAX_SECONDS="60")
    ) as srv:
        client = official(srv, srv.create_token("app"))
        started = time.monotonic()
        done = wait_generation(
            client,
            client.generations.create(model="ray-2", prompt="a kite on a windy beach").id,
            timeout=45,
        )
        assert done.state == "completed", done.failure_reason
        assert time.monotonic() - started < 40

        up = official(upstream, upstream_key)
        generation = up.generations.list(limit=1).generations[0]
        callback_url = generation.request.callback_url
        assert callback_url.startswith(srv.url + "/upstream/callbacks/")
        # the upstream reports its deliveries: each answered 200
        seen = httpx.get(
            f"{upstream.url}/luma/generations/{generation.id}",
            headers={"authorization": f"Bearer {upstream_key}"},
        ).json()
        assert seen["callbacks"] and all(c["last_status"] == 200 for c in seen["callbacks"])
        # a link with a forged token is refused
        forged = callback_url.rsplit("/", 1)[0] + "/" + "0" * 32
        assert httpx.post(forged, json={}).status_code == 404


# Keys and restarts


def test_a_restarted_gateway_follows_the_same_upstream_generation(
    tmp_path: Path, proxy: FaultProxy, upstream_key: str
) -> None:
    """The upstream id is kept on the task the moment it exists, so a crash
    after the create never pays for a second generation."""
    with running(
        downstream(
            tmp_path,
            proxy.url,
            upstream_key,
            REELGATE_PUBLIC_BASE_URL=None,
            REELGATE_LEASE_SECONDS="2",
        )
    ) as srv:
        client = official(srv, srv.create_token("app"))
        mark = proxy.mark()
        created = client.generations.create(model="ray-2", prompt="survives a crash")
        deadline = time.monotonic() + 30
        while not upstream_ids(proxy, mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        srv.kill()
        srv.start()
        done = wait_generation(client, created.id)
        assert done.state == "completed", done.failure_reason
        assert [c.status for c in proxy.creates(mark)] == [201]


def test_a_short_outage_does_not_keep_tasks_waiting_for_the_cooldown(
    tmp_path: Path, upstream: Server, upstream_key: str
) -> None:
    """Refused creates rest the only key (for 300 s here); a probe finds the
    upstream back within seconds and the task finishes, the key back in use."""
    flaky = FaultProxy(upstream.url)
    try:
        with running(
            downstream(
                tmp_path,
                flaky.url,
                upstream_key,
                REELGATE_PUBLIC_BASE_URL=None,
                REELGATE_LUMA_KEY_FAILURE_LIMIT="2",
                REELGATE_LUMA_KEY_COOLDOWN_SECONDS="300",
            )
        ) as srv:
            client = official(srv, srv.create_token("app"))
            flaky.go_down()
            created = client.generations.create(model="ray-2", prompt="after a short outage")
            deadline = time.monotonic() + 30
            while not json.loads(srv.cli("upstream-keys", "--json"))[0]["state"].startswith(
                "resting"
            ):
                assert time.monotonic() < deadline, "the key never rested"
                time.sleep(0.2)
            flaky.come_up()
            back = time.time()
            done = wait_generation(client, created.id, timeout=60)
            assert done.state == "completed", done.failure_reason
            [create] = flaky.creates()  # nothing reached it while it was down
            # The first probe comes 5 s after the last failure, the next 10 s after
            # that: either way seconds after the upstream is back, not 300.
            assert create.status == 201 and create.at - back < 12
            [key] = json.loads(srv.cli("upstream-keys", "--json"))
            assert key["state"] == "in use" and key["failures"] == 0
    finally:
        flaky.close()


def test_a_bad_key_in_the_pool_is_set_aside_and_reported(
    tmp_path: Path, proxy: FaultProxy, upstream_key: str
) -> None:
    with running(
        downstream(tmp_path, proxy.url, f"{BAD_KEY},{upstream_key}", REELGATE_PUBLIC_BASE_URL=None)
    ) as srv:
        mark = proxy.mark()
        client = official(srv, srv.create_token("app"))
        # One after another: creates in flight at once could each draw the bad
        # key before its first 401 is back, which would not say anything.
        for i in range(3):
            created = client.generations.create(model="ray-2", prompt=f"clip number {i}")
            done = wait_generation(client, created.id)
            assert done.state == "completed", done.failure_reason
        creates = proxy.creates(mark)
        assert [c.status for c in creates if c.key == BAD_KEY] == [401]  # tried once only
        assert sorted(c.status for c in creates if c.key == upstream_key) == [201] * 3
        keys = {k["key"]: k for k in json.loads(srv.cli("upstream-keys", "--json"))}
        assert keys["..." + BAD_KEY[-4:]]["state"] == "set aside"
        assert "401" in keys["..." + BAD_KEY[-4:]]["reason"]
        assert keys["..." + upstream_key[-4:]]["state"] == "in use"


def test_only_bad_keys_fail_the_task_clearly(tmp_path: Path, upstream: Server) -> None:
    with running(
        downstream(tmp_path, upstream.url, BAD_KEY, REELGATE_ALLOW_PRIVATE_NETWORKS="false")
    ) as srv:
        token = srv.create_token("app")
        client = official(srv, token)
        # A client's image URL is checked before the upstream is asked to fetch it.
        done = wait_generation(
            client,
            client.generations.create(
                model="ray-2",
                prompt="from a private address",
                keyframes={"frame0": {"type": "image", "url": "http://127.0.0.1:9/x.png"}},
            ).id,
        )
        assert done.state == "failed" and "non-public address" in done.failure_reason

        done = wait_generation(
            client, client.generations.create(model="ray-2", prompt="no key can pay for this").id
        )
        assert done.state == "failed"
        assert "no usable upstream API key" in done.failure_reason
        assert "401" in done.failure_reason and BAD_KEY not in done.failure_reason
        # The server's failure, not the client's: no dialect calls it a bad request.
        assert_failure_reads_as(srv, token, done.id, "unavailable", "api_error")


# An upstream that never finishes


@pytest.fixture(scope="module")
def idle_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Accepts generations and never renders them (no workers)."""
    with running(Server(tmp_path_factory.mktemp("idle") / "data", workers=0)) as srv:
        yield srv


@pytest.fixture(scope="module")
def idle_key(idle_upstream: Server) -> str:
    return idle_upstream.create_token("gateway")


@pytest.fixture(scope="module")
def down_idle(
    tmp_path_factory: pytest.TempPathFactory, idle_upstream: Server, idle_key: str
) -> Iterator[Server]:
    with running(
        downstream(
            tmp_path_factory.mktemp("down-idle"),
            idle_upstream.url,
            idle_key,
            REELGATE_LUMA_TIMEOUT_SECONDS="6",
            REELGATE_LUMA_MAX_CONCURRENT_PER_KEY="1",
        )
    ) as srv:
        yield srv


def _upstream_generation(up: LumaAI, before: set[str], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [g.id for g in up.generations.list(limit=20).generations if g.id not in before]
        if new:
            return new[0]
        time.sleep(0.1)
    raise AssertionError("no upstream generation appeared")


def assert_deleted_upstream(up: LumaAI, upstream_id: str, timeout: float = 15) -> None:
    """The generation is stopped upstream: at once when the delete saw its id,
    or within moments when the worker that was creating it finds its task
    gone. Deleted, it reads as absent (an upstream reelgate cancels it first
    and keeps its row hidden for its callback); a generation cancelled in
    another way reads as failed, cancelled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            generation = up.generations.get(upstream_id)
        except lumaai.NotFoundError:
            return
        if generation.state == "failed" and "cancelled" in (generation.failure_reason or ""):
            return
        time.sleep(0.1)
    raise AssertionError(f"upstream generation {upstream_id} still runs")


def test_deleting_a_task_cancels_its_upstream_generation(
    down_idle: Server, idle_upstream: Server, idle_key: str
) -> None:
    up = official(idle_upstream, idle_key)
    before = {g.id for g in up.generations.list(limit=100).generations}
    client = official(down_idle, down_idle.create_token("app"))
    created = client.generations.create(model="ray-2", prompt="deleted before it is done")
    upstream_id = _upstream_generation(up, before)
    assert up.generations.get(upstream_id).state == "queued"
    assert client.generations.get(created.id).state == "dreaming"
    client.generations.delete(created.id)
    assert_deleted_upstream(up, upstream_id)


def test_a_generation_that_never_finishes_times_out_and_is_cancelled(
    down_idle: Server, idle_upstream: Server, idle_key: str
) -> None:
    up = official(idle_upstream, idle_key)
    before = {g.id for g in up.generations.list(limit=100).generations}
    token = down_idle.create_token("app")
    client = official(down_idle, token)
    created = client.generations.create(model="ray-2", prompt="waiting forever")
    upstream_id = _upstream_generation(up, before)
    done = wait_generation(client, created.id, timeout=30)
    assert done.state == "failed"
    assert "did not finish within 6 s" in done.failure_reason
    assert_failure_reads_as(down_idle, token, created.id, "timeout", "timeout")
    assert_deleted_upstream(up, upstream_id)


def test_per_key_concurrency_holds_the_next_create_until_a_slot_frees(
    down_idle: Server, idle_upstream: Server, idle_key: str
) -> None:
    up = official(idle_upstream, idle_key)
    before = {g.id for g in up.generations.list(limit=100).generations}
    client = official(down_idle, down_idle.create_token("app"))
    first = client.generations.create(model="ray-2", prompt="takes the only slot")
    first_upstream = _upstream_generation(up, before)
    second = client.generations.create(model="ray-2", prompt="waits for the slot")
    time.sleep(2.5)
    now = {g.id for g in up.generations.list(limit=100).generations}
    assert now - before == {first_upstream}  # the key allows one at a time
    assert client.generations.get(second.id).state == "dreaming"
    client.generations.delete(first.id)
    second_upstream = _upstream_generation(up, before | {first_upstream}, timeout=10)
    assert second_upstream != first_upstream
    client.generations.delete(second.id)


def test_a_gateway_shutting_down_hands_its_upstream_tasks_back(
    tmp_path: Path, idle_upstream: Server, idle_key: str
) -> None:
    """A graceful stop does not wait for upstream generations, and the task is
    followed again after the restart, with no second create."""
    with running(downstream(tmp_path, idle_upstream.url, idle_key)) as srv:
        up = official(idle_upstream, idle_key)
        before = {g.id for g in up.generations.list(limit=100).generations}
        client = official(srv, srv.create_token("app"))
        start = "data:image/png;base64," + base64.b64encode(solid_png((200, 60, 30))).decode()
        created = client.generations.create(
            model="ray-2",
            prompt="outlives a restart",
            keyframes={"frame0": {"type": "image", "url": start}},
        )
        upstream_id = _upstream_generation(up, before)
        image_link = up.generations.get(upstream_id).request.keyframes.frame0.url
        started = time.monotonic()
        srv.stop()  # SIGTERM: a graceful stop
        assert time.monotonic() - started < 8
        with sqlite3.connect(srv.data_dir / "reelgate.db") as db:
            state, attempts = db.execute(
                "SELECT state, attempts FROM tasks WHERE id = ?", (created.id,)
            ).fetchone()
        assert (state, attempts) == ("queued", 0)  # handed back, no attempt used up
        srv.start()
        time.sleep(2)
        assert client.generations.get(created.id).state == "dreaming"
        assert {g.id for g in up.generations.list(limit=100).generations} - before == {upstream_id}
        # the queued upstream generation can still fetch the image it was given
        assert httpx.get(image_link).headers["content-type"] == "image/png"
        client.generations.delete(created.id)
        assert_deleted_upstream(up, upstream_id)
