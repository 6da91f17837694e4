"""The code benchmarks' publishers' real files, read and graded whole: the figures of issue 29.

    python scripts/bench_eval_release_files.py --data_dir DIR [--benchmarks humaneval_plus,mbpp_plus]
        [--workers 2] [--max_problems 0]

DIR holds the release files under the names `azr_jax/evals/benchmarks.py` documents (e.g.
EvalPlus's `HumanEvalPlus-v0.1.10.jsonl.gz` saved as `HumanEvalPlus.jsonl.gz`, `MbppPlus-v0.2.0`
as `MbppPlus.jsonl.gz`; LiveCodeBench's `test*.jsonl` concatenated as `livecodebench.jsonl`).
Per benchmark: the records read and skipped, the file's SHA-256; for EvalPlus the canonical
solutions' base and plus scores (target 1.000), a `return None` solution's (target 0.000),
the dropped tests (target 0) with the first reasons, every failing canonical verdict, and the
reference runs' times; for LiveCodeBench the records per test type and per contest month.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from azr_jax.evals import benchmarks as bm  # noqa: E402
from azr_jax.evals import code_grading as cg  # noqa: E402
from azr_jax.evals import evalplus_grading as eg  # noqa: E402


def evalplus_figures(name: str, read: bm.BenchmarkFile, workers: int, max_problems: int) -> dict:
    problems = read.records[:max_problems] if max_problems else read.records
    out: dict = {}
    # the defaults of paper_eval: canonical runs capped at 60 s, 4 GiB per run (EvalPlus's)
    with cg.code_pool(
        workers=workers, test_timeout_s=60.0, memory_mb=eg.EVALPLUS_MEMORY_MB
    ) as pool:
        t = time.perf_counter()
        expected = eg.evalplus_expected(pool, problems, benchmark=name)
        out["reference_s"] = time.perf_counter() - t
        dropped = collections.Counter(
            f"{p['id']}: {ref[1]}"[:160]
            for p, refs in zip(problems, expected, strict=True)
            for ref in refs
            if not ref[0]
        )
        times = sorted(ref[2] for refs in expected for ref in refs if ref[0])
        out["tests"] = sum(len(refs) for refs in expected)
        out["dropped_tests"] = sum(dropped.values())
        out["dropped_why"] = [f"{n} x {why}" for why, n in dropped.most_common(40)]
        out["reference_run_s_median"] = times[len(times) // 2] if times else 0.0
        out["reference_run_s_max"] = times[-1] if times else 0.0
        out["tests_over_0.25_s"] = sum(x > 0.25 for x in times)  # limit above the 1 s floor
        for label, solutions in (
            ("canonical", [p["prompt"] + p["canonical_solution"] for p in problems]),
            (
                "return_none",
                [f"def {p['entry_point']}(*args):\n    return None\n" for p in problems],
            ),
        ):
            t = time.perf_counter()
            got = eg.grade_evalplus(pool, name, problems, expected, list(enumerate(solutions)))
            out[f"{label}_s"] = time.perf_counter() - t
            out[f"{label}_base"] = sum(g["base"] for g in got) / len(got)
            out[f"{label}_plus"] = sum(g["plus"] for g in got) / len(got)
            if label == "canonical":
                out["canonical_failures"] = [
                    f"{p['id']}: {g['verdict']}"[:200]
                    for p, g in zip(problems, got, strict=True)
                    if not g["plus"]
                ]
            else:
                out["return_none_passes"] = [
                    p["id"] for p, g in zip(problems, got, strict=True) if g["plus"] or g["base"]
                ]
    return out


def livecodebench_figures(read: bm.BenchmarkFile) -> dict:
    kinds = collections.Counter("functional" if r["func_name"] else "stdin" for r in read.records)
    months = collections.Counter(r["contest_date"][:7] for r in read.records)
    return {
        "test_types": dict(kinds),
        "months": dict(sorted(months.items())),
        "tests": sum(len(r["tests"]) for r in read.records),
        "public_tests": sum(r["public"] for r in read.records),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data_dir", required=True)
    ap.add_argument("--benchmarks", default="humaneval_plus,mbpp_plus,livecodebench")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max_problems", type=int, default=0)
    args = ap.parse_args()
    report: dict = {}
    for name in bm.select("", args.benchmarks):
        t = time.perf_counter()
        read = bm.load_file(name, args.data_dir)
        fig = {
            "file": read.path.name,
            "sha256": read.sha256,
            "records": len(read.records),
            "skipped": len(read.skipped),
            "skipped_lines": list(read.skipped[:20]),
            "load_s": time.perf_counter() - t,
        }
        if bm.BENCHMARKS[name].kind == "evalplus":
            fig.update(evalplus_figures(name, read, args.workers, args.max_problems))
        else:
            fig.update(livecodebench_figures(read))
        report[name] = fig
        print(name, json.dumps(fig)[:2000], flush=True)
    report["workers"] = args.workers
    report["load_avg_1m"] = os.getloadavg()[0]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
