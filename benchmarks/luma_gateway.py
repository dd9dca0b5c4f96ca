"""What a reelgate gateway in front of an upstream costs, measured side by side
in one run (prints figures; not a test).

One upstream reelgate (preview engine) renders; two gateways use it through
the `luma` engine with the default follow settings: one follows by polling
(no public URL), one by callbacks. Rounds alternate direct / polling /
callbacks, so all three see the same machine load. For each, the time from
create to a completed generation a client can fetch, the ratio to direct,
and how many upstream status reads each gateway made per generation.

Usage: python benchmarks/luma_gateway.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lumaai import LumaAI

from reelgate.testing import FaultProxy, Server


def timed_generation(client: LumaAI, prompt: str) -> float:
    started = time.perf_counter()
    generation = client.generations.create(model="ray-2", prompt=prompt)
    while True:
        generation = client.generations.get(generation.id)
        if generation.state in ("completed", "failed"):
            break
        time.sleep(0.05)
    if generation.state != "completed":
        raise RuntimeError(generation.failure_reason)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reelgate-gateway-"))
    upstream = Server(root / "upstream", workers=1).start()
    key = upstream.create_token("gateway")
    proxies = {"polling": FaultProxy(upstream.url), "callbacks": FaultProxy(upstream.url)}
    gateways = {
        "polling": Server(
            root / "polling",
            workers=1,
            env={
                "REELGATE_DEFAULT_ENGINE": "luma",
                "REELGATE_LUMA_API_KEYS": key,
                "REELGATE_LUMA_BASE_URL": proxies["polling"].url + "/dream-machine/v1",
                "REELGATE_PUBLIC_BASE_URL": None,
            },
        ),
        "callbacks": Server(
            root / "callbacks",
            workers=1,
            env={
                "REELGATE_DEFAULT_ENGINE": "luma",
                "REELGATE_LUMA_API_KEYS": key,
                "REELGATE_LUMA_BASE_URL": proxies["callbacks"].url + "/dream-machine/v1",
            },
        ),
    }
    try:
        clients = {
            "direct": LumaAI(
                auth_token=upstream.create_token("direct"),
                base_url=upstream.url + "/dream-machine/v1",
            )
        }
        for name, server in gateways.items():
            server.start()
            clients[name] = LumaAI(
                auth_token=server.create_token("app"), base_url=server.url + "/dream-machine/v1"
            )
        timed_generation(clients["direct"], "warm-up")
        times: dict[str, list[float]] = {name: [] for name in clients}
        for i in range(args.rounds):
            for name, client in clients.items():
                times[name].append(timed_generation(client, f"round {i} through {name}"))
        direct = statistics.median(times["direct"])
        print(f"{args.rounds} generations each (540p, 5 s, preview engine upstream)")
        print(f"{'path':<12}{'median s':>10}{'ratio':>8}{'added s':>9}{'reads/gen':>11}")
        for name, values in times.items():
            median = statistics.median(values)
            reads = "-"
            if name in proxies:
                gets = [
                    s for s in proxies[name].seen if s.method == "GET" and "/generations/" in s.path
                ]
                reads = f"{len(gets) / args.rounds:.1f}"
            print(
                f"{name:<12}{median:>10.2f}{median / direct:>7.2f}x{median - direct:>9.2f}"
                f"{reads:>11}"
            )
    finally:
        for server in gateways.values():
            server.stop()
        upstream.stop()
        for proxy in proxies.values():
            proxy.close()


if __name__ == "__main__":
    main()
