"""The warm start's text: grammar programs run by the executor, rendered as self-play episodes.

`build_tasks(pool, seed, n, num_inputs)` draws programs from `grammar.py`, writes one input for a
deduction/abduction triplet and `num_inputs` distinct inputs for an induction task, and has the
project's executor validate them (sandboxed, twice under two hash seeds, as proposals are): only
programs whose every input runs, deterministically, are kept, with the outputs the executor
computed. `render(...)` turns each task into prompt/response pairs of all six (task type, role)
groups, in the exact formats of `selfplay/prompts.py` and `selfplay/parsing.py`, so a response
of the warm-started model parses and validates like a real proposal or answer.

`heldout_tasks(...)` draws tasks the same way from another seed and drops every program whose
normalised text (`selfplay/diversity.normalize_program`) is in the corpus: the held-out set is
disjoint from the warm start's corpus by program text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from azr_jax.executor.pool import ExecutorPool
from azr_jax.executor.validation import Proposal, Validation, validate_many
from azr_jax.selfplay import prompts
from azr_jax.selfplay.diversity import normalize_program
from azr_jax.selfplay.tasks import InductionTask, TaskType, Triplet, seed_triplet
from azr_jax.warmstart import grammar

# The six groups' samples, in order: (task type, role).
KINDS = (
    ("code_o", "propose"),
    ("code_i", "propose"),
    ("code_f", "propose"),
    ("code_o", "solve"),
    ("code_i", "solve"),
    ("code_f", "solve"),
)
_THINK_END = "</think>\n<answer>\n"
_ANSWER_END = "\n</answer>"


@dataclasses.dataclass(frozen=True)
class GrammarTask:
    """One executed grammar program: a triplet and an induction task over the same program."""

    triplet: Triplet  # program (as validated: main function `f`), one input, its output
    induction: InductionTask  # the same program on `num_inputs` distinct inputs


def _inputs(rng: np.random.Generator, arg_types: tuple[str, ...], n: int) -> list[str] | None:
    out: list[str] = []
    for _ in range(8 * n):
        text = grammar.draw_input(rng, arg_types)
        if text not in out:
            out.append(text)
        if len(out) == n:
            return out
    return None


def build_tasks(
    pool: ExecutorPool,
    seed: int,
    n_programs: int,
    num_inputs: int,
    exclude: Iterable[str] = (),
    chunk: int = 256,
) -> list[GrammarTask]:
    """Up to `n_programs` executed tasks, in draw order; programs in `exclude` (normalised) or
    already drawn are skipped. Deterministic given the seed (the executor only computes outputs).

    Args:
      pool: the project's executor (workers >= 2: determinism is checked as for proposals).
      seed: the grammar's seed (the warm start's corpus and each held-out set use their own).
      n_programs: programs to draw (invalid ones, e.g. `max([])`, are dropped, so fewer come back).
      num_inputs: inputs of each induction task (the run's `azr.num_inputs`).
      exclude: normalised programs that must not appear (the corpus, for a held-out set).
    """
    rng = np.random.default_rng(seed)
    seen = set(exclude)
    drawn: list[tuple[grammar.Program, list[str]]] = []
    for _ in range(n_programs):
        program = grammar.draw_program(rng)
        key = normalize_program(program.source)
        inputs = _inputs(rng, program.arg_types, num_inputs)
        if key in seen or inputs is None:
            continue
        seen.add(key)
        triplet_input = grammar.draw_input(rng, program.arg_types)
        drawn.append((program, [triplet_input, *inputs]))
    out: list[GrammarTask] = []
    for start in range(0, len(drawn), chunk):
        part = drawn[start : start + chunk]
        verdicts = _validate_untimed(pool, part)
        for (program, inputs), v in zip(part, verdicts, strict=True):
            if not v.valid:
                continue
            out.append(
                GrammarTask(
                    Triplet(v.code, inputs[0], v.outputs[0]),
                    InductionTask(
                        v.code,
                        tuple(inputs[1:]),
                        tuple(v.outputs[1:]),
                        program.message,
                        num_inputs // 2,
                    ),
                )
            )
    return out


# Verdicts that say how busy the machine was, not what the program does: a grammar program is a
# few lines over short literals, so a run killed by the clock is the load's doing.
_TIMING_STATUSES = (": timeout:", ": killed:")


def _timed_out(v: Validation) -> bool:
    return not v.valid and any(s in (v.reason or "") for s in _TIMING_STATUSES)


def _validate_untimed(
    pool: ExecutorPool, part: list[tuple[grammar.Program, list[str]]]
) -> list[Validation]:
    """Verdicts of `part`, none of them a timeout: a corpus (or held-out set) that dropped a
    program because the machine was busy would differ from run to run under one seed. Timed-out
    programs are run again (twice at most); if one still times out, a clear error, not a quietly
    smaller corpus."""
    proposals = [Proposal(p.source, inputs, p.message, True) for p, inputs in part]
    verdicts = validate_many(pool, proposals)
    for _ in range(2):
        again = [i for i, v in enumerate(verdicts) if _timed_out(v)]
        if not again:
            return verdicts
        for i, v in zip(again, validate_many(pool, [proposals[i] for i in again]), strict=True):
            verdicts[i] = v
    stuck = [i for i, v in enumerate(verdicts) if _timed_out(v)]
    if stuck:
        first = verdicts[stuck[0]]
        raise RuntimeError(
            f"{len(stuck)} grammar program(s) timed out three times (the first: {first.reason}; "
            f"program:\n{proposals[stuck[0]].code}\n): the corpus would depend on the "
            f"machine's load, so nothing was built. Rerun on a less busy machine, or give the "
            f"executor a longer timeout_s (now {pool.timeout_s:g} s)."
        )
    return verdicts


def heldout_tasks(
    pool: ExecutorPool, seed: int, n_programs: int, num_inputs: int, corpus: Sequence[GrammarTask]
) -> list[GrammarTask]:
    """Tasks from `seed` whose programs (normalised) are not in `corpus`."""
    exclude = {normalize_program(t.triplet.program) for t in corpus}
    return build_tasks(pool, seed, n_programs, num_inputs, exclude=exclude)


def _block(language: str, body: str) -> str:
    return f"```{language}\n{body}\n```"


def response(kind: tuple[str, str], task: GrammarTask) -> str:
    """The ideal response of one group to `task` (what parsing.py reads back)."""
    t, i = task.triplet, task.induction
    if kind in (("code_o", "propose"), ("code_i", "propose")):
        body = _block("python", t.program) + "\n" + _block("input", t.input)
    elif kind == ("code_f", "propose"):
        body = "\n".join([*(_block("input", x) for x in i.inputs), _block("message", i.message)])
    elif kind == ("code_o", "solve"):
        body = t.output
    elif kind == ("code_i", "solve"):
        body = t.input
    else:
        body = _block("python", t.program)
    return _THINK_END + body + _ANSWER_END


def prompt(
    kind: tuple[str, str],
    task: GrammarTask,
    references: Sequence[Triplet],
    banned_modules: Sequence[str],
    num_inputs: int,
) -> str:
    """The self-play prompt of one group for `task` (references only for triplet proposers)."""
    t, i = task.triplet, task.induction
    if kind == ("code_o", "propose"):
        return prompts.triplet_proposer_prompt(TaskType.DEDUCTION, references, banned_modules)
    if kind == ("code_i", "propose"):
        return prompts.triplet_proposer_prompt(TaskType.ABDUCTION, references, banned_modules)
    if kind == ("code_f", "propose"):
        return prompts.induction_proposer_prompt(
            t.program, banned_modules, num_inputs=num_inputs, num_visible=num_inputs // 2
        )
    if kind == ("code_o", "solve"):
        return prompts.deduction_solver_prompt(t.program, t.input)
    if kind == ("code_i", "solve"):
        return prompts.abduction_solver_prompt(t.program, t.output)
    return prompts.induction_solver_prompt(i.message, i.visible_pairs)


def render(
    tasks: Sequence[GrammarTask],
    seed: int,
    max_references: int,
    banned_modules: Sequence[str],
    num_inputs: int,
) -> list[tuple[str, str, int]]:
    """(prompt, response, kind index into KINDS) for every task in all six groups, shuffled.

    Triplet proposers are shown 0 to `max_references` references (as the buffers show past
    tasks), drawn with the seed: other corpus triplets, the first of them replaced half the time
    by the identity seed triplet, the one reference every run's first step shows.
    """
    rng = np.random.default_rng(seed)
    out = []
    for n, task in enumerate(tasks):
        for k, kind in enumerate(KINDS):
            refs: list[Triplet] = []
            if kind[1] == "propose" and kind[0] != "code_f" and max_references:
                count = int(rng.integers(0, max_references + 1))
                picks = rng.choice(len(tasks), size=min(count, len(tasks)), replace=False)
                refs = [tasks[int(j)].triplet for j in picks if int(j) != n]
                if refs and rng.random() < 0.5:
                    refs[0] = seed_triplet()
            out.append(
                (prompt(kind, task, refs, banned_modules, num_inputs), response(kind, task), k)
            )
    order = rng.permutation(len(out))
    return [out[int(j)] for j in order]
