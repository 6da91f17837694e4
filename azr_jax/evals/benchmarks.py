"""The paper's evaluation sets: one documented file per benchmark, read in its publisher's format.

Every file lives in one directory (`--config.eval.data_dir`), under the name below; `.jsonl.gz`
is accepted for any `.jsonl`. Nothing is downloaded: a missing file is an error naming the file
and where its publisher releases it.

| benchmark | file | publisher's format |
|---|---|---|
| `humaneval_plus` | `HumanEvalPlus.jsonl` | EvalPlus release `HumanEvalPlus-v0.1.10.jsonl.gz`: `task_id`, `prompt`, `entry_point`, `canonical_solution`, `base_input`, `plus_input`, `atol` |
| `mbpp_plus` | `MbppPlus.jsonl` | EvalPlus release `MbppPlus-v0.2.0.jsonl.gz`: the same fields (`prompt` is a docstring) |
| `livecodebench` | `livecodebench.jsonl` | `livecodebench/code_generation_lite` (`test*.jsonl`, concatenated): `question_id`, `question_content`, `starter_code`, `public_test_cases`, `private_test_cases`, `metadata`, `contest_date` |
| `aime24` | `aime24.jsonl` | e.g. `HuggingFaceH4/aime_2024`: `problem`, `answer` |
| `aime25` | `aime25.jsonl` | e.g. `opencompass/AIME2025`: `question`, `answer` |
| `amc23` | `amc23.jsonl` | e.g. `zwhe99/amc23` / `AI-MO/aimo-validation-amc`: `question`/`problem`, `answer` |
| `math500` | `math500.jsonl` | `HuggingFaceH4/MATH-500` `test.jsonl`: `problem`, `answer` |
| `minerva` | `minerva.jsonl` | e.g. `math-ai/minervamath`: `question`, `answer` (or a `solution` with `\\boxed{}`) |
| `olympiadbench` | `olympiadbench.jsonl` | e.g. `Hothan/OlympiadBench` (OE_TO_maths_en_COMP): `question`, `final_answer` (a list) |

Math records: the problem is the first of `problem`, `question`, `Problem`, `Question`; the
answer the first of `answer`, `Answer`, `final_answer`, `expected_answer` (a list keeps its
first element, a number becomes text, `$...$` is unwrapped), else the last `\\boxed{}` of
`solution` (the Qwen2.5-Math copies of MATH and Minerva). The same directories of the
Qwen2.5-Math / SimpleRL-Zoo evaluation harness (the AZR authors' math evaluation) work once
each `*/test.jsonl` is copied to the name above.

Every record is read on its own: one that cannot be read (not JSON, a missing field, a test
list of the wrong shape) is skipped with a warning naming the file and line, and counted
(`BenchmarkFile.skipped`, the summary's `<bench>/skipped`); it never takes the rest of the file
down. A record in an odd but readable shape is read as its publisher's harness reads it:
EvalPlus iterates `base_input`/`plus_input`, so an empty object or null there (MBPP+ v0.2.0's
`Mbpp/793` has `"plus_input": {}`) is no inputs. Each file's SHA-256 (of its bytes as stored,
`.gz` or not) is kept, so two reports can tell whether they graded the same file.

MBPP+ inputs: JSON has no tuples or sets; they are restored per task as EvalPlus restores them
(`mbpp_inputs.py`, no `evalplus` package needed).

LiveCodeBench's `private_test_cases` is plain JSON or base64(zlib(pickle(JSON text))). Its
pickle is decoded here by an unpickler that refuses every global (`find_class` raises), so only
builtin str/bytes/list/dict/tuple/number values can come out, and it must be a str; zlib output
is capped. No pickled object can run code in this process.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import pickle
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azr_jax.evals import mbpp_inputs
from azr_jax.evals.math_grading import last_boxed

log = logging.getLogger(__name__)

CODE_BENCHMARKS = ("humaneval_plus", "mbpp_plus", "livecodebench")
MATH_BENCHMARKS = ("aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench")
PAPER_SUITE = CODE_BENCHMARKS + MATH_BENCHMARKS


@dataclass(frozen=True)
class Benchmark:
    """Where a benchmark's file is and how it is read."""

    name: str
    file: str  # the documented file name inside eval.data_dir
    kind: str  # "evalplus", "livecodebench" or "math"
    title: str  # the column header of the paper's Table 1
    source: str  # where the publisher releases it


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "humaneval_plus",
            "HumanEvalPlus.jsonl",
            "evalplus",
            "HEval+",
            "https://github.com/evalplus/humanevalplus_release/releases "
            "(HumanEvalPlus-v0.1.10.jsonl.gz)",
        ),
        Benchmark(
            "mbpp_plus",
            "MbppPlus.jsonl",
            "evalplus",
            "MBPP+",
            "https://github.com/evalplus/mbppplus_release/releases (MbppPlus-v0.2.0.jsonl.gz)",
        ),
        Benchmark(
            "livecodebench",
            "livecodebench.jsonl",
            "livecodebench",
            "LCB",
            "https://huggingface.co/datasets/livecodebench/code_generation_lite "
            "(test*.jsonl, concatenated)",
        ),
        Benchmark(
            "aime24",
            "aime24.jsonl",
            "math",
            "AIME24",
            "https://huggingface.co/datasets/HuggingFaceH4/aime_2024",
        ),
        Benchmark(
            "aime25",
            "aime25.jsonl",
            "math",
            "AIME25",
            "https://huggingface.co/datasets/opencompass/AIME2025",
        ),
        Benchmark(
            "amc23", "amc23.jsonl", "math", "AMC23", "https://huggingface.co/datasets/zwhe99/amc23"
        ),
        Benchmark(
            "math500",
            "math500.jsonl",
            "math",
            "MATH500",
            "https://huggingface.co/datasets/HuggingFaceH4/MATH-500 (test.jsonl)",
        ),
        Benchmark(
            "minerva",
            "minerva.jsonl",
            "math",
            "Minerva",
            "https://huggingface.co/datasets/math-ai/minervamath",
        ),
        Benchmark(
            "olympiadbench",
            "olympiadbench.jsonl",
            "math",
            "Olympiad",
            "https://huggingface.co/datasets/Hothan/OlympiadBench (OE_TO_maths_en_COMP)",
        ),
    )
}

EVALPLUS_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input")
LCB_FIELDS = ("question_id", "question_content", "public_test_cases")
MATH_PROBLEM_FIELDS = ("problem", "question", "Problem", "Question")
MATH_ANSWER_FIELDS = ("answer", "Answer", "final_answer", "expected_answer")
_MAX_INFLATED = 1 << 30  # bytes a compressed LiveCodeBench test field may inflate to


def select(suite: str, names: str) -> tuple[str, ...]:
    """The benchmarks asked for: `suite="paper"` (all nine) or a comma-separated list.

    Raises:
      ValueError: an unknown suite or benchmark name (the message lists the known ones).
    """
    if suite not in ("", "paper"):
        raise ValueError(
            f"eval.suite={suite!r}: the only suite is 'paper' (or '' with eval.benchmarks)"
        )
    if suite == "paper":
        return PAPER_SUITE
    chosen = tuple(n.strip() for n in names.split(",") if n.strip())
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        raise ValueError(
            f"eval.benchmarks: unknown benchmark(s) {unknown}; choose from {list(PAPER_SUITE)}"
        )
    return tuple(dict.fromkeys(chosen))


def benchmark_path(name: str, data_dir: str | Path) -> Path:
    """The benchmark's file in `data_dir` (`.jsonl` or `.jsonl.gz`).

    Raises:
      FileNotFoundError: neither exists; the message names the file and its publisher.
    """
    b = BENCHMARKS[name]
    data_dir = Path(data_dir)
    for candidate in (data_dir / b.file, data_dir / (b.file + ".gz")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{name}: {b.file} not found in --config.eval.data_dir={str(data_dir)!r} "
        f"(resolved: {data_dir.resolve()}). Download it from {b.source} and save it as "
        f"{data_dir / b.file} (.jsonl or .jsonl.gz); see azr_jax/evals/benchmarks.py for the "
        "file names"
    )


@dataclass(frozen=True)
class BenchmarkFile:
    """One benchmark file as read: its records and what was left out."""

    name: str
    path: Path
    sha256: str  # of the file's bytes as stored
    records: list[dict[str, Any]]  # normalised, see `load`
    skipped: tuple[str, ...]  # "file:line: why" per unreadable record


def load(name: str, data_dir: str | Path, max_records: int = 0) -> list[dict[str, Any]]:
    """A benchmark's records (`load_file(...).records`)."""
    return load_file(name, data_dir, max_records).records


def load_file(name: str, data_dir: str | Path, max_records: int = 0) -> BenchmarkFile:
    """Reads a benchmark's file, record by record, normalised for grading (one dict per problem).

    - evalplus: `id`, `prompt`, `entry_point`, `canonical_solution`, `base_input`,
      `plus_input` (lists of argument lists; MBPP+'s restored as EvalPlus does), `atol` (float).
    - livecodebench: `id`, `question`, `starter_code`, `func_name` (None for stdin problems),
      `tests` (public then private: dicts with `input`, `output`, `testtype`), `public`
      (how many of them are public), `contest_date`.
    - math: `id`, `problem`, `answer` (text).

    An unreadable record is skipped (logged with its file and line, listed in `skipped`).

    Args:
      max_records: stop after this many records read (0: all).

    Raises:
      FileNotFoundError: the file is missing (see `benchmark_path`).
      ValueError: no record of the file could be read (the message shows the first reasons).
    """
    if max_records < 0:
        raise ValueError(f"max_records must be >= 0, got {max_records}")
    b = BENCHMARKS[name]
    path = benchmark_path(name, data_dir)
    parse = {"evalplus": _evalplus, "livecodebench": _livecodebench, "math": _math}[b.kind]
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    for where, raw in _lines(path):
        try:
            if isinstance(raw, str):
                raise ValueError(raw)
            record = parse(raw, len(records))
            if name == "mbpp_plus":
                for key in ("base_input", "plus_input"):
                    record[key] = mbpp_inputs.restore(record["id"], record[key])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            skipped.append(f"{where}: {type(e).__name__}: {e}"[:300])
            log.warning("%s: skipped, not a %s record (%s)", where, name, e)
            continue
        records.append(record)
        if len(records) == max_records:
            break
    if not records:
        why = "; ".join(skipped[:3]) or "the file is empty"
        raise ValueError(
            f"{path} holds no readable record ({why}); expected the format of {b.source}"
        )
    return BenchmarkFile(name, path, file_sha256(path), records, tuple(skipped))


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _lines(path: Path) -> Iterator[tuple[str, dict | str]]:
    """(`file:line`, the line's JSON object, or why it is not one) for each non-blank line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                yield f"{path}:{lineno}", f"not JSON ({e.msg})"
                continue
            yield f"{path}:{lineno}", raw if isinstance(raw, dict) else "not a JSON object"


def _require(raw: dict, fields: tuple[str, ...]) -> None:
    missing = [k for k in fields if k not in raw]
    if missing:
        raise KeyError(f"missing field(s) {missing}")


def _evalplus(raw: dict, index: int) -> dict[str, Any]:
    _require(raw, EVALPLUS_FIELDS)
    inputs = {}
    for key in ("base_input", "plus_input"):
        value = raw.get(key)
        # EvalPlus iterates the field: an empty object (MBPP+ v0.2.0's Mbpp/793) is no inputs.
        value = [] if value in (None, {}) else value
        if not isinstance(value, list) or not all(isinstance(x, list) for x in value):
            raise TypeError(f"{key} must be a list of argument lists")
        inputs[key] = value
    return {
        "id": str(raw["task_id"]),
        "prompt": str(raw["prompt"]),
        "entry_point": str(raw["entry_point"]),
        "canonical_solution": str(raw["canonical_solution"]),
        "base_input": inputs["base_input"],
        "plus_input": inputs["plus_input"],
        "atol": float(raw.get("atol") or 0.0),
    }


def _livecodebench(raw: dict, index: int) -> dict[str, Any]:
    _require(raw, LCB_FIELDS)
    public = _tests(raw["public_test_cases"])
    private = _tests(raw.get("private_test_cases") or "[]")
    metadata = raw.get("metadata") or "{}"
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    func_name = metadata.get("func_name") or None
    tests = public + private
    if not tests:
        raise ValueError("no test cases")
    kinds = {t["testtype"] for t in tests}
    if kinds - {"functional", "stdin"} or len(kinds) != 1:
        raise ValueError(f"test types {sorted(kinds)}: expected all 'functional' or all 'stdin'")
    if "functional" in kinds:
        if not func_name:
            raise ValueError("functional tests but no metadata.func_name")
        for t, test in enumerate(tests):
            try:  # one JSON value per input line, one for the output (as LiveCodeBench reads)
                [json.loads(line) for line in test["input"].split("\n")]
                json.loads(test["output"])
            except json.JSONDecodeError as e:
                raise ValueError(f"functional test {t} is not JSON lines ({e.msg})") from None
    return {
        "id": str(raw["question_id"]),
        "question": str(raw["question_content"]),
        "starter_code": str(raw.get("starter_code") or ""),
        "func_name": func_name if "functional" in kinds else None,
        "tests": tests,
        "public": len(public),
        "contest_date": str(raw.get("contest_date") or ""),
    }


def _tests(field: Any) -> list[dict[str, str]]:
    if isinstance(field, str):
        try:
            field = json.loads(field)
        except json.JSONDecodeError:
            field = json.loads(decode_compressed_tests(field))
    if not isinstance(field, list):
        raise TypeError("test cases must be a list")
    out = []
    for t in field:
        if not isinstance(t, dict) or not all(
            isinstance(t.get(k), str) for k in ("input", "output", "testtype")
        ):
            raise TypeError("a test case needs string fields input, output and testtype")
        out.append({k: t[k] for k in ("input", "output", "testtype")})
    return out


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Builds builtin values only: any class, function or module reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing {module}.{name}: LiveCodeBench test fields are pickled text only"
        )


def decode_compressed_tests(text: str) -> str:
    """LiveCodeBench's base64(zlib(pickle(JSON text))) test field, decoded without trust.

    Raises:
      ValueError: not base64/zlib, inflates beyond 1 GiB, or the pickle holds anything but
        one str (any global reference is refused before it is looked up).
    """
    try:
        packed = base64.b64decode(text.encode("ascii"), validate=False)
        inflater = zlib.decompressobj()
        data = inflater.decompress(packed, _MAX_INFLATED)
        if inflater.unconsumed_tail:
            raise ValueError("the test field inflates beyond 1 GiB")
    except (UnicodeEncodeError, ValueError, zlib.error) as e:
        raise ValueError(f"private_test_cases is neither JSON nor base64+zlib ({e})") from None
    try:
        value = _NoGlobalsUnpickler(io.BytesIO(data)).load()
    except Exception as e:
        raise ValueError(f"private_test_cases: unsafe or broken pickle ({e})") from None
    if not isinstance(value, str) or type(value) is not str:
        raise ValueError(f"private_test_cases: the pickle holds {type(value).__name__}, not text")
    return value


def _math(raw: dict, index: int) -> dict[str, Any]:
    problem = next((raw[k] for k in MATH_PROBLEM_FIELDS if isinstance(raw.get(k), str)), None)
    if problem is None:
        raise KeyError(f"no problem field (one of {list(MATH_PROBLEM_FIELDS)})")
    answer = next((raw[k] for k in MATH_ANSWER_FIELDS if raw.get(k) not in (None, "", [])), None)
    if answer is None and isinstance(raw.get("solution"), str):
        answer = last_boxed(raw["solution"])
    if answer is None:
        raise KeyError(f"no answer field (one of {list(MATH_ANSWER_FIELDS)}, or a boxed solution)")
    if isinstance(answer, list):
        answer = answer[0]
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    answer = str(answer).strip()
    if len(answer) > 1 and answer.startswith("$") and answer.endswith("$"):
        answer = answer.strip("$").strip()
    ident = next((raw[k] for k in ("id", "ID", "unique_id", "idx") if k in raw), index)
    return {"id": str(ident), "problem": problem, "answer": answer}


def within_dates(records: list[dict[str, Any]], window: str) -> list[dict[str, Any]]:
    """LiveCodeBench records whose `contest_date` lies in `window` ("YYYY-MM-DD,YYYY-MM-DD",
    either end may be empty; "" keeps all), by LiveCodeBench's own rule
    (`load_code_generation_dataset`'s `start_date`/`end_date`): `start <= contest_date <= end`,
    each end read as that day's midnight, so a contest on the end day itself is kept only when
    it is dated at 00:00 (as the release dates its problems).

    Raises:
      ValueError: a malformed window, or a record without a date when a window is set.
    """
    if not window.strip():
        return list(records)
    parts = [p.strip() for p in window.split(",")]
    if len(parts) != 2 or not all(p == "" or (len(p) == 10 and p[4] == p[7] == "-") for p in parts):
        raise ValueError(
            f"eval.livecodebench_dates={window!r}: expected 'YYYY-MM-DD,YYYY-MM-DD' "
            "(either end may be empty)"
        )
    since, until = (p + "T00:00:00" if p else "" for p in parts)
    out = []
    for r in records:
        day = r["contest_date"]
        if not day:
            raise ValueError(f"livecodebench {r['id']}: no contest_date to filter by")
        moment = (day[:10] + "T" + day[11:19]) if len(day) >= 19 else day[:10] + "T00:00:00"
        if (not since or moment >= since) and (not until or moment <= until):
            out.append(r)
    return out
