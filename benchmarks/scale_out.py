"""Scale-out figures, side by side in one run (prints figures; not a test).

Needs a PostgreSQL server: `REELGATE_BENCH_POSTGRES_URL` (default: the local
test server, `postgresql://postgres@127.0.0.1:5432/test`); each part makes
and drops a database of its own.

(a) Pickup latency, create to claimed, p50/p95: an idle worker woken by
    NOTIFY, next to one that only polls (every 0.5 s).
(b) Claim throughput with 1, 4 and 16 worker processes claiming and
    finishing tasks of an engine that renders nothing: tasks per second,
    and double claims (must be 0).
(c) Preview videos per minute with 1 and 2 `reelgate worker` processes
    behind an API-only process, sharing PostgreSQL and a SeaweedFS bucket.

Usage: python benchmarks/scale_out.py [--tasks 2000] [--pickups 40] [--videos 8]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path

from reelgate.config import Settings
from reelgate.domain.models import TaskResult
from reelgate.runtime import Runtime
from reelgate.store.db import Database
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.testing import TEST_SETTINGS, Api, SeaweedFS, Server, new_task, postgres_database

BASE = os.environ.get("REELGATE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def fresh_database() -> AbstractContextManager[str]:
    return postgres_database(BASE)


def _claimer(url: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """Claim and finish tasks until none is left; report the ids claimed."""
    db = Database(url)
    tasks = TaskStore(db)
    claimed: list[str] = []
    empty_result = TaskResult.from_dict(
        {
            "video": {"key": "v", "width": 16, "height": 16, "content_type": "video/mp4"},
            "thumbnail": {"key": "t", "width": 16, "height": 16, "content_type": "image/jpeg"},
            "last_frame": {"key": "l", "width": 16, "height": 16, "content_type": "image/jpeg"},
        }
    )
    while (task := tasks.claim(lease_seconds=60, max_attempts=3)) is not None:
        claimed.append(task.id)
        tasks.complete(task.id, task.lease_owner or "", empty_result)
    db.dispose()
    out.put(claimed)


def pickup_latencies(notify: bool, pickups: int) -> list[float]:
    """Seconds from create to claimed, for tasks made one at a time while
    the worker is idle: woken by NOTIFY, or finding them by polling every
    0.5 s (the SQLite default, and what PostgreSQL did before)."""
    with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
        values = {**TEST_SETTINGS, "poll_interval": "0.5", "data_dir": tmp, "database_url": url}
        runtime = Runtime(Settings(**values))
        if not notify:
            runtime.listener = None
        owner, _ = runtime.tokens.create("bench")
        runtime.start_workers(1, lambda *args: {})
        time.sleep(1.0)  # connected and idle
        latencies = []
        try:
            for i in range(pickups):
                task = new_task(runtime.tasks, owner.id, duration="5s")
                while (seen := runtime.tasks.get(task.id)) is None or seen.started_at is None:
                    time.sleep(0.002)
                latencies.append(seen.started_at - seen.created_at)
                while not runtime.tasks.terminal_among([task.id]):
                    time.sleep(0.02)
                time.sleep(0.05 + (i % 7) * 0.05)  # idle again, at no fixed phase
        finally:
            runtime.close()
        return latencies


def part_a(pickups: int) -> None:
    print("\n(a) pickup latency, create to claimed, one idle worker (ms)")
    print(f"{'wake-up':>22} {'p50':>8} {'p95':>8} {'max':>8}")
    for name, notify in (("NOTIFY", True), ("polling every 0.5 s", False)):
        values = [v * 1000 for v in pickup_latencies(notify, pickups)]
        print(
            f"{name:>22} {percentile(values, 0.5):>8.1f} {percentile(values, 0.95):>8.1f}"
            f" {max(values):>8.1f}"
        )


def claim_throughput(processes: int, count: int) -> tuple[float, int]:
    with fresh_database() as url:
        db = Database(url)
        db.migrate()
        owner, _ = TokenStore(db).create("bench")
        store = TaskStore(db)
        for _ in range(count):
            new_task(store, owner.id)
        db.dispose()
        out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        workers = [mp.Process(target=_claimer, args=(url, out)) for _ in range(processes)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        ids = [i for _ in workers for i in out.get()]
        elapsed = time.perf_counter() - started
        for w in workers:
            w.join()
    doubles = sum(n - 1 for n in Counter(ids).values() if n > 1)
    assert len(set(ids)) == count, f"{count - len(set(ids))} tasks never claimed"
    return count / elapsed, doubles


def part_b(count: int) -> None:
    print("\n(b) claim throughput (claim + finish, an engine that renders nothing)")
    print(f"{'processes':>10} {'tasks/s':>10} {'double claims':>14}")
    for processes in (1, 4, 16):
        rate, doubles = claim_throughput(processes, count)
        print(f"{processes:>10} {rate:>10.0f} {doubles:>14}")


def videos_per_minute(processes: int, videos: int, store: SeaweedFS) -> float:
    """Preview clips (540p, 5 s) finished per minute by `processes` separate
    `reelgate worker` processes behind one API-only server, sharing only
    PostgreSQL and the S3 bucket."""
    with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
        env = {
            "REELGATE_DATABASE_URL": url,
            "REELGATE_STORAGE_URL": store.storage_url(f"bench-{processes}-{time.time_ns()}"),
            **store.env,
        }
        server = Server(Path(tmp) / "api", env=env, workers=0).start()
        workers = [server.worker(Path(tmp) / f"worker-{i}") for i in range(processes)]
        try:
            api = Api(server, server.create_token("bench"))
            time.sleep(3)  # let the workers start
            started = time.perf_counter()
            ids = [
                api.post("/luma/videos", {"prompt": f"clip {i}", "async": True}).json()["task_id"]
                for i in range(videos)
            ]
            for task_id in ids:
                assert api.wait_done(task_id, timeout=600)["response"]["success"]
            return videos / (time.perf_counter() - started) * 60
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(30)
            server.stop()


def part_c(videos: int) -> None:
    print("\n(c) preview videos per minute (540p, 5 s), API-only server + worker processes")
    with tempfile.TemporaryDirectory() as tmp:
        store = SeaweedFS(Path(tmp) / "seaweedfs").start()
        try:
            rates = {n: videos_per_minute(n, videos, store) for n in (1, 2)}
        finally:
            store.stop()
    for n, rate in rates.items():
        print(f"{n:>3} worker process(es): {rate:6.1f} videos/min")
    print(f"  2 vs 1: {rates[2] / rates[1]:.2f}x")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--pickups", type=int, default=40)
    parser.add_argument("--videos", type=int, default=8)
    args = parser.parse_args()
    print(f"reelgate scale-out benchmark on {os.cpu_count()} cores")
    part_a(args.pickups)
    part_b(args.tasks)
    part_c(args.videos)


if __name__ == "__main__":
    main()
