"""Validations per second on CRUXEval, against the naive baseline, in one run.

    python scripts/bench_executor.py [--data PATH] [--workers 2] [--repeats 3] [--baseline_n 40]

One validation is the full AZR check of one record: static checks, two sandboxed runs under
different hash seeds, the determinism and round-trip checks. The baseline runs each program
twice in a fresh `python -c` subprocess (no sandbox), on the first `baseline_n` records only,
to keep time down. The last line is JSON with `per_second`, `baseline_per_second`, `ratio`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from azr_jax.executor.pool import ExecutorPool  # noqa: E402
from azr_jax.executor.validation import Proposal, validate_many  # noqa: E402

_BASELINE = "{code}\nprint(repr(f({input})))\n"


def baseline(records: list[dict], timeout_s: float) -> tuple[float, int]:
    """Seconds for two fresh-interpreter runs per record, and how many agreed."""
    start = time.perf_counter()
    agreed = 0
    for r in records:
        script = _BASELINE.format(code=r["code"], input=r["input"])
        outs = [
            subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout_s
            ).stdout
            for _ in range(2)
        ]
        agreed += outs[0] == outs[1] and outs[0].strip() != ""
    return time.perf_counter() - start, agreed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.path.join(REPO, "..", "shared", "data", "cruxeval", "cruxeval_dev.jsonl")
    parser.add_argument("--data", default=os.path.normpath(default))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max_in_flight", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline_n", type=int, default=40)
    parser.add_argument("--timeout_s", type=float, default=10.0)
    args = parser.parse_args()
    with open(args.data, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    proposals = [Proposal(r["code"], [r["input"]]) for r in records]
    with ExecutorPool(
        workers=args.workers, timeout_s=args.timeout_s, max_in_flight=args.max_in_flight
    ) as pool:
        validate_many(pool, proposals[:50])  # warm-up
        cpu0, start = os.times(), time.perf_counter()
        valid = 0
        for _ in range(args.repeats):
            valid += sum(v.valid for v in validate_many(pool, proposals))
        seconds = time.perf_counter() - start
        cpu1 = os.times()
        layers = [name for name, on in pool.layers.items() if on]
    n = len(records) * args.repeats
    cpu = (
        cpu1.user
        + cpu1.system
        + cpu1.children_user
        + cpu1.children_system
        - cpu0.user
        - cpu0.system
        - cpu0.children_user
        - cpu0.children_system
    )
    base_records = records[: args.baseline_n]
    base_seconds, base_agreed = baseline(base_records, args.timeout_s)
    per_second = n / seconds
    baseline_per_second = len(base_records) / base_seconds
    print(
        json.dumps(
            {
                "per_second": round(per_second, 1),
                "baseline_per_second": round(baseline_per_second, 1),
                "ratio": round(per_second / baseline_per_second, 1),
                "validations": n,
                "valid": valid,
                "seconds": round(seconds, 2),
                "parent_cpu_ms_per_validation": round(cpu / n * 1e3, 3),
                "baseline_records": len(base_records),
                "baseline_agreed": base_agreed,
                "workers": args.workers,
                "max_in_flight": args.max_in_flight,
                "cores": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "layers": layers,
            }
        )
    )


if __name__ == "__main__":
    main()
