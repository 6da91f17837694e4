"""Where a profiled step's time went: totals per op from a `jax.profiler.trace` directory.

    python scripts/trace_summary.py TRACE_DIR [--top 25]

Reads the newest `*.trace.json.gz` under TRACE_DIR (Chrome trace format, written by
`jax.profiler.trace`, e.g. by `scripts/bench_train_step.py --trace_dir`). Sums the durations of
complete events per name on the timeline that holds the ops (`summarize` says which), and per
thread. Prints the top ops as a table, and last a JSON line: `timeline`, `total_ms`, `threads`
(ms per process / thread), `top` ([name, ms, share]).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
from pathlib import Path


def load_events(trace_dir: str | Path) -> list[dict]:
    files = sorted(Path(trace_dir).rglob("*.trace.json.gz"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise SystemExit(f"no *.trace.json.gz under {trace_dir}: pass a jax.profiler.trace dir")
    with gzip.open(files[-1], "rt") as f:
        data = json.load(f)
    return data["traceEvents"] if isinstance(data, dict) else data


def summarize(events: list[dict], top: int = 25) -> dict:
    """Per-thread totals and the top op names (ms) of the timeline that holds the ops.

    The op timeline: on a device, its "XLA Ops" threads when the trace has them (per HLO op),
    else every device thread (kernels per stream); on a CPU run, the host's XLA threads
    without the executor's wrapper events (which contain the ops and would count them twice).
    """
    processes = {
        e["pid"]: e.get("args", {}).get("name", "")
        for e in events
        if e.get("ph") == "M" and e.get("name") == "process_name"
    }
    threads = {
        (e["pid"], e["tid"]): e.get("args", {}).get("name", "")
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    device = {pid for pid, name in processes.items() if name.startswith("/device:")}
    xla_ops = {k for k in threads if k[0] in device and threads[k] == "XLA Ops"}

    def on_timeline(e: dict) -> bool:
        key = (e["pid"], e.get("tid"))
        if xla_ops:
            return key in xla_ops
        if device:
            return e["pid"] in device
        return threads.get(key, "").startswith("tf_XLA") and not e["name"].startswith(
            "ThunkExecutor"
        )

    per_thread: collections.Counter = collections.Counter()
    per_name: collections.Counter = collections.Counter()
    for e in events:
        if e.get("ph") != "X":
            continue
        ms = float(e.get("dur", 0.0)) / 1e3  # microseconds -> ms
        process = processes.get(e["pid"], str(e["pid"]))
        per_thread[f"{process} / {threads.get((e['pid'], e.get('tid')), e.get('tid'))}"] += ms
        if on_timeline(e):
            per_name[e["name"]] += ms
    total = sum(per_name.values())
    return {
        "timeline": "XLA Ops" if xla_ops else "device" if device else "host XLA threads",
        "total_ms": round(total, 3),
        "threads": {name: round(ms, 3) for name, ms in per_thread.most_common(12)},
        "top": [
            [name, round(ms, 3), round(ms / total, 4) if total else 0.0]
            for name, ms in per_name.most_common(top)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace_dir")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    summary = summarize(load_events(args.trace_dir), args.top)
    print(f"{summary['timeline']}: {summary['total_ms']:.1f} ms in all")
    for name, ms, share in summary["top"]:
        print(f"{ms:10.2f} ms  {100 * share:5.1f}%  {name[:120]}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
