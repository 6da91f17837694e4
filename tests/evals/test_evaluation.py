"""Evaluation: oracle answers score 1, wrong and malformed ones 0; HumanEval runs sandboxed."""

import os

import pytest

from azr_jax.evals import evaluation
from azr_jax.executor.pool import ExecutorPool
from tests.executor.data import cruxeval_path

N_CRUX = 40


def respond(answer: str) -> str:
    """A response in the training answer format (the prompt already opened <think>)."""
    return f" I traced it.</think>\n<answer>{answer}</answer>"


def program_block(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest.fixture(scope="module")
def pool():
    with evaluation.evaluation_pool(workers=2, timeout_s=2.0, memory_mb=512) as p:
        yield p


@pytest.fixture(scope="module")
def records():
    path = cruxeval_path()
    if not os.path.exists(path):
        pytest.skip(f"CRUXEval dev file not found at {path} (set AZR_CRUXEVAL_PATH)")
    return evaluation.load_cruxeval(path, max_records=N_CRUX)


@pytest.fixture(scope="module")
def problems():
    return evaluation.load_humaneval()


def oracle(records, problems):
    """generate_fn answering every benchmark prompt with its gold answer."""
    gold = {}
    for task, field in (("o", "output"), ("i", "input")):
        for prompt, r in zip(evaluation.cruxeval_prompts(records, task), records, strict=True):
            gold[prompt] = respond(r[field])
    for prompt, p in zip(evaluation.humaneval_prompts(problems), problems, strict=True):
        gold[prompt] = respond(program_block(p["prompt"] + p["canonical_solution"]))
    return lambda batch: [gold[p] for p in batch]


def test_load_cruxeval(records):
    assert len(records) == N_CRUX
    assert set(records[0]) == {"code", "input", "output", "id"}
    assert records[0]["id"] == "sample_0"


def test_missing_or_malformed_cruxeval_path(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="--config.eval.cruxeval_path") as e:
        evaluation.load_cruxeval(missing)
    assert str(missing) in str(e.value)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"code": "def f(x): return x", "input": "1", "output": "1", "id": "a"}\n{oops\n'
    )
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON.*--config.eval.cruxeval_path"):
        evaluation.load_cruxeval(bad)
    bad.write_text('{"code": "def f(x): return x", "input": 1, "output": "1"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: .*\['input', 'id'\]"):
        evaluation.load_cruxeval(bad)
    bad.write_text("\n")
    with pytest.raises(ValueError, match="no records"):
        evaluation.load_cruxeval(bad)


def test_evaluate_oracle(pool, records, problems):
    summary, per_sample = evaluation.evaluate(
        oracle(records, problems[:10]),
        pool,
        cruxeval_records=records,
        humaneval=True,
        max_humaneval=10,
    )
    assert summary == {
        "n": N_CRUX,
        "cruxeval_o": 1.0,
        "cruxeval_i": 1.0,
        "humaneval": 1.0,
        "humaneval_n": 10,
    }
    assert len(per_sample) == 2 * N_CRUX + 10
    assert {s["task"] for s in per_sample} == {"cruxeval_o", "cruxeval_i", "humaneval"}
    first = per_sample[0]
    assert first["id"] == "sample_0" and first["answer"] == records[0]["output"]
    assert first["verdict"] == "correct"


def test_wrong_and_garbage_score_zero(pool, records):
    wrong = {}
    for prompt, r in zip(evaluation.cruxeval_prompts(records, "o"), records, strict=True):
        wrong[prompt] = respond(f"('not', {r['output']})")
    for prompt, r in zip(evaluation.cruxeval_prompts(records, "i"), records, strict=True):
        wrong[prompt] = respond(r["input"] + ", 'extra', 'args'")
    summary, per_sample = evaluation.evaluate(
        lambda batch: [wrong[p] for p in batch], pool, cruxeval_records=records, humaneval=False
    )
    assert summary == {"n": N_CRUX, "cruxeval_o": 0.0, "cruxeval_i": 0.0}
    assert {s["verdict"] for s in per_sample} == {"wrong"}

    garbage = ["", "the answer is 42", respond("1") + " and more", "<answer>1</answer>"]
    summary, per_sample = evaluation.evaluate(
        lambda batch: [garbage[k % len(garbage)] for k in range(len(batch))],
        pool,
        cruxeval_records=records,
        humaneval=False,
    )
    assert summary["cruxeval_o"] == summary["cruxeval_i"] == 0.0
    assert all(s["verdict"].startswith("malformed: ") for s in per_sample)
    assert all(s["answer"] is None for s in per_sample)


def test_generate_fn_must_answer_every_prompt(pool, records):
    with pytest.raises(ValueError, match="responses for"):
        evaluation.evaluate(lambda b: b[1:], pool, cruxeval_records=records, humaneval=False)


def test_cruxeval_equality_rule(pool):
    # CRUXEval's rule is ==, so 1.0 and True answer 1; training would call both wrong.
    record = {"code": "def f(x):\n    return x + 1", "input": "0", "output": "1", "id": "t"}
    answers = ["1", "1.0", "True", "2", "f(0)", "(lambda: 1)()", "[1]"]
    scored = evaluation.score_cruxeval_responses(
        pool, [record] * len(answers), [respond(a) for a in answers], "o"
    )
    assert [s["correct"] for s in scored] == [True, True, True, False, False, True, False]
    assert scored[4]["verdict"] == "answer calls f"

    double = {"code": "def f(x):\n    return x * 2", "input": "1", "output": "2", "id": "u"}
    answers = ["1", "1.0", "True", "2", "x=1", "nonsense("]
    scored = evaluation.score_cruxeval_responses(
        pool, [double] * len(answers), [respond(a) for a in answers], "i"
    )
    assert [s["correct"] for s in scored] == [True, True, True, False, True, False]
    # An empty CRUXEval-I answer is the empty argument list (some f take no arguments).
    const = {"code": "def f():\n    return 3", "input": "", "output": "3", "id": "v"}
    scored = evaluation.score_cruxeval_responses(pool, [const] * 2, [respond(""), "</think>"], "i")
    assert [s["correct"] for s in scored] == [True, False]
    assert scored[1]["verdict"].startswith("malformed")
    empty_o = evaluation.score_cruxeval_responses(pool, [const], [respond("")], "o")
    assert empty_o[0]["verdict"] == "malformed: empty answer"
    with pytest.raises(ValueError, match="'o'"):
        evaluation.score_cruxeval_responses(pool, [record], [respond("1")], "output")


def test_humaneval_canonical_solutions_pass(pool, problems):
    assert len(problems) == 164
    responses = [respond(program_block(p["prompt"] + p["canonical_solution"])) for p in problems]
    scored = evaluation.score_humaneval_responses(pool, problems, responses)
    assert [s["id"] for s in scored if not s["correct"]] == []


def test_humaneval_wrong_and_malformed_fail(pool, problems):
    p = problems[0]
    entry = p["entry_point"]
    answers = [
        respond(program_block(f"def {entry}(*args):\n    return None")),
        respond(program_block(f"def {entry}(numbers, threshold):\n    return True")),
        respond(program_block("def other(numbers, threshold):\n    return False")),
        respond(program_block(f"def {entry}(numbers, threshold)\n    return True")),
        respond(f"def {entry}(numbers, threshold):\n    return False"),  # no block
        f"<answer>{program_block(p['prompt'] + p['canonical_solution'])}</answer>",
    ]
    scored = evaluation.score_humaneval_responses(pool, [p] * len(answers), answers)
    assert not any(s["correct"] for s in scored)
    verdicts = [s["verdict"] for s in scored]
    assert verdicts[0].startswith("error: AssertionError")
    assert verdicts[3].startswith("syntax error")
    assert verdicts[4].startswith("malformed: ") and verdicts[5].startswith("malformed: ")


def test_humaneval_hostile_answers_fail_harmlessly(pool, problems, tmp_path):
    p = problems[0]
    entry = p["entry_point"]
    marker = tmp_path / "pwned"
    bodies = [
        "while True:\n        pass",
        f"import os\n    os.system('touch {marker}')\n    return True",
        f"open({str(marker)!r}, 'w').write('x')\n    return True",
        f"__builtins__['open']({str(marker)!r}, 'w')\n    return True",
        "import subprocess\n    subprocess.run(['true'])\n    return True",
        "[0] * (1 << 40)",
    ]
    answers = [
        respond(program_block(f"def {entry}(numbers, threshold):\n    {body}")) for body in bodies
    ]
    scored = evaluation.score_humaneval_responses(pool, [p] * len(answers), answers)
    assert not any(s["correct"] for s in scored), [s["verdict"] for s in scored]
    assert scored[0]["verdict"].startswith("timeout")
    assert "module os is banned" in scored[1]["verdict"]
    assert not marker.exists()
    assert os.listdir(tmp_path) == []
    # The pool still works.
    good = respond(program_block(p["prompt"] + p["canonical_solution"]))
    assert evaluation.score_humaneval_responses(pool, [p], [good])[0]["correct"]


def test_humaneval_refuses_a_training_pool(problems):
    with ExecutorPool(workers=1, timeout_s=1.0) as training_pool:
        with pytest.raises(ValueError, match="evaluation_pool"):
            evaluation.score_humaneval_responses(training_pool, problems[:1], ["x"])


def test_humaneval_prompt_format(problems):
    prompt = evaluation.humaneval_prompts(problems[:1])[0]
    assert prompt.endswith("Assistant: <think>")
    assert problems[0]["prompt"].strip() in prompt
    assert "def has_close_elements(...):" in prompt
    assert evaluation.load_humaneval(max_records=3)[2]["task_id"] == "HumanEval/2"


def test_oracle_on_every_cruxeval_record(pool, records):
    # All 500: includes expression inputs and sample_135, whose f takes no arguments.
    every = evaluation.load_cruxeval(cruxeval_path())
    summary, _ = evaluation.evaluate(
        oracle(every, []), pool, cruxeval_records=every, humaneval=False
    )
    assert summary == {"n": len(every), "cruxeval_o": 1.0, "cruxeval_i": 1.0}
