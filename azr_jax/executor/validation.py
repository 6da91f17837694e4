"""AZR proposal validation (AZR_SPEC section 2), host side.

A proposal is valid only if: the program parses, its main function can be named `f`, it uses no
banned module or builtin (statically here; again at run time in the child), every input is an
argument list that uses nothing banned, every input runs without error within the limits, the
output is an allowed literal that round-trips, and two runs in separate processes with
DIFFERENT hash seeds agree (compared as values with `literals.strict_equal`, so the print order
of a set does not count as nondeterminism, but a result that depends on set order does).
Induction proposals also need a non-empty message. An invalid proposal comes back with a
reason; nothing is ever replaced by a default.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from azr_jax.executor.literals import strict_equal
from azr_jax.executor.pool import ExecutorPool, Job
from azr_jax.executor.program import check_input, prepare_program


@dataclass(frozen=True)
class Proposal:
    """A program and its input(s); `message` is the induction proposer's hint."""

    code: str
    inputs: Sequence[str]
    message: str | None = None
    induction: bool = False


@dataclass(frozen=True)
class Validation:
    """The verdict on one proposal. `code` is the program with its main function named `f`."""

    valid: bool
    reason: str | None
    code: str | None = None
    outputs: list[str] = field(default_factory=list)  # repr of f(input), one per input


def validate_proposal(
    pool: ExecutorPool,
    code: str,
    inputs: Sequence[str],
    *,
    message: str | None = None,
    induction: bool = False,
) -> Validation:
    """Validates one proposal (deduction/abduction: one input; induction: several)."""
    return validate_many(pool, [Proposal(code, list(inputs), message, induction)])[0]


def validate_many(pool: ExecutorPool, proposals: Sequence[Proposal]) -> list[Validation]:
    """Validates a batch: all runs of all proposals go to the pool at once."""
    if pool.workers < 2:
        raise ValueError("validation needs a pool with workers >= 2 (two hash seeds)")
    verdicts: list[Validation | None] = [None] * len(proposals)
    spans: list[tuple[int, int, int, str]] = []  # proposal index, first job, n inputs, code

    def jobs() -> Iterator[Job]:
        # Lazy: the pool runs the first programs while later ones are still being checked.
        n_jobs = 0
        for i, proposal in enumerate(proposals):
            prepared, reason = _static_check(pool, proposal)
            if reason is not None:
                verdicts[i] = Validation(False, reason)
                continue
            spans.append((i, n_jobs, len(proposal.inputs), prepared))
            for k, text in enumerate(proposal.inputs):
                # Two runs per input on zygotes with different hash seeds.
                yield Job(prepared, text, hash_group=2 * (i + k))
                yield Job(prepared, text, hash_group=2 * (i + k) + 1)
                n_jobs += 2

    results = pool.run_many(jobs())
    for i, first, n_inputs, prepared in spans:
        outputs: list[str] = []
        reason = None
        for k in range(n_inputs):
            a, b = results[first + 2 * k], results[first + 2 * k + 1]
            failed = a if a.status != "ok" else b if b.status != "ok" else None
            if failed is not None:
                reason = f"input {k}: {failed.status}: {failed.error_type}: {failed.error_message}"
                break
            if not strict_equal(a.value, b.value):
                reason = f"input {k}: nondeterministic ({a.output_repr} vs {b.output_repr})"
                break
            outputs.append(a.output_repr)
        if reason is None:
            verdicts[i] = Validation(True, None, prepared, outputs)
        else:
            verdicts[i] = Validation(False, reason, prepared)
    return verdicts  # type: ignore[return-value]


def _static_check(pool: ExecutorPool, proposal: Proposal) -> tuple[str | None, str | None]:
    if not proposal.inputs:
        return None, "no input"
    if proposal.induction and not (proposal.message and proposal.message.strip()):
        return None, "induction proposal without a message"
    prepared = prepare_program(proposal.code, pool.banned_modules, pool.banned_builtins)
    if prepared.error:
        return None, prepared.error
    for k, text in enumerate(proposal.inputs):
        error = check_input(text, pool.banned_modules, pool.banned_builtins)
        if error:
            return None, f"input {k}: {error}"
    return prepared.code, None
