"""A WebSocket client written to the seed's message shapes (DSMIL Phase 2, its
WebSocketManager and dashboard), on the third-party `websockets` library. It knows nothing of
DSMIL's additions: it reads only the seed's fields and ignores the rest.

Usage: python seed_ws_client.py WS_URL TOKEN
Prints one line per check passed; exits non-zero (with the message that broke it) otherwise.
"""

import asyncio
import json
import sys

import websockets

# The seed's MetricType values.
SEED_METRIC_TYPES = {
    "system_health",
    "agent_activity",
    "security_event",
    "dsmil_device",
    "tpm_event",
    "avx512_performance",
    "workflow_coordination",
}


async def recv(ws):
    message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
    assert isinstance(message, dict) and "type" in message, message
    return message


async def until(ws, kind, seen):
    """Reads messages until one of type `kind` and returns it; the others go to `seen`."""
    while True:
        message = await recv(ws)
        if message["type"] == kind:
            return message
        seen.append(message)


async def main(url, token):
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(url, additional_headers=headers, open_timeout=10) as ws:
        seen = []
        hello = await recv(ws)
        assert hello["type"] == "connection_established", hello
        data = hello["data"]
        assert set(data["available_metric_types"]) == SEED_METRIC_TYPES, data
        assert data["subscription_status"] == "all_metrics", data
        assert isinstance(data["server_time"], str), data
        print("connection_established: the seed's data")

        # The seed ignores names that are not metric types.
        await ws.send(json.dumps({"type": "subscribe", "metric_types": ["system_health", "cpu"]}))
        updated = await until(ws, "subscription_updated", seen)
        assert updated["data"]["subscribed_types"] == ["system_health"], updated
        print("subscription_updated: unknown type ignored")

        await ws.send(json.dumps({"type": "ping"}))
        pong = await until(ws, "pong", seen)
        assert isinstance(pong["timestamp"], str), pong
        print("pong: timestamp")

        # Live health samples as {"type": "system_health", "data", "timestamp"}, and the
        # configured CPU alert as {"type": "alert", "data", "timestamp"}; nothing else but
        # alerts while subscribed to system_health only.
        # (An alert raised before this client connected came with the greeting, replayed.)
        health = alert = None
        while health is None or alert is None:
            message = seen.pop(0) if seen else await recv(ws)
            kind = message["type"]
            if kind == "system_health":
                assert 0.0 <= message["data"]["cpu_usage_percent"] <= 100.0, message
                assert isinstance(message["timestamp"], str), message
                health = message
            elif kind == "alert":
                assert message["data"]["metric_name"], message
                assert isinstance(message["timestamp"], str), message
                alert = message
            else:
                # Before the subscription took effect every type came; after it, only these.
                assert kind in SEED_METRIC_TYPES | {"emergency"}, message
        print("system_health and alert: the seed's shapes")

        await ws.send("{not json")
        error = await until(ws, "error", seen)
        assert isinstance(error["message"], str) and error["message"], error
        print("error: message")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
