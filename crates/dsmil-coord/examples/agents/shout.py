#!/usr/bin/env python3
"""A command agent: upper-cases input_data.text."""
import json
import sys

task = json.load(sys.stdin)
data = task.get("input_data") or {}
json.dump({"result": {"text": str(data.get("text", "")).upper()}}, sys.stdout)
