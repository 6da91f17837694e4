"""Where the tests find CRUXEval (never copied into the repo): ../shared beside the repo."""

from __future__ import annotations

import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cruxeval_path() -> str:
    default = os.path.join(REPO, "..", "shared", "data", "cruxeval", "cruxeval_dev.jsonl")
    return os.path.normpath(os.environ.get("AZR_CRUXEVAL_PATH", default))


def cruxeval_records() -> list[dict]:
    path = cruxeval_path()
    if not os.path.exists(path):
        pytest.skip(f"CRUXEval dev file not found at {path} (set AZR_CRUXEVAL_PATH)")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
