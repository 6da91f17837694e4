"""Math grading: the last `\\boxed{}` of a response, compared with the gold answer by math-verify.

The answer is the contents of the last `\\boxed{...}` (braces balanced) anywhere in the
response, as the AZR authors' math evaluation reads it; a response with none scores 0. Gold
and answer are both parsed by `math_verify.parse` (LaTeX, then plain expressions) and compared
by `math_verify.verify` (gold first): `\\frac{1}{2}` = `0.5` = `\\dfrac12`, spacing is free,
`2\\sqrt{3}` = `\\sqrt{12}`, and so on.

Never in this process. math-verify parses with SymPy (`parse_expr` evaluates the restricted
text it extracts; an exponent tower such as `9^9^9^9` can take all memory or hang), and its
time limits use `signal.alarm`, which works only in a main thread (in any other thread it
raises `ValueError` unless `parsing_timeout=None`, which turns the limit off). So grading runs
in a child interpreter (`python -c _WORKER`): its main thread, an address-space limit, the
limits of math-verify on every parse and verify, and a watchdog here that kills the child when
one answer takes longer than `3 * timeout_s + 10` seconds (that answer is then wrong, a fresh
child takes the rest). The child gets only JSON lines of text on stdin; it runs no model code.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence

# The child: reads {"gold", "answer"} lines, writes {"ok", "error"} lines, one per input.
_WORKER = r"""
import json, resource, sys
mb = int(sys.argv[2])
if mb > 0:
    resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
timeout = int(sys.argv[1])
configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    item = json.loads(line)
    try:
        gold = parse("$" + item["gold"] + "$", configs, parsing_timeout=timeout)
        answer = parse("$" + item["answer"] + "$", configs, parsing_timeout=timeout)
        if not gold:
            out = {"ok": False, "error": "gold answer does not parse"}
        elif not answer:
            out = {"ok": False, "error": "answer does not parse"}
        else:
            out = {"ok": bool(verify(gold, answer, timeout_seconds=timeout))}
    except BaseException as e:  # MemoryError, RecursionError, timeouts: a wrong answer
        out = {"ok": False, "error": type(e).__name__ + ": " + str(e)[:100]}
    print(json.dumps(out), flush=True)
"""


def last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces balanced;
    None when there is none or its braces never close."""
    best = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if best < 0:
        return None
    i = best + (len("\\boxed") if text.startswith("\\boxed", best) else len("\\fbox"))
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text) or text[i] != "{":
        rest = text[i:].split("$")[0].split()  # `\boxed 5`: the next token, as MATH reads it
        return rest[0] if rest else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def verify_answers(
    golds: Sequence[str],
    answers: Sequence[str],
    timeout_s: int = 5,
    memory_mb: int = 4096,
    python: str = sys.executable,
) -> list[dict]:
    """math-verify's verdict on each (gold, answer) pair, computed in a child process.

    Returns:
      One dict per pair: `ok` (bool) and, when not ok for a reason other than a different
      value, `error` (e.g. "answer does not parse", "timeout").
    """
    if len(golds) != len(answers):
        raise ValueError(f"{len(golds)} gold answers but {len(answers)} answers")
    items = [
        json.dumps({"gold": g, "answer": a}) + "\n" for g, a in zip(golds, answers, strict=True)
    ]
    results: list[dict] = []
    limit = _watchdog_s(timeout_s)
    while len(results) < len(items):
        results += _run_worker(items[len(results) :], timeout_s, memory_mb, python, limit)
    return results


def _watchdog_s(timeout_s: int) -> float:
    """How long one answer may take before its child is killed: a parse of gold and answer
    and a comparison, each within math-verify's own limit, plus start-up slack."""
    return 3 * timeout_s + 10.0


def _run_worker(
    items: list[str], timeout_s: int, memory_mb: int, python: str, limit: float
) -> list[dict]:
    """Grades items in one child until they are done or one hangs (that one comes back as a
    timeout); returns the verdicts it got, in order."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    proc = subprocess.Popen(
        [python, "-c", _WORKER, str(int(timeout_s)), str(int(memory_mb))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out: list[dict] = []
    sel = selectors.DefaultSelector()
    try:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = _read_line(proc, sel, 120.0)
        if ready is None:
            err = proc.stderr.read() if proc.poll() is not None else ""
            raise RuntimeError(
                "the math-verify worker did not start; is math-verify installed "
                f"(pip install 'math-verify>=0.9')? {err[-500:]}"
            )
        for item in items:
            proc.stdin.write(item)
            proc.stdin.flush()
            line = _read_line(proc, sel, limit)
            if line is None:
                out.append({"ok": False, "error": f"timeout: no verdict within {limit:g} s"})
                return out
            out.append(json.loads(line))
        return out
    finally:
        sel.close()
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


def _read_line(proc: subprocess.Popen, sel: selectors.BaseSelector, limit: float) -> str | None:
    deadline = time.monotonic() + limit
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            return None
        line = proc.stdout.readline()
        if not line:
            return None  # the child died (out of memory, killed)
        return line
