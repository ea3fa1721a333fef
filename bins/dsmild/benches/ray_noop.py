"""Ray's no-op task round trips, the reference row of `cargo xtask bench cluster`.

Usage: ray_noop.py IN_FLIGHT TOTAL — keeps IN_FLIGHT no-op tasks in flight (ray.init with
num_cpus=2, this machine's cores) until TOTAL have finished; prints one JSON object: tasks/s and
the p50/p99 of submission-to-result latency in ms.
"""
import json
import sys
import time

import ray


@ray.remote
def noop():
    return None


def main():
    in_flight, total = int(sys.argv[1]), int(sys.argv[2])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.get([noop.remote() for _ in range(200)])  # warm the workers
    started = {}
    latencies = []
    pending = []
    t0 = time.perf_counter()
    submitted = 0
    while len(latencies) < total:
        while len(pending) < in_flight and submitted < total:
            ref = noop.remote()
            started[ref] = time.perf_counter()
            pending.append(ref)
            submitted += 1
        done, pending = ray.wait(pending, num_returns=1)
        now = time.perf_counter()
        for ref in done:
            latencies.append(now - started.pop(ref))
    wall = time.perf_counter() - t0
    latencies.sort()
    pick = lambda p: latencies[round((len(latencies) - 1) * p)] * 1e3
    print(json.dumps({"per_second": total / wall, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}))
    ray.shutdown()


if __name__ == "__main__":
    main()
