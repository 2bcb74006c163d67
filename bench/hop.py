"""In-process profile of one web -> worker hop (issue 17, P1): ``python -m bench.hop``.

Starts the main stack and, from this process, pings its worker N times each way,
interleaved: a raw REQ round trip of a prebuilt ping frame, ``WorkerClient.call``,
``WorkerPool.call`` and ``WorkerPool.ping_each`` (what health uses), each client with
its heartbeat running as in web. Prints p50/p99 per side; ``--profile`` adds a
cProfile of the pool's calls (top functions by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import zmq

from bench import stacks
from wire import protocol
from wire.client import WorkerClient
from wire.pool import WorkerPool


def _time(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    api_key, secret = stacks.new_secrets()
    stack = stacks.start(stacks.main_env(api_key, secret), "hop")
    context = zmq.Context()
    try:
        endpoint = f"ipc://{stack.dir / 'var' / 'worker.sock'}"
        raw = context.socket(zmq.REQ)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(endpoint)
        _, frame = protocol.encode_request("ping", {}, 1000)

        def raw_call() -> None:
            raw.send(frame)
            raw.recv_multipart()

        client = WorkerClient(endpoint, context=context)
        pool = WorkerPool([endpoint], context=context)
        client.start()
        pool.start()
        deadline = time.monotonic() + 10
        while not (client.liveness.up and pool.liveness.up) and time.monotonic() < deadline:
            time.sleep(0.01)
        sides = {
            "raw REQ": raw_call,
            "WorkerClient.call": lambda: client.call("ping", {}, timeout_s=1.0, retry=False),
            "WorkerPool.call": lambda: pool.call("ping", {}, timeout_s=1.0, retry=False),
            "WorkerPool.ping_each": lambda: pool.ping_each(1.0),
        }
        samples: dict[str, list[float]] = {name: [] for name in sides}
        for call in sides.values():
            _time(call, 200)  # warm-up
        per_round = max(1, args.calls // args.rounds)
        for _ in range(args.rounds):
            for name, call in sides.items():
                samples[name] += _time(call, per_round)
        for name, values in samples.items():
            values.sort()
            p99 = values[int(len(values) * 0.99) - 1]
            print(f"{name:24s} p50 {statistics.median(values):7.1f} us   p99 {p99:8.1f} us")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            _time(sides["WorkerPool.call"], args.calls)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        client.close()
        pool.close()
        time.sleep(0.6)  # the heartbeat threads see their stop within one 0.5 s poll
        raw.close(linger=0)
    finally:
        context.destroy(linger=0)
        stack.stop()
        stack.cleanup()


if __name__ == "__main__":
    main()
