"""run/paper_eval.py: the config's benchmark selection, its checks, and clear errors before any
model work (a missing benchmark file, nothing selected)."""

import importlib.util
from pathlib import Path

import pytest

from azr_jax.run import paper_eval
from azr_jax.run.config_checks import ConfigError, check_config
from tests.evals import publisher_files as pf

ROOT = Path(__file__).resolve().parents[2]


def default_config():
    spec = importlib.util.spec_from_file_location("default", ROOT / "configs" / "default.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(None)


def test_selection_and_pass_k():
    c = default_config()
    assert paper_eval.selected(c) == ()  # off by default: evaluate.py scores CRUXEval as before
    c.eval.suite = "paper"
    assert len(paper_eval.selected(c)) == 9
    c.eval.suite, c.eval.benchmarks = "", "aime24,livecodebench"
    assert paper_eval.selected(c) == ("aime24", "livecodebench")
    assert paper_eval.pass_ks(c) == (1, 5, 10)


@pytest.mark.parametrize(
    "key, value, pattern",
    [
        ("benchmarks", "aime2024", r"eval.suite / eval.benchmarks: .*unknown benchmark"),
        ("suite", "table1", r"the only suite is 'paper'"),
        ("pass_k", "1,x", r"--config\.eval\.pass_k: '1,x'"),
        ("test_timeout_s", 0.0, r"--config\.eval\.test_timeout_s"),
        ("evalplus_min_time_limit_s", 0.0, r"--config\.eval\.evalplus_min_time_limit_s"),
        ("reference_timeout_s", 0.0, r"--config\.eval\.reference_timeout_s"),
        ("evalplus_time_limit_factor", 0.5, r"--config\.eval\.evalplus_time_limit_factor"),
        ("num_samples", -1, r"--config\.eval\.num_samples"),
        ("livecodebench_dates", "2024", r"--config\.eval\.livecodebench_dates: .*YYYY-MM-DD"),
        ("greedy", False, r"--config\.eval\.greedy: is False and eval.num_samples is 0"),
    ],
)
def test_bad_eval_values_are_named(key, value, pattern):
    c = default_config()
    c.eval[key] = value
    with pytest.raises(ConfigError, match=pattern):
        check_config(c, num_devices=1)


def test_errors_before_any_model_work(tmp_path):
    c = default_config()
    with pytest.raises(ValueError, match="no benchmarks: set --config.eval.suite=paper"):
        paper_eval.evaluate_paper(c)
    c.eval.benchmarks, c.eval.data_dir = "math500,mbpp_plus", str(tmp_path)
    responses = pf.responses_file(tmp_path / "r.jsonl", {"math500": {"x": "\\boxed{1}"}})
    with pytest.raises(FileNotFoundError) as e:
        paper_eval.evaluate_paper(c, responses_path=str(responses))
    assert "math500.jsonl not found" in str(e.value) and "HuggingFaceH4/MATH-500" in str(e.value)
    assert "MbppPlus.jsonl not found" in str(e.value)
    pf.write_all(tmp_path)
    with pytest.raises(ValueError, match="needs a policy"):
        paper_eval.evaluate_paper(c)


def test_periodic_evaluation_adds_the_table_only_when_asked(monkeypatch):
    from types import SimpleNamespace

    from azr_jax.run import trainer

    run = SimpleNamespace(
        policy=SimpleNamespace(generator="G", settings="S"), state=SimpleNamespace(params="P")
    )
    calls = []

    def fake(config, generator, params, settings):
        calls.append((generator, params, settings))
        return {"aime24": 0.5, "aime24/n": 2, "overall_avg": 0.5}, []

    monkeypatch.setattr(paper_eval, "evaluate_paper", fake)
    c = default_config()
    assert trainer.periodic_paper_eval(run, c) == {} and not calls
    c.eval.benchmarks = "aime24"
    got = trainer.periodic_paper_eval(run, c)
    assert got == {"eval/aime24": 0.5, "eval/aime24/n": 2.0, "eval/overall_avg": 0.5}
    assert calls == [("G", "P", "S")]
