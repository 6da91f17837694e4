"""Diversity measures of proposals: normalisation, similarity, the census and the penalty."""

import difflib
from types import SimpleNamespace

import pytest

from azr_jax.selfplay import diversity as dv
from azr_jax.selfplay.tasks import TaskType

A = "def f(x):\n    y = x + 3\n    return y * 2"
A_RENAMED = "def f(num):\n  tmp   = num+3\n  return tmp*2\n"
B = "def f(s):\n    return s.upper()[::-1]"


def test_normalize_ignores_names_and_whitespace_only():
    assert dv.normalize_program(A) == dv.normalize_program(A_RENAMED)
    assert dv.normalize_program(A) == "def f(v0):\n    v1 = v0 + 3\n    return v1 * 2"
    # builtins and attributes are part of what a program does
    assert dv.normalize_program("def f(a):\n    return len(a.strip())") == (
        "def f(v0):\n    return len(v0.strip())"
    )
    assert dv.normalize_program(A) != dv.normalize_program(A.replace("+ 3", "+ 4"))
    assert dv.normalize_program("def f(:\n  x") == "def f(: x"  # unparsable: whitespace only


# Programs a self-play run padded with unreachable lines (2026-12-04), each with what it does.
PADDED = [
    "def f(x):\n    if 1:\n        return min(x)\n    return x[0]\n    return x[0]",
    "def f(x):\n    if 9:\n        return min(x)",
    "def f(x):\n    if 1:\n        return min(x)\n    return y.count(1)",
    "def f(x):\n    if 0:\n        return max(x)\n    else:\n        return min(x)\n    x.sort()",
]


def test_normalize_drops_dead_code_and_keeps_what_runs():
    for src in PADDED:
        assert dv.normalize_program(src) == "def f(v0):\n    return min(v0)", src
    loop = "def f(x):\n    t = 0\n    for i in x:\n        t += i\n        continue\n        t = 9\n    return t"
    assert dv.normalize_program(loop) == (
        "def f(v0):\n    v1 = 0\n    for v2 in v0:\n        v1 += v2\n        continue\n    return v1"
    )
    assert dv.normalize_program("def f(x):\n    if 0:\n        return 1") == "def f(v0):\n    pass"
    # a test that is not a constant stays, both branches
    kept = "def f(v0):\n    if v0:\n        return 1\n    return 2"
    assert dv.normalize_program(kept) == kept
    # the normalised programs compute what the originals do (hand-written, trusted code)
    for src in [*PADDED, loop]:
        ran, norm = {}, {}
        exec(src, ran)  # noqa: S102
        exec(dv.normalize_program(src).replace("v0", "x"), norm)  # noqa: S102
        assert ran["f"]([3, 1, 2]) == norm["f"]([3, 1, 2])
    census = dv.ProgramCensus()
    census.add("code_o", PADDED)
    assert census.distinct_fraction() == 1 / len(PADDED)


def test_similarity_against_difflib_on_hand_tokens():
    assert dv.similarity(A, A_RENAMED) == 1.0
    ta = "def f ( v0 ) : v1 = v0 + 3 return v1 * 2".split()
    tb = "def f ( v0 ) : return v0 . upper ( ) [ : : - 1 ]".split()
    want = difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio()
    assert dv.similarity(A, B) == pytest.approx(want)
    assert 0.0 < want < 1.0


def test_mean_pairwise_similarity():
    s = dv.similarity(A, B)
    assert dv.mean_pairwise_similarity([A, A_RENAMED, B]) == pytest.approx((1.0 + s + s) / 3)
    assert dv.mean_pairwise_similarity([A]) == 0.0


def test_census_counts_renamings_as_repeats_and_round_trips():
    c = dv.ProgramCensus()
    c.add("code_o", [A, A_RENAMED])
    c.add("code_i", [B])
    assert c.distinct_fraction("code_o") == 0.5
    assert c.distinct_fraction("code_i") == 1.0
    assert c.distinct_fraction() == pytest.approx(2 / 3)
    again = dv.ProgramCensus.from_state(c.to_state())
    assert again.distinct_fraction() == c.distinct_fraction()
    assert dv.ProgramCensus().distinct_fraction() == 0.0
    assert dv.ProgramCensus.from_state(None).distinct_fraction() == 0.0


def test_penalties_by_hand():
    assert dv.diversity_penalties([A, A_RENAMED, B], [], 0.0, 0.9) == [0.0, 0.0, 0.0]
    # A: of its 2 others, 1 (A_RENAMED) is a copy -> 0.5 * 1/2; B: none of 2.
    assert dv.diversity_penalties([A, A_RENAMED, B], [], 0.5, 0.9) == [0.25, 0.25, 0.0]
    # with a pool of one more copy of B: B has 1 copy among 3 others
    assert dv.diversity_penalties([A, B], [B], 0.6, 0.9) == pytest.approx([0.0, 0.3])
    assert dv.diversity_penalties([A], [], 1.0, 0.9) == [0.0]


def test_step_diversity_penalises_only_when_asked():
    items = [(TaskType.DEDUCTION, "", None)] * 3 + [(TaskType.ABDUCTION, "", None)]
    verdicts = [SimpleNamespace(valid=True, code=p) for p in (A, A_RENAMED, B, B)]
    verdicts[2] = SimpleNamespace(valid=False, code=B)  # invalid: neither measured nor penalised
    buffers = {t: SimpleNamespace(tasks=()) for t in TaskType}

    def episodes():
        return [SimpleNamespace(reward=0.5, verdict="valid") for _ in items]

    eps = episodes()
    m = dv.step_diversity(list(TaskType), items, eps, verdicts, buffers, 0.0, 0.9)
    assert m == {"code_o/propose/similarity": 1.0, "code_i/propose/similarity": 0.0}
    assert [e.reward for e in eps] == [0.5] * 4
    eps = episodes()
    dv.step_diversity(list(TaskType), items, eps, verdicts, buffers, 0.4, 0.9)
    assert [e.reward for e in eps] == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert "diversity penalty 0.40" in eps[0].verdict


K3 = "def f(x):\n    if len(x) > 3:\n        return max(x)\n    return x[-1]"
K4_RENAMED = "def f(xs):\n    if len(xs) > 4:\n        return max(xs)\n    return xs[-1]"
K4_MIN = "def f(x):\n    if len(x) > 4:\n        return min(x)\n    return x[-1]"


def test_shape_blanks_numbers_and_strings_only():
    assert dv.program_shape(K3) == dv.program_shape(K4_RENAMED)
    assert dv.program_shape(K3) != dv.program_shape(K4_MIN)  # another builtin: another family
    # the constants' spelling: strings and numbers alike, booleans and None kept
    a = "def f(s):\n    return s.count('a') + 2"
    b = 'def f(t):\n    return t.count("zz") + 7'
    assert dv.program_shape(a) == dv.program_shape(b) == "def f(v0):\n    return v0.count(C) + C"
    assert dv.program_shape("def f(x):\n    return x is None or True") == (
        "def f(v0):\n    return v0 is None or True"
    )
    assert dv.program_shape("def f(:") == "def f(:"  # unparsable: the normalised text


def test_novelty_factors_by_hand():
    assert dv.novelty_factors([K3, B], [K4_RENAMED] * 3, 0.0) == [1.0, 1.0]
    # K3: 3 earlier of its shape + 0 in the step -> 1 / (1 + 0.5 * 3); B: none -> 1
    assert dv.novelty_factors([K3, B], [K4_RENAMED] * 3, 0.5) == pytest.approx([0.4, 1.0])
    # two of one shape in the step count each other: 1 / (1 + 2 * 1)
    assert dv.novelty_factors([K3, K4_RENAMED, K4_MIN], [], 2.0) == pytest.approx(
        [1 / 3, 1 / 3, 1.0]
    )


def test_step_diversity_scales_only_positive_rewards():
    items = [(TaskType.DEDUCTION, "", None)] * 3
    verdicts = [SimpleNamespace(valid=True, code=p) for p in (K3, K4_RENAMED, B)]
    buffers = {t: SimpleNamespace(tasks=()) for t in TaskType}
    buffers[TaskType.DEDUCTION] = SimpleNamespace(tasks=(SimpleNamespace(program=K4_MIN),))
    rewards = [0.75, 0.0, 0.5]  # K4_RENAMED: unlearnable, its 0 stays 0
    eps = [SimpleNamespace(reward=r, verdict="valid") for r in rewards]
    m = dv.step_diversity(
        list(TaskType), items, eps, verdicts, buffers, 0.0, 0.9, novelty_decay=1.0
    )
    assert [e.reward for e in eps] == pytest.approx([0.75 / 2, 0.0, 0.5])
    assert m["code_o/propose/novelty_factor"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert "novelty x0.50" in eps[0].verdict and "novelty" not in eps[2].verdict


def test_novelty_penalty_makes_a_repeat_cost_more_than_an_unlearnable_task():
    items = [(TaskType.ABDUCTION, "", None)] * 3
    verdicts = [SimpleNamespace(valid=True, code=p) for p in (K3, K4_RENAMED, B)]
    buffers = {t: SimpleNamespace(tasks=()) for t in TaskType}
    eps = [SimpleNamespace(reward=r, verdict="valid") for r in (0.75, 0.0, 0.0)]
    dv.step_diversity(
        list(TaskType), items, eps, verdicts, buffers, 0.0, 0.9, novelty_decay=1.0,
        novelty_penalty=0.4,
    )  # fmt: skip
    # K3, K4_RENAMED: one shape, factor 1/2 -> 0.75 / 2 - 0.4 / 2 and 0 - 0.4 / 2; B: new, kept
    assert [e.reward for e in eps] == pytest.approx([0.175, -0.2, 0.0])
    assert "novelty" not in eps[2].verdict
