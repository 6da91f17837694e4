"""Benchmark files: publisher formats load (the real release excerpts of `fixtures/` too),
record by record (an unreadable record is skipped and named, never the whole file), a missing
file names itself and its source, and LiveCodeBench's pickled tests are decoded without trusting
the pickle."""

import base64
import hashlib
import json
import pickle
import shutil
import zlib
from pathlib import Path

import pytest

from azr_jax.evals import benchmarks as bm
from tests.evals import publisher_files as pf

FIXTURES = Path(__file__).parent / "fixtures"
MBPP_EXCERPT = FIXTURES / "MbppPlus-v0.2.0.excerpt.jsonl"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return pf.write_all(tmp_path_factory.mktemp("benchmarks"))


def test_every_paper_benchmark_loads(data_dir):
    loaded = {name: bm.load(name, data_dir) for name in bm.PAPER_SUITE}
    assert [r["id"] for r in loaded["humaneval_plus"]] == [
        "HumanEval/0",
        "HumanEval/4",
        "HumanEval/32",
    ]
    he = loaded["humaneval_plus"][2]
    assert he["entry_point"] == "find_zero" and he["atol"] == 1e-6
    assert len(he["base_input"]) == 2 and len(he["plus_input"]) == 1
    lcb = {r["id"]: r for r in loaded["livecodebench"]}
    # public then private; the private field of problem 1 is base64(zlib(pickle(JSON)))
    assert lcb["1"]["func_name"] == "twoSum" and lcb["1"]["public"] == 2
    assert [t["input"] for t in lcb["1"]["tests"]][2:] == ["[3,3]\n6", "[1,5,9,2]\n11"]
    assert lcb["abc000_a"]["func_name"] is None and len(lcb["abc000_a"]["tests"]) == 3
    answers = {name: [r["answer"] for r in loaded[name]] for name in bm.MATH_BENCHMARKS}
    assert answers == {
        "aime24": ["204", "77"],
        "aime25": ["21", "27"],
        "amc23": ["13.5", "36"],  # floats from the AMC release become text (36.0 -> 36)
        "math500": ["\\frac{1}{2}", "2\\sqrt{3}"],
        "minerva": ["0.25", "-1"],  # from the boxed solution
        "olympiadbench": ["\\frac{3}{2}", "\\frac{\\pi}{2}"],  # list, $...$ unwrapped
    }
    assert [r["id"] for r in loaded["aime25"]] == ["0", "1"]  # no id field: the line index


def test_gzip_and_max_records(data_dir, tmp_path):
    import gzip

    raw = (data_dir / "MbppPlus.jsonl").read_bytes()
    (tmp_path / "MbppPlus.jsonl.gz").write_bytes(gzip.compress(raw))
    assert len(bm.load("mbpp_plus", tmp_path)) == 2
    assert len(bm.load("mbpp_plus", tmp_path, max_records=1)) == 1


def test_missing_file_names_the_file_and_where_it_is_published(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        bm.load("humaneval_plus", tmp_path)
    msg = str(e.value)
    assert "HumanEvalPlus.jsonl" in msg and str(tmp_path) in msg
    assert "github.com/evalplus/humanevalplus_release" in msg
    assert "--config.eval.data_dir" in msg
    with pytest.raises(FileNotFoundError, match="livecodebench/code_generation_lite"):
        bm.benchmark_path("livecodebench", tmp_path)


def test_real_release_excerpts_load(tmp_path):
    """The odd real record, Mbpp/793 with `"plus_input": {}`, is read as EvalPlus reads it."""
    shutil.copy(MBPP_EXCERPT, tmp_path / "MbppPlus.jsonl")
    shutil.copy(FIXTURES / "HumanEvalPlus-v0.1.10.excerpt.jsonl", tmp_path / "HumanEvalPlus.jsonl")
    read = bm.load_file("mbpp_plus", tmp_path)
    assert len(read.records) == 15 and read.skipped == ()
    assert read.sha256 == hashlib.sha256(MBPP_EXCERPT.read_bytes()).hexdigest()
    last = {r["id"]: r for r in read.records}["Mbpp/793"]
    assert last["plus_input"] == [] and len(last["base_input"]) == 3
    he = bm.load_file("humaneval_plus", tmp_path).records
    assert [r["id"] for r in he] == ["HumanEval/2", "HumanEval/32"] and he[1]["atol"] == 1e-4


def test_unreadable_records_are_skipped_named_and_counted(tmp_path, caplog):
    good = MBPP_EXCERPT.read_text().splitlines()[:2]
    lines = [good[0], '{"task_id": "Mbpp/1"}', "{oops", "[1, 2]", good[1]]
    lines.append(json.dumps({**json.loads(good[0]), "base_input": "not a list"}))
    (tmp_path / "MbppPlus.jsonl").write_text("\n".join(lines) + "\n")
    read = bm.load_file("mbpp_plus", tmp_path)
    assert [r["id"] for r in read.records] == ["Mbpp/2", "Mbpp/75"]
    where = [s.split(": ", 1)[0].rsplit(":", 1)[1] for s in read.skipped]
    assert where == ["2", "3", "4", "6"]
    assert "missing field" in read.skipped[0] and "not JSON" in read.skipped[1]
    assert "MbppPlus.jsonl:3: skipped" in caplog.text
    (tmp_path / "aime24.jsonl").write_text('{"problem": "x"}\n')
    with pytest.raises(ValueError, match=r"aime24.jsonl holds no readable record.*no answer field"):
        bm.load("aime24", tmp_path)


def test_select():
    assert bm.select("paper", "") == bm.PAPER_SUITE and len(bm.PAPER_SUITE) == 9
    assert bm.select("", "aime24, humaneval_plus,aime24") == ("aime24", "humaneval_plus")
    assert bm.select("", "") == ()
    with pytest.raises(ValueError, match=r"unknown benchmark\(s\) \['aime2024'\]"):
        bm.select("", "aime2024")
    with pytest.raises(ValueError, match="the only suite is 'paper'"):
        bm.select("table1", "")


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/azr_pickle_ran",))


def test_compressed_tests_decode_and_hostile_pickles_are_refused(tmp_path, monkeypatch):
    tests = [{"input": "1", "output": "2", "testtype": "stdin"}]
    packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()
    assert json.loads(bm.decode_compressed_tests(packed)) == tests
    hostile = base64.b64encode(zlib.compress(pickle.dumps(_Boom()))).decode()
    assert b"system" in zlib.decompress(base64.b64decode(hostile))  # it does name os.system
    called = []
    monkeypatch.setattr("os.system", lambda *a: called.append(a))
    with pytest.raises(ValueError, match="unsafe or broken pickle.*refusing"):
        bm.decode_compressed_tests(hostile)
    assert not called  # refused before the global was even looked up
    not_text = base64.b64encode(zlib.compress(pickle.dumps([1, 2]))).decode()
    with pytest.raises(ValueError, match="holds list, not text"):
        bm.decode_compressed_tests(not_text)
    with pytest.raises(ValueError, match="neither JSON nor base64"):
        bm.decode_compressed_tests("not base64 ###")


def test_livecodebench_functional_tests_must_be_json(tmp_path):
    record = dict(pf.LIVECODEBENCH[0], public_test_cases=json.dumps(
        [{"input": "[1, 2\n3", "output": "[0]", "testtype": "functional"}]
    ), private_test_cases="[]")  # fmt: skip
    lines = [json.dumps(record), json.dumps(pf.LIVECODEBENCH[1])]
    (tmp_path / "livecodebench.jsonl").write_text("\n".join(lines) + "\n")
    read = bm.load_file("livecodebench", tmp_path)
    assert [r["id"] for r in read.records] == [pf.LIVECODEBENCH[1]["question_id"]]
    assert read.skipped[0].startswith(f"{tmp_path / 'livecodebench.jsonl'}:1: ")
    assert "functional test 0 is not JSON" in read.skipped[0]


def test_livecodebench_date_window(data_dir):
    records = bm.load("livecodebench", data_dir)  # contest dates 2024-08-01 and 2024-09-01
    assert [r["id"] for r in bm.within_dates(records, "")] == ["1", "abc000_a"]
    assert [r["id"] for r in bm.within_dates(records, "2024-08-15,")] == ["abc000_a"]
    assert [r["id"] for r in bm.within_dates(records, ",2024-08-01")] == ["1"]
    assert bm.within_dates(records, "2025-01-01,2025-02-01") == []
    # LiveCodeBench's rule: each end is that day's midnight
    late = [dict(records[0], contest_date="2024-08-01T12:30:00")]
    assert bm.within_dates(late, ",2024-08-01") == [] and bm.within_dates(late, "2024-08-01,")
    with pytest.raises(ValueError, match="expected 'YYYY-MM-DD,YYYY-MM-DD'"):
        bm.within_dates(records, "2024-08")
