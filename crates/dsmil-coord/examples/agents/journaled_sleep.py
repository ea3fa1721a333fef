#!/usr/bin/env python3
"""A command agent that appends its task id to the file input_data.log, then sleeps
input_data.seconds: lets tests see which tasks really ran."""
import json
import sys
import time

task = json.load(sys.stdin)
data = task.get("input_data") or {}
if "log" in data:
    with open(data["log"], "a") as f:
        f.write(task["task_id"] + "\n")
time.sleep(float(data.get("seconds", 0)))
json.dump({"result": {"slept": data.get("seconds", 0), "task": task["task_id"]}}, sys.stdout)
