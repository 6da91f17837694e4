"""Math grading: \\boxed{} extraction, math-verify equivalences, and its child process (works
from any thread, survives a hanging or crashing answer)."""

import threading

import pytest

from azr_jax.evals import math_grading as mg


@pytest.mark.parametrize(
    "text,want",
    [
        ("so the answer is \\boxed{42}.", "42"),
        ("\\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("nested \\boxed{\\sqrt{\\frac{a}{b}}} end", "\\sqrt{\\frac{a}{b}}"),
        ("spaces \\boxed{ 3 }", "3"),
        ("old style $\\boxed 5$", "5"),
        ("\\fbox{7}", "7"),
        ("no box: 42", None),
        ("unbalanced \\boxed{1", None),
    ],
)
def test_last_boxed(text, want):
    assert mg.last_boxed(text) == want


EQUIVALENT = [
    ("\\frac{1}{2}", "0.5"),  # a fraction and a decimal
    ("0.5", "\\frac12"),
    ("\\frac{1}{2}", "\\dfrac { 1 } { 2 }"),  # LaTeX spacing and \dfrac
    ("2\\sqrt{3}", "\\sqrt{12}"),
    ("204", "204.0"),
    ("\\frac{\\pi}{2}", "\\pi/2"),
    ("x^2+1", "1 + x^{2}"),
]
DIFFERENT = [
    ("204", "205"),
    ("\\frac{1}{2}", "0.51"),
    ("2\\sqrt{3}", "3\\sqrt{2}"),
]


def test_math_verify_equivalences():
    pairs = EQUIVALENT + DIFFERENT
    got = mg.verify_answers([g for g, _ in pairs], [a for _, a in pairs], timeout_s=5)
    assert [v["ok"] for v in got] == [True] * len(EQUIVALENT) + [False] * len(DIFFERENT)


def test_runs_from_a_thread_and_survives_a_hanging_answer(monkeypatch):
    """math-verify's own limits need a main thread; its child has one, whatever thread calls.
    A child that stops answering is killed after the watchdog limit, and the rest still run."""
    out = {}
    hanging = mg._WORKER.replace(
        "for line in sys.stdin:\n",
        "for line in sys.stdin:\n    if 'HANG' in line:\n        import time; time.sleep(60)\n",
    )
    monkeypatch.setattr(mg, "_WORKER", hanging)
    monkeypatch.setattr(mg, "_watchdog_s", lambda timeout_s: 3.0)

    def work():
        out["v"] = mg.verify_answers(["1", "2", "3"], ["1", "HANG", "3"], timeout_s=1)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert [v["ok"] for v in out["v"]] == [True, False, True]
    assert out["v"][1]["error"].startswith("timeout")


def test_unparseable_and_empty():
    got = mg.verify_answers(["5", "\\frac{1}{0"], ["\\text{five}?", "1"], timeout_s=5)
    assert [v["ok"] for v in got] == [False, False]
    assert mg.verify_answers([], []) == []
    with pytest.raises(ValueError, match="2 gold answers but 1 answers"):
        mg.verify_answers(["1", "2"], ["1"])
