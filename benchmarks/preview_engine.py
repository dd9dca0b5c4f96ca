"""Preview engine speed against the encoder's floor, in one run (prints figures; not a test).

For each request shape (text, start image, start+end image) at 720p and 1080p,
a 5 s clip (121 frames) is rendered and encoded as the worker does it (frames
streamed into the encoder), next to the time the same encoder needs for the
same frames computed beforehand (the floor). The goal: render+encode within
1.25x of the floor for every shape (issue 19).

Peak memory is measured in a child process that streams a 1080p 9 s clip.

OpenCV runs with the threads a worker process gives it (`REELGATE_OPENCV_THREADS`,
default 1) unless `--opencv-threads` says otherwise (0: OpenCV's own choice).

Usage: python benchmarks/preview_engine.py [--preset veryfast] [--repeat 1] [--opencv-threads N]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from reelgate.config import Settings
from reelgate.domain.models import FPS, frame_count, frame_size
from reelgate.engines.base import RenderJob
from reelgate.engines.preview import PreviewEngine
from reelgate.media.encode import encode_mp4
from reelgate.testing import textured_image


def job_for(shape: str, width: int, height: int, frames: int) -> RenderJob:
    job = RenderJob(
        task_id="bench",
        prompt="sunset over a quiet harbour with boats",
        seed=7,
        width=width,
        height=height,
        fps=FPS,
        num_frames=frames,
    )
    if shape in ("start image", "start+end"):
        job.start_image = textured_image(width, height, seed=1)
    if shape == "start+end":
        job.end_image = np.roll(job.start_image, width // 12, axis=1)  # a camera pan
    return job


def timed_stream(engine: PreviewEngine, job: RenderJob, out: Path, preset: str) -> float:
    started = time.perf_counter()
    encode_mp4(
        engine.render(job, lambda _: None),
        out,
        width=job.width,
        height=job.height,
        fps=FPS,
        preset=preset,
    )
    return time.perf_counter() - started


def timed_floor(frames: list[np.ndarray], job: RenderJob, out: Path, preset: str) -> float:
    started = time.perf_counter()
    encode_mp4(iter(frames), out, width=job.width, height=job.height, fps=FPS, preset=preset)
    return time.perf_counter() - started


def speed(preset: str, repeat: int) -> None:
    engine = PreviewEngine()
    goals = {"text": 1.25, "start image": 1.25, "start+end": 1.25}
    print(f"5 s clips ({frame_count('5s')} frames), x264 preset {preset}, best of {repeat}:")
    print(
        f"  {'shape':<12} {'size':>10} {'render+encode':>14} {'encode floor':>13} "
        f"{'ratio':>6} {'goal':>5}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.mp4"
        for resolution in ("720p", "1080p"):
            width, height = frame_size("16:9", resolution)
            for shape, goal in goals.items():
                job = job_for(shape, width, height, frame_count("5s"))
                frames = list(engine.render(job, lambda _: None))
                floor = min(timed_floor(frames, job, out, preset) for _ in range(repeat))
                del frames
                stream = min(timed_stream(engine, job, out, preset) for _ in range(repeat))
                ratio = stream / floor
                print(
                    f"  {shape:<12} {width:>5}x{height:<4} {stream:>12.2f} s {floor:>11.2f} s "
                    f"{ratio:>6.2f} {goal:>5.2f}{'' if ratio <= goal else '  (over goal)'}"
                )


def peak_rss_mib() -> float:
    """This process's high-water RSS. (ru_maxrss would be no good here: Linux
    carries it over from the parent across exec.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(preset: str) -> None:
    """Stream a 1080p 9 s start+end clip; print peak RSS before and after, in MiB."""
    width, height = frame_size("16:9", "1080p")
    job = job_for("start+end", width, height, frame_count("9s"))
    with tempfile.TemporaryDirectory() as tmp:
        base = peak_rss_mib()
        timed_stream(PreviewEngine(), job, Path(tmp) / "clip.mp4", preset)
    print(f"{base:.0f} {peak_rss_mib():.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--opencv-threads", type=int, default=Settings().opencv_threads)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.opencv_threads:
        cv2.setNumThreads(args.opencv_threads)  # as `Runtime.start_workers` does
    print(f"OpenCV threads: {cv2.getNumThreads()}")
    if args.memory_child:
        memory_child(args.preset)
        return
    speed(args.preset, args.repeat)
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory-child",
            "--preset",
            args.preset,
            "--opencv-threads",
            str(args.opencv_threads),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-2:]
    width, height = frame_size("16:9", "1080p")
    one_frame = width * height * 3 / 2**20
    print(
        f"\nPeak memory streaming a 1080p 9 s start+end clip ({frame_count('9s')} frames): "
        f"{out[1]} MiB RSS ({out[0]} MiB before rendering; all frames held at once would need "
        f"{one_frame * frame_count('9s'):.0f} MiB more)"
    )


if __name__ == "__main__":
    main()
