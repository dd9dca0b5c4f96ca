"""Preview clips end to end, side by side in one run (prints figures; not a test).

(a) Latency: a 720p 5 s text clip, created with the AceData dialect's sync
    call (`POST /luma/videos`, it answers when the clip is completed), on a
    `reelgate serve` with one worker and the default settings, next to the
    same clip rendered and encoded in this process as the worker does it
    (the floor). The server logs where each completed task's time went
    (queued, enhance, render, publish, record); the stages' shares of
    create-to-completed are printed.
(b) Throughput: clips per minute with 1, 2 and 4 workers in one server, a
    batch of clips created at once (async) and timed from the first create
    to the last completed, for each OpenCV thread setting given, with the
    server's CPU seconds per clip.

Usage: python benchmarks/end_to_end.py [--clips 3] [--batch 8]
       [--workers 1 2 4] [--opencv-threads 1 0] [--encoder-threads 0]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import psutil

from reelgate.config import Settings
from reelgate.domain.models import FPS, frame_count, frame_size
from reelgate.engines.base import RenderJob
from reelgate.engines.preview import PreviewEngine
from reelgate.media.encode import encode_mp4
from reelgate.testing import TEST_SETTINGS, Server

PROMPT = "sunset over a quiet harbour with boats"  # as in preview_engine.py
STAGES = re.compile(r"completed ([\d.]+) s after it was created \(([^)]*)\)")


def production(workers: int, opencv_threads: int, encoder_threads: int) -> dict[str, str | None]:
    """Server settings: the defaults, not the tests' fast ones."""
    env: dict[str, str | None] = {f"REELGATE_{k.upper()}": None for k in TEST_SETTINGS}
    env["REELGATE_WORKERS"] = str(workers)
    env["REELGATE_OPENCV_THREADS"] = str(opencv_threads)
    env["REELGATE_ENCODER_THREADS"] = str(encoder_threads)
    return env


def floor_seconds(encoder_threads: int) -> float:
    """Render+encode of the clip in this process, as the worker does it."""
    width, height = frame_size("16:9", "720p")
    job = RenderJob(
        task_id="bench",
        prompt=PROMPT,
        seed=1,
        width=width,
        height=height,
        fps=FPS,
        num_frames=frame_count("5s"),
    )
    defaults = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        encode_mp4(
            PreviewEngine().render(job, lambda _: None),
            Path(tmp) / "clip.mp4",
            width=width,
            height=height,
            preset=defaults.encoder_preset,
            crf=defaults.encoder_crf,
            threads=encoder_threads,
        )
        return time.perf_counter() - began


def create(client: httpx.Client, seed: int, sync: bool) -> httpx.Response:
    body = {
        "prompt": PROMPT,
        "resolution": "720p",
        "duration": "5s",
        "seed": seed,
        "enhancement": False,
        "async": not sync,
    }
    return client.post("/luma/videos", json=body)


def stage_lines(server: Server) -> list[tuple[float, dict[str, float]]]:
    found = []
    for match in STAGES.finditer(server.log_path.read_text(errors="replace")):
        parts = dict(part.rsplit(" ", 2)[:2] for part in match.group(2).split(", "))
        found.append((float(match.group(1)), {k: float(v) for k, v in parts.items()}))
    return found


@contextmanager
def warm_server(
    data_dir: Path, workers: int, opencv_threads: int, encoder_threads: int
) -> Iterator[tuple[Server, httpx.Client]]:
    """A server on production settings, and a client of it that has made one
    clip already (imports, caches and the first encoder start are paid)."""
    server = Server(
        data_dir, env=production(workers, opencv_threads, encoder_threads), log_level="info"
    ).start()
    try:
        with server.http(server.create_token("bench")) as client:
            create(client, 0, sync=True).raise_for_status()
            yield server, client
    finally:
        server.stop()


def latency(root: Path, clips: int, opencv_threads: int, encoder_threads: int) -> None:
    cv2.setNumThreads(opencv_threads or cv2.getNumberOfCPUs())
    with warm_server(root / "latency", 1, opencv_threads, encoder_threads) as (server, client):
        seen, floors = [], []
        for seed in range(1, clips + 1):
            floors.append(floor_seconds(encoder_threads))
            began = time.perf_counter()
            answer = create(client, seed, sync=True)
            seen.append(time.perf_counter() - began)
            answer.raise_for_status()
        stages = stage_lines(server)[1:]  # the warm-up's first
    floor, total = statistics.median(floors), statistics.median(seen)
    print(f"(a) 720p 5 s text clip, create to completed (median of {clips}), one worker:")
    print(f"    create to completed   {total:6.2f} s   {total / floor:5.2f}x the floor")
    print(f"    render+encode floor   {floor:6.2f} s   (this process, same settings)")
    shares: dict[str, list[float]] = defaultdict(list)
    for _, parts in stages:
        for name, seconds in parts.items():
            shares[name].append(seconds)
    accounted = 0.0
    for name, values in shares.items():
        seconds = statistics.median(values)
        accounted += seconds
        print(f"    {name:<20}  {seconds:6.2f} s   {seconds / total:6.1%}")
    rest = total - accounted
    print(f"    {'answer and the rest':<20}  {rest:6.2f} s   {rest / total:6.1%}")


def throughput(
    root: Path, batch: int, workers: list[int], opencv: list[int], encoder_threads: int
) -> None:
    print(f"\n(b) clips per minute, {batch} 720p 5 s text clips created at once:")
    print(
        f"    {'workers':>7} {'OpenCV threads':>15} {'clips/min':>10} {'seconds':>8} "
        f"{'server CPU s/clip':>18}"
    )
    for threads in opencv:
        for count in workers:
            data_dir = root / f"throughput-{count}-{threads}"
            with warm_server(data_dir, count, threads, encoder_threads) as (server, client):
                began = time.perf_counter()
                cpu = _cpu_seconds(server)
                ids = [create(client, seed, sync=False).json()["task_id"] for seed in range(batch)]
                pending = set(ids)
                while pending:
                    time.sleep(0.05)
                    answer = client.post(
                        "/luma/tasks", json={"action": "retrieve_batch", "ids": list(pending)}
                    ).json()
                    for item in answer["items"]:
                        state = item["response"]["state"]
                        if state == "failed":
                            raise SystemExit(f"a clip failed: {item}")
                        if state != "processing":
                            pending.discard(item["id"])
                seconds = time.perf_counter() - began
                cpu = _cpu_seconds(server) - cpu
            label = str(threads) if threads else "auto"
            print(
                f"    {count:>7} {label:>15} {60 * batch / seconds:>10.1f} {seconds:>8.1f} "
                f"{cpu / batch:>18.2f}"
            )


def _cpu_seconds(server: Server) -> float:
    """CPU time the server process has used so far (all its threads): steadier
    than wall time on a shared machine, and it shows work wasted spinning."""
    assert server.proc is not None
    times = psutil.Process(server.proc.pid).cpu_times()
    return float(times.user + times.system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--opencv-threads", type=int, nargs="+", default=[1, 0])
    parser.add_argument("--encoder-threads", type=int, default=0)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    print(f"{cv2.getNumberOfCPUs()} CPUs; OpenCV threads 0 means OpenCV's own choice")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_latency:
            latency(root, args.clips, args.opencv_threads[0], args.encoder_threads)
        throughput(root, args.batch, args.workers, args.opencv_threads, args.encoder_threads)


if __name__ == "__main__":
    main()
