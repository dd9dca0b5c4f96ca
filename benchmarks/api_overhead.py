"""API overhead, measured side by side in one run (prints figures; not a test).

1. Requests per second for create-task (`POST /luma/videos`, async), for
   retrieve (`POST /luma/tasks`) and for get (the official
   `GET /dream-machine/v1/generations/{id}`), next to a bare endpoint
   (`GET /healthz`) of the same app on the same server, with the ratio of
   each to the bare one.
2. Memory and threads of the server while 1,000 sync `POST /luma/videos`
   calls wait at once (no workers run, so every call waits to its timeout).

On SQLite by default; `--postgres [URL]` runs the server on a database of its
own on that PostgreSQL server (default `$REELGATE_TEST_POSTGRES_URL`, else the
local one), dropped afterwards. `--waiters 0` skips part 2.

Usage: python benchmarks/api_overhead.py [--seconds 3] [--concurrency 32] [--waiters 1000]
       [--postgres [URL]]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

import httpx
import psutil

from reelgate.testing import Server, postgres_database

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


class Rate(NamedTuple):
    per_second: float
    cpu_ms: float
    """The server's CPU time per request (its process counters): steadier
    than requests per second where the machine is shared."""


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def rate(
    client: httpx.AsyncClient,
    server: psutil.Process,
    method: str,
    path: str,
    body: object | None,
    seconds: float,
    concurrency: int,
) -> Rate:
    """Completed requests per second with `concurrency` requests in flight,
    and the server's CPU per request."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            response = await client.request(method, path, json=body)
            response.raise_for_status()
            done += 1

    started, cpu = time.perf_counter(), cpu_seconds(server)
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(server) - cpu
    return Rate(done / elapsed, cpu / max(done, 1) * 1000)


async def throughput(server: Server, token: str, seconds: float, concurrency: int) -> None:
    assert server.proc is not None
    proc = psutil.Process(server.proc.pid)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url, limits=limits, timeout=60, headers={"authorization": f"Bearer {token}"}
    ) as client:
        task_id = (await client.post("/luma/videos", json={"prompt": "x", "async": True})).json()[
            "task_id"
        ]
        generation = (
            await client.post("/dream-machine/v1/generations", json={"prompt": "a generation"})
        ).json()["id"]
        await rate(client, proc, "GET", "/healthz", None, 1.0, concurrency)  # warm-up
        rows: list[tuple[str, Rate]] = []
        bare = await rate(client, proc, "GET", "/healthz", None, seconds, concurrency)
        rows.append(("bare GET /healthz", bare))
        rows.append(
            (
                "create task (async POST /luma/videos)",
                await rate(
                    client,
                    proc,
                    "POST",
                    "/luma/videos",
                    {"prompt": "benchmark", "async": True},
                    seconds,
                    concurrency,
                ),
            )
        )
        rows.append(
            (
                "retrieve (POST /luma/tasks)",
                await rate(
                    client,
                    proc,
                    "POST",
                    "/luma/tasks",
                    {"id": task_id, "action": "retrieve"},
                    seconds,
                    concurrency,
                ),
            )
        )
        rows.append(
            (
                "get (GET /dream-machine/v1/generations/{id})",
                await rate(
                    client,
                    proc,
                    "GET",
                    f"/dream-machine/v1/generations/{generation}",
                    None,
                    seconds,
                    concurrency,
                ),
            )
        )
    print(f"\nThroughput, {concurrency} requests in flight, {seconds:g} s each:")
    for name, value in rows:
        print(
            f"  {name:<46} {value.per_second:8.0f} req/s   "
            f"{value.per_second / bare.per_second:5.2f}x of bare   "
            f"server CPU {value.cpu_ms:5.2f} ms/request "
            f"({bare.cpu_ms / value.cpu_ms:4.2f}x of bare)"
        )


async def waiters(server: Server, token: str, count: int, wait_seconds: float) -> None:
    proc = psutil.Process(server.proc.pid)
    before_rss, before_threads = proc.memory_info().rss, proc.num_threads()
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(
        base_url=server.url,
        limits=limits,
        timeout=wait_seconds + 60,
        headers={"authorization": f"Bearer {token}"},
    ) as client:
        calls = [
            asyncio.create_task(
                client.post("/luma/videos", json={"prompt": f"waiter {i}", "timeout": wait_seconds})
            )
            for i in range(count)
        ]
        peak_rss, peak_threads = before_rss, before_threads
        deadline = time.perf_counter() + wait_seconds - 1
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
            peak_rss = max(peak_rss, proc.memory_info().rss)
            peak_threads = max(peak_threads, proc.num_threads())
        answers = await asyncio.gather(*calls)
    timeouts = sum(1 for a in answers if a.status_code == 504 and a.json().get("task_id"))
    print(
        f"\n{count} sync POST /luma/videos waiting at once "
        f"({wait_seconds:g} s timeout, no workers):"
    )
    print(f"  server RSS before      {before_rss / 2**20:8.1f} MiB")
    print(
        f"  server RSS peak        {peak_rss / 2**20:8.1f} MiB "
        f"(+{(peak_rss - before_rss) / count / 1024:.1f} KiB per waiting call)"
    )
    print(f"  server threads         {before_threads} before, {peak_threads} peak")
    print(f"  answered 504 with task_id: {timeouts}/{count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--waiters", type=int, default=1000)
    parser.add_argument("--wait-seconds", type=float, default=15.0)
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=os.environ.get("REELGATE_TEST_POSTGRES_URL") or LOCAL_POSTGRES,
        metavar="URL",
        help="run on a database of its own on this PostgreSQL server",
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        env = {"REELGATE_POLL_INTERVAL": "0.5"}
        if args.postgres:
            env["REELGATE_DATABASE_URL"] = stack.enter_context(postgres_database(args.postgres))
        server = Server(Path(tmp) / "data", workers=0, env=env)
        token = server.create_token("bench")
        server.start()
        try:
            asyncio.run(throughput(server, token, args.seconds, args.concurrency))
            if args.waiters:
                asyncio.run(waiters(server, token, args.waiters, args.wait_seconds))
        finally:
            server.stop()
    print(
        f"\n(python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}; client and server share the machine)"
    )


if __name__ == "__main__":
    main()
