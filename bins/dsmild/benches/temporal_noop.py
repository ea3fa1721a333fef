"""Temporal's one-activity workflow round trips, a reference row of `cargo xtask bench cluster`.

Usage: temporal_noop.py TEMPORAL_CLI IN_FLIGHT TOTAL — starts `temporal server start-dev`
(in memory, on free loopback ports; stopped by its pid at the end), runs one worker with a
no-op activity, and keeps IN_FLIGHT workflows of one activity each in flight until TOTAL have
finished; prints one JSON object: workflows/s and the p50/p99 of start-to-result latency in ms.
"""
import asyncio
import json
import socket
import subprocess
import sys
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

QUEUE = "dsmil-bench"


@activity.defn
async def noop() -> None:
    return None


@workflow.defn
class OneActivity:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def connect(port, server, deadline):
    while True:
        try:
            return await Client.connect(f"127.0.0.1:{port}")
        except Exception:
            if server.poll() is not None:
                raise RuntimeError(f"temporal server exited with {server.returncode}")
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def measure(client, in_flight, total):
    latencies = []
    next_id = 0

    async def one():
        nonlocal next_id
        while next_id < total:
            wid = f"w-{next_id}-{time.monotonic_ns()}"
            next_id += 1
            t = time.perf_counter()
            await client.execute_workflow(OneActivity.run, id=wid, task_queue=QUEUE)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(in_flight)))
    return time.perf_counter() - t0, sorted(latencies)


async def main():
    cli, in_flight, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    port = free_port()
    server = subprocess.Popen(
        [cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
         "--port", str(port), "--ui-port", str(free_port()),
         "--http-port", str(free_port()), "--metrics-port", str(free_port()),
         "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = await connect(port, server, time.monotonic() + 60)
        worker = Worker(client, task_queue=QUEUE, workflows=[OneActivity], activities=[noop],
                        workflow_runner=UnsandboxedWorkflowRunner())
        async with worker:
            await measure(client, min(in_flight, 4), 20)  # warm up
            wall, latencies = await measure(client, in_flight, total)
        pick = lambda p: latencies[round((len(latencies) - 1) * p)] * 1e3
        print(json.dumps({"per_second": total / wall, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    asyncio.run(main())
