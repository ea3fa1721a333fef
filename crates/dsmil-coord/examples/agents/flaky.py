#!/usr/bin/env python3
"""A command agent that crashes on its first attempt and succeeds on the next (retry demo)."""
import json
import sys

task = json.load(sys.stdin)
if task["attempt"] == 1:
    print("simulated crash on the first attempt", file=sys.stderr)
    sys.exit(1)
json.dump({"result": {"attempt": task["attempt"]}}, sys.stdout)
