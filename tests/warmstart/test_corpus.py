"""The warm start's corpus: grammar programs executed by the sandbox, rendered in the self-play
formats, and held-out sets disjoint from it by program text."""

import numpy as np
import pytest

from azr_jax.executor import validation
from azr_jax.executor.pool import ExecutorPool
from azr_jax.executor.program import DEFAULT_BANNED
from azr_jax.selfplay import parsing
from azr_jax.selfplay.diversity import normalize_program
from azr_jax.selfplay.tasks import TaskType
from azr_jax.warmstart import corpus, grammar


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(workers=2, timeout_s=5.0, memory_mb=512, hash_seeds=[11, 22]) as p:
        yield p


@pytest.fixture(scope="module")
def tasks(pool):
    return corpus.build_tasks(pool, seed=0, n_programs=120, num_inputs=4)


def test_grammar_is_a_function_of_the_seed():
    def draw(seed):
        rng = np.random.default_rng(seed)
        return [grammar.draw_program(rng).source for _ in range(40)]

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)


def test_outputs_are_what_python_computes(tasks):
    assert len(tasks) > 60  # most programs run on their inputs
    for t in tasks[:40]:
        # The grammar's own programs (not model-written) evaluated here as the reference.
        env: dict = {}
        exec(t.triplet.program, env)
        assert repr(eval(f"f({t.triplet.input})", env)) == t.triplet.output
        for inp, out in zip(t.induction.inputs, t.induction.outputs, strict=True):
            assert repr(eval(f"f({inp})", env)) == out
        assert len(set(t.induction.inputs)) == 4


def test_heldout_set_is_disjoint_from_the_corpus(pool, tasks):
    held = corpus.heldout_tasks(pool, seed=12345, n_programs=120, num_inputs=4, corpus=tasks)
    assert len(held) > 20
    train_text = {t.triplet.program for t in tasks}
    train_norm = {normalize_program(p) for p in train_text}
    assert not {t.triplet.program for t in held} & train_text
    assert not {normalize_program(t.triplet.program) for t in held} & train_norm
    # and the held-out seed really draws programs the corpus seed also draws (so the filter bites)
    raw = corpus.build_tasks(pool, seed=12345, n_programs=120, num_inputs=4)
    assert {normalize_program(t.triplet.program) for t in raw} & train_norm


def test_rendered_responses_parse_back_to_the_task(tasks):
    samples = corpus.render(tasks[:10], 0, 2, DEFAULT_BANNED, 4)
    assert len(samples) == 60 and {k for _, _, k in samples} == set(range(6))
    by_response = {}
    for t in tasks[:10]:
        for k, kind in enumerate(corpus.KINDS):
            by_response[(corpus.response(kind, t), k)] = t
    for prompt, response, k in samples:
        t = by_response[(response, k)]
        assert prompt.endswith("Assistant: <think>")
        task_type, role = corpus.KINDS[k]
        tt = TaskType(task_type)
        if role == "propose":
            p = parsing.parse_proposer_response(tt, response, num_inputs=4)
            assert p.well_formed, p.error
            if tt is TaskType.INDUCTION:
                assert p.inputs == t.induction.inputs and p.message == t.induction.message
                assert t.triplet.program in prompt
            else:
                assert (p.program, p.inputs) == (t.triplet.program, (t.triplet.input,))
        else:
            a = parsing.parse_solver_response(tt, response)
            want = {
                TaskType.DEDUCTION: t.triplet.output,
                TaskType.ABDUCTION: t.triplet.input,
                TaskType.INDUCTION: t.triplet.program,
            }[tt]
            assert a.answer == want


def test_a_program_timed_out_by_load_is_run_again_not_dropped(pool, tasks, monkeypatch):
    # The first verdict of the first chunk's third program comes back as a timeout (what a busy
    # machine does); the corpus must still be the one an idle machine builds.
    real = corpus.validate_many
    calls = []

    def busy_once(p, proposals):
        verdicts = real(p, proposals)
        if not calls:
            verdicts[2] = validation.Validation(
                False, "input 0: timeout: Timeout: killed after 5 s"
            )
        calls.append(len(proposals))
        return verdicts

    monkeypatch.setattr(corpus, "validate_many", busy_once)
    again = corpus.build_tasks(pool, seed=0, n_programs=120, num_inputs=4)
    assert calls[1] == 1  # only the timed-out program ran again
    assert again == tasks


def test_a_corpus_that_keeps_timing_out_is_an_error_not_a_smaller_corpus():
    with ExecutorPool(workers=2, timeout_s=0.001, hash_seeds=[101, 202]) as slow:
        with pytest.raises(RuntimeError, match="(?s)timed out three times.*longer timeout_s"):
            corpus.build_tasks(slow, seed=0, n_programs=4, num_inputs=4)
