"""The paper suite: canonical solutions score 1.0 and wrong ones 0.0 on every benchmark, model
responses are parsed like training answers, samples give pass@k, hosts grade shares."""

import json

import numpy as np
import pytest

from azr_jax.evals import benchmarks as bm
from azr_jax.evals import code_grading, suite
from tests.evals import publisher_files as pf


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return pf.write_all(tmp_path_factory.mktemp("benchmarks"))


@pytest.fixture(scope="module")
def loaded(data_dir):
    return suite.load_suite(bm.PAPER_SUITE, data_dir)


@pytest.fixture(scope="module")
def benches(loaded):
    return loaded[0]


@pytest.fixture(scope="module")
def pool():
    with code_grading.code_pool(workers=2, test_timeout_s=2.0, memory_mb=512) as p:
        yield p


@pytest.mark.parametrize("which,score", [("CANONICAL", 1.0), ("WRONG", 0.0)])
def test_every_benchmark_scores_canonical_one_and_wrong_zero(benches, pool, tmp_path, which, score):
    path = pf.responses_file(tmp_path / "r.jsonl", getattr(pf, which))
    verdicts = suite.grade(benches, suite.read_responses(path), pool)
    summary = suite.summarize(benches, verdicts)
    for name in bm.PAPER_SUITE:
        assert summary[name] == score, (name, [v for v in verdicts if v["benchmark"] == name])
    for key in ("code_avg", "math_avg", "overall_avg"):
        assert summary[key] == score


def test_summary_says_what_was_read(loaded, data_dir):
    benches, files = loaded
    summary = suite.summarize(benches, [], files=files)
    assert summary["mbpp_plus/n"] == 2 and summary["mbpp_plus/skipped"] == 0
    assert summary["mbpp_plus/file"] == "MbppPlus.jsonl"
    assert summary["mbpp_plus/sha256"] == bm.file_sha256(data_dir / "MbppPlus.jsonl")
    assert summary["mbpp_plus/dropped_tests"] == 0 and summary["mbpp_plus"] == 0.0
    assert files["livecodebench"]["read"] == files["livecodebench"]["kept"] == 2


def respond(answer: str) -> str:
    return f" I thought.</think>\n<answer>{answer}</answer>"


def test_model_responses_are_parsed_like_training_answers(benches, pool):
    code = pf.CANONICAL["mbpp_plus"]["Mbpp/17"]
    prompts = suite.suite_prompts({"mbpp_plus": benches["mbpp_plus"], "aime24": benches["aime24"]})
    assert [(n, i) for n, i, _ in prompts] == [
        ("mbpp_plus", 0),
        ("mbpp_plus", 1),
        ("aime24", 0),
        ("aime24", 1),
    ]
    assert "square_perimeter" in prompts[1][2] and prompts[1][2].endswith("Assistant: <think>")
    assert "\\boxed{}" in prompts[2][2]
    texts = [
        ["no answer tags, def similar_elements(a, b): ..."],
        [respond(f"```python\n{code}\n```")],
        [respond("The value is \\boxed{204}.")],
        [" 7 * 11 = 77, so 77.</think><answer>77</answer>"],  # no \boxed: wrong
    ]
    rows = suite.model_responses(prompts, texts, benches, suite.GREEDY)
    got = suite.grade(benches, rows, pool)
    assert [v["correct"] for v in got] == [False, True, True, False]
    assert got[0]["verdict"].startswith("malformed")
    assert got[3]["verdict"] == "no \\boxed{} answer"


def test_samples_give_pass_at_k(benches, tmp_path):
    rows = []
    for task, answers in (("60", ["204", "1", "204", "2"]), ("61", ["1", "2", "3", "4"])):
        rows += [
            {"benchmark": "aime24", "task_id": task, "solution": f"\\boxed{{{a}}}"} for a in answers
        ]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = suite.read_responses(path)
    assert [r["sample"] for r in read] == [0, 1, 2, 3] * 2
    summary = suite.summarize(
        {"aime24": benches["aime24"]}, suite.grade(benches, read, None), (1, 2, 5)
    )
    # task 60: 2 of 4 right; task 61: none. pass@2 = (1 - C(2,2)/C(4,2)) / 2
    assert summary["aime24/pass@1"] == pytest.approx(0.25)
    assert summary["aime24/pass@2"] == pytest.approx((1 - 1 / 6) / 2)
    assert "aime24/pass@5" not in summary  # only 4 samples
    assert summary["aime24"] == summary["aime24/pass@1"]  # no greedy answers
    assert summary["math_avg"] == summary["overall_avg"] == summary["aime24"]


def test_missing_responses_score_zero_and_unknown_tasks_are_errors(benches, tmp_path):
    path = pf.responses_file(tmp_path / "one.jsonl", {"aime24": {"60": "\\boxed{204}"}})
    one = suite.summarize(
        {"aime24": benches["aime24"]}, suite.grade(benches, suite.read_responses(path), None)
    )
    assert one["aime24"] == 0.5 and one["aime24/n"] == 2
    bad = pf.responses_file(tmp_path / "bad.jsonl", {"aime24": {"999": "\\boxed{1}"}})
    with pytest.raises(ValueError, match="aime24: no task '999' in its file"):
        suite.grade(benches, suite.read_responses(bad), None)
    (tmp_path / "worse.jsonl").write_text('{"benchmark": "aime2024", "task_id": "1"}\n')
    with pytest.raises(ValueError, match="worse.jsonl:1: needs a 'benchmark' field"):
        suite.read_responses(tmp_path / "worse.jsonl")


def test_missing_files_are_reported_together(tmp_path):
    (tmp_path / "aime24.jsonl").write_text('{"problem": "p", "answer": "1"}\n')
    with pytest.raises(FileNotFoundError) as e:
        suite.load_suite(("aime24", "math500", "mbpp_plus"), tmp_path)
    assert "math500.jsonl" in str(e.value) and "MbppPlus.jsonl" in str(e.value)
    assert "aime24.jsonl" not in str(e.value)


def test_hosts_grade_their_shares(benches, pool, tmp_path, monkeypatch):
    """Two simulated hosts: each grades its share; gathered, they equal one host's verdicts."""
    path = pf.responses_file(tmp_path / "r.jsonl", pf.CANONICAL)
    keep = ("mbpp_plus", "livecodebench", "aime24", "math500")
    rows = [r for r in suite.read_responses(path) if r["benchmark"] in keep]
    whole = suite.grade(benches, rows, pool)
    local = {}

    def as_host(process, gather):
        monkeypatch.setattr(
            suite.distributed, "my_share", lambda n: np.array_split(np.arange(n), 2)[process]
        )
        monkeypatch.setattr(suite.distributed, "gather_shares", gather)
        return suite.grade(benches, rows, pool)

    def first_host(mine):  # keeps host 0's verdicts; pads the (ignored) result to full length
        local[0] = list(mine)
        return local[0] + [{}] * (len(rows) - len(mine))

    as_host(0, first_host)
    gathered = as_host(1, lambda mine: local[0] + list(mine))  # what every host gets back
    assert 0 < len(local[0]) < len(rows)
    assert len({v["benchmark"] for v in local[0]}) > 1  # a mix on each host
    assert gathered == whole
