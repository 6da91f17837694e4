"""Soak test: N steps of the real trainer, watching it for anything that grows step by step.

    python scripts/soak.py --steps 200                      # the embedded default (configs/default.py)
    python scripts/soak.py --steps 50 --interval_s 5 -- --config.azr.batch_size=2

Starts `scripts/train.py --config=configs/default.py` (whatever model the default names; checkpoints
on, at the config's interval) in a fresh run directory as a child process and samples it every
`--interval_s` seconds from /proc (Linux): resident memory, open file descriptors, threads, live
descendant processes (executor zygotes and the program runs they fork) and the run directory's
size (total and per part). Arguments after `--` are passed to train.py unchanged.

RSS: a step's memory rises by gigabytes while it runs (the update's and the sampler's XLA
buffers) and falls back after, so a window's RSS is the mean over its steps of each step's
floor (its lowest sample): what the process keeps from step to step, where a leak shows. The
detail line also gives the mean of each step's peak and the plain mean of the samples.

Windows (k = ceil(N/10)): the steady state runs from step 1 done (set-up and compilation before
it are left out) until step N is done (what follows is shutdown: plots, the last save, closing
the executor). The first tenth is the samples taken while 1 .. k steps are done, the last tenth
while N-k .. N-1 are done. `fds.first` / `children.first` are the first steady-state sample,
`.last` the last one (the trainer still running its last step). `run_dir_mb_per_step` is the
least-squares slope of the run directory's size over steps done, in the second half of the run
(checkpoints then come and go at a steady rate, so only real growth shows).

Second-to-last line: the same figures per part of the run directory and per step time (JSON).
Last line: JSON with `steps`, `rss_mb` (`first_10pct`, `last_10pct`, `max`), `fds` (`first`,
`last`), `children` (`first`, `last`, `max`), `run_dir_mb_per_step`, `seconds`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_integer("steps", 200, "Self-play steps to run.")
flags.DEFINE_float("interval_s", 3.0, "Seconds between samples.")
flags.DEFINE_string("run_dir", "", "Run directory (default: a fresh temporary one, removed).")
flags.DEFINE_string("config", "configs/default.py", "train.py's --config.")
flags.DEFINE_string("samples_out", "", "Also write every sample here as JSON lines.")
flags.DEFINE_float(
    "max_seconds", 0, "Stop the trainer after this long and report the steps run (0 = no limit)."
)
flags.DEFINE_string(
    "summarize", "", "Only summarize a --samples_out file of an earlier (or stopped) soak."
)
FLAGS = flags.FLAGS
ROOT = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def _status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _descendants(pid: int) -> list[int]:
    """Live descendants of `pid` (any depth), from /proc/*/stat's parent ids."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z":  # a zombie is not alive
            parent[int(d)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out


def _dir_bytes(path: Path) -> dict[str, int]:
    """Bytes under each top-level entry of the run directory (files: their own size)."""
    out: dict[str, int] = {}
    if not path.is_dir():
        return out
    for entry in path.iterdir():
        total = 0
        try:
            if entry.is_dir():
                for root, _, files in os.walk(entry):
                    for name in files:
                        try:
                            total += os.lstat(os.path.join(root, name)).st_size
                        except OSError:
                            pass
            else:
                total = entry.lstat().st_size
        except OSError:
            continue
        out[entry.name] = total
    return out


def _steps_done(run_dir: Path) -> int:
    try:
        with open(run_dir / "metrics.jsonl", "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))
    except OSError:
        return 0


def sample(pid: int, run_dir: Path) -> dict | None:
    """One reading of the trainer `pid`, or None once it has gone."""
    try:
        st = _status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    if st.get("State", "").startswith("Z"):
        return None
    parts = _dir_bytes(run_dir)
    return {
        "t": time.time(),
        "step": _steps_done(run_dir),
        "rss_mb": int(st["VmRSS"].split()[0]) / 1024,
        "fds": fds,
        "threads": int(st["Threads"]),
        "children": len(_descendants(pid)),
        "run_dir_mb": sum(parts.values()) / 2**20,
        "parts_mb": {k: v / 2**20 for k, v in parts.items()},
    }


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two distinct xs)."""
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def summarize(
    samples: list[dict], steps: int, seconds: float, steps_run: int | None = None
) -> tuple[dict, dict]:
    """(the last-line figures, the per-part detail) of a run's samples. `steps_run`: the steps
    the trainer finished (metrics.jsonl once it exited); by default the last sample's count."""
    done = max((s["step"] for s in samples), default=0)
    # Steady state: from step 1 done (compiled) until the last step is done (then shutdown).
    live = [s for s in samples if 1 <= s["step"] < done] or [s for s in samples if s["step"]]
    if not live:
        raise RuntimeError("the trainer finished no step while sampled; see its log")
    tenth = max(1, math.ceil(done / 10))
    first = [s for s in live if s["step"] <= tenth]
    last = [s for s in live if s["step"] >= done - tenth] or live[-1:]

    def mean(rows, key):
        return round(sum(r[key] for r in rows) / len(rows), 1)

    def window(rows, pick):  # the mean over the window's steps of pick(that step's RSS samples)
        by_step: dict[int, list[float]] = {}
        for r in rows:
            by_step.setdefault(r["step"], []).append(r["rss_mb"])
        return round(sum(pick(v) for v in by_step.values()) / len(by_step), 1)

    half = [s for s in live if s["step"] > done / 2] or live
    per_step = round(slope([s["step"] for s in half], [s["run_dir_mb"] for s in half]), 4)
    figures = {
        "steps": max(done, steps_run or 0),
        "rss_mb": {
            "first_10pct": window(first, min),
            "last_10pct": window(last, min),
            "max": round(max(s["rss_mb"] for s in samples), 1),
        },
        "fds": {"first": live[0]["fds"], "last": live[-1]["fds"]},
        "children": {
            "first": live[0]["children"],
            "last": live[-1]["children"],
            "max": max(s["children"] for s in samples),
        },
        "run_dir_mb_per_step": per_step,
        "seconds": round(seconds, 1),
    }
    parts = sorted({k for s in half for k in s["parts_mb"]})
    detail = {
        "requested_steps": steps,
        "rss_mb_windows": {
            "floor": [window(first, min), window(last, min)],
            "step peak": [window(first, max), window(last, max)],
            "sample mean": [mean(first, "rss_mb"), mean(last, "rss_mb")],
        },
        "samples": len(samples),
        "threads": {"first": live[0]["threads"], "last": live[-1]["threads"]},
        "threads_max": max(s["threads"] for s in samples),
        "run_dir_mb_end": round(live[-1]["run_dir_mb"], 2),
        "part_mb_per_step": {
            k: round(slope([s["step"] for s in half], [s["parts_mb"].get(k, 0.0) for s in half]), 4)
            for k in parts
        },
        "part_mb_end": {k: round(v, 2) for k, v in live[-1]["parts_mb"].items()},
        "seconds_per_step": round((live[-1]["t"] - live[0]["t"]) / max(done - 1, 1), 2),
        "load_avg": os.getloadavg(),
    }
    return figures, detail


def main(argv):
    extra = argv[1:]
    if FLAGS.summarize:
        rows = [json.loads(x) for x in Path(FLAGS.summarize).read_text().splitlines() if x]
        figures, detail = summarize(rows, FLAGS.steps, rows[-1]["t"] - rows[0]["t"])
        print(json.dumps(detail))
        print(json.dumps(figures))
        return
    tmp = None
    if FLAGS.run_dir:
        run_dir = Path(FLAGS.run_dir).absolute()
    else:
        tmp = tempfile.TemporaryDirectory(prefix="azr_soak_")
        run_dir = Path(tmp.name) / "run"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        f"--config={FLAGS.config}",
        f"--config.output_dir={run_dir}",
        f"--config.num_steps={FLAGS.steps}",
        *extra,
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir.parent / f"{run_dir.name}.soak.log"
    print("soak:", " ".join(cmd), "| log:", log_path, flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("PYTHONPATH", str(ROOT))
    samples: list[dict] = []
    sink = open(FLAGS.samples_out, "w") if FLAGS.samples_out else None
    t0 = time.time()
    stopped = False
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                if FLAGS.max_seconds and time.time() - t0 > FLAGS.max_seconds:
                    print(f"soak: stopping the trainer after {FLAGS.max_seconds:.0f} s", flush=True)
                    stopped = True
                    proc.kill()
                    break
                s = sample(proc.pid, run_dir)
                if s is not None:
                    samples.append(s)
                    if sink:
                        sink.write(json.dumps(s) + "\n")
                        sink.flush()
                time.sleep(FLAGS.interval_s)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    seconds = time.time() - t0
    if sink:
        sink.close()
    if proc.returncode != 0 and not stopped:
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"the trainer exited with {proc.returncode}; its log ends:\n{tail}")
    figures, detail = summarize(samples, FLAGS.steps, seconds, _steps_done(run_dir))
    if tmp is not None:
        tmp.cleanup()
    print(json.dumps(detail))
    print(json.dumps(figures))


if __name__ == "__main__":
    app.run(main)
