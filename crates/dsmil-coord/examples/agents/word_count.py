#!/usr/bin/env python3
"""A command agent: counts the words of input_data.text (or of the previous stage's `text`)."""
import json
import sys

task = json.load(sys.stdin)
data = task.get("input_data") or {}
text = data.get("text", "") if isinstance(data, dict) else str(data)
json.dump({"result": {"text": text, "words": len(text.split())}}, sys.stdout)
