"""Command line: validate or grade a JSONL file of programs in the sandbox.

  python -m azr_jax.executor validate FILE.jsonl [--timeout_s S] [--workers N]
      records {code, input, [output], [id]}; one JSON line per record
      {id, valid, output, error, matches_expected}, then a summary line
      {n, valid, matched, seconds, per_second}.
  python -m azr_jax.executor grade FILE.jsonl --task {deduction,abduction,induction}
      records {code, input, output, answer, [id]}; for induction `input`/`output` may be lists
      (the hidden pairs) and `answer` is a program; one line {id, correct, error} per record,
      then {n, correct, seconds}.

Exits 0 whatever the programs do; a record that cannot be read is reported with its error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator

from azr_jax.executor.grading import grade_abduction_many, grade_deduction, grade_induction_many
from azr_jax.executor.literals import LiteralError, parse_literal, strict_equal
from azr_jax.executor.pool import ExecutorPool
from azr_jax.executor.validation import Proposal, validate_many

_CHUNK = 256


def _records(path: str) -> Iterator[tuple[int, dict | None, str | None]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                yield n, record, None
            except ValueError as e:
                yield n, None, f"unreadable record: {e}"


def _chunks(path: str) -> Iterator[list[tuple[int, dict | None, str | None]]]:
    chunk = []
    for item in _records(path):
        chunk.append(item)
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _text(record: dict, key: str) -> str | None:
    value = record.get(key)
    return value if isinstance(value, str) else None


def validate(path: str, pool: ExecutorPool) -> dict:
    n = valid = matched = 0
    start = time.perf_counter()
    for chunk in _chunks(path):
        proposals, keys = [], []
        for line_no, record, error in chunk:
            rid = record.get("id", line_no) if record else line_no
            code, inp = (_text(record, "code"), _text(record, "input")) if record else (None, None)
            if error or code is None or inp is None:
                n += 1
                _emit(
                    {
                        "id": rid,
                        "valid": False,
                        "output": None,
                        "error": error or "record needs string fields code and input",
                        "matches_expected": None,
                    }
                )
                continue
            proposals.append(Proposal(code, [inp]))
            keys.append((rid, record))
        for (rid, record), verdict in zip(keys, validate_many(pool, proposals), strict=True):
            n += 1
            output = verdict.outputs[0] if verdict.valid else None
            expected = record.get("output")
            match = None
            if expected is not None:
                match = output is not None and _same(output, expected)
                matched += bool(match)
            valid += verdict.valid
            _emit(
                {
                    "id": rid,
                    "valid": verdict.valid,
                    "output": output,
                    "error": verdict.reason,
                    "matches_expected": match,
                }
            )
    seconds = time.perf_counter() - start
    return {
        "n": n,
        "valid": valid,
        "matched": matched,
        "seconds": round(seconds, 3),
        "per_second": round(n / seconds, 1) if seconds else None,
    }


def _same(output: str, expected: object) -> bool:
    if not isinstance(expected, str):
        return False
    try:
        return strict_equal(parse_literal(output), parse_literal(expected))
    except LiteralError:
        return False


def grade(path: str, pool: ExecutorPool, task: str) -> dict:
    n = correct = 0
    start = time.perf_counter()
    for chunk in _chunks(path):
        items, keys = [], []
        for line_no, record, error in chunk:
            rid = record.get("id", line_no) if record else line_no
            fields = _grade_fields(record, task) if record else None
            if error or fields is None:
                n += 1
                _emit(
                    {
                        "id": rid,
                        "correct": False,
                        "error": error or f"record lacks the fields of a {task} record",
                    }
                )
                continue
            items.append(fields)
            keys.append(rid)
        if task == "deduction":
            verdicts = [grade_deduction(answer, out) for answer, out in items]
        elif task == "abduction":
            verdicts = grade_abduction_many(pool, items)
        else:
            verdicts = grade_induction_many(pool, items)
        for rid, ok in zip(keys, verdicts, strict=True):
            n += 1
            correct += ok
            _emit({"id": rid, "correct": ok, "error": None})
    seconds = time.perf_counter() - start
    return {"n": n, "correct": correct, "seconds": round(seconds, 3)}


def _grade_fields(record: dict, task: str) -> tuple | None:
    code, answer = _text(record, "code"), _text(record, "answer")
    inp, out = record.get("input"), record.get("output")
    if answer is None:
        return None
    if task == "deduction":
        return (answer, out) if isinstance(out, str) else None
    if task == "abduction":
        return (code, answer, out) if code is not None and isinstance(out, str) else None
    if isinstance(inp, str) and isinstance(out, str):
        inp, out = [inp], [out]
    if not (isinstance(inp, list) and isinstance(out, list) and len(inp) == len(out)):
        return None
    if not all(isinstance(x, str) for x in inp + out):
        return None
    return answer, list(zip(inp, out, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m azr_jax.executor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("validate", "grade"):
        p = sub.add_parser(name)
        p.add_argument("file")
        p.add_argument("--timeout_s", type=float, default=10.0)
        p.add_argument("--workers", type=int, default=2)
        if name == "grade":
            p.add_argument("--task", required=True, choices=("deduction", "abduction", "induction"))
    args = parser.parse_args(argv)
    with ExecutorPool(workers=max(2, args.workers), timeout_s=args.timeout_s) as pool:
        if args.command == "validate":
            summary = validate(args.file, pool)
        else:
            summary = grade(args.file, pool, args.task)
    _emit(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
