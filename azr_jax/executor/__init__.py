"""Sandboxed host-side Python executor and AZR task validation/grading.

Never imports JAX: the zygotes it starts are fresh interpreters, and the trainer-side code here
only parses, checks and compares. See `pool.py` for the process layout and `layers.py` for the
isolation layers.
"""

from azr_jax.executor.grading import (
    crux_equal,
    grade_abduction,
    grade_abduction_many,
    grade_deduction,
    grade_induction,
    grade_induction_many,
    score_cruxeval,
)
from azr_jax.executor.layers import LAYER_NAMES, OPTIONAL_LAYERS
from azr_jax.executor.literals import (
    LiteralError,
    output_repr,
    parse_call_args,
    parse_literal,
    strict_equal,
)
from azr_jax.executor.pool import STATUSES, ExecutorPool, Job, RunResult
from azr_jax.executor.program import (
    DEFAULT_BANNED,
    DEFAULT_BANNED_BUILTINS,
    Prepared,
    check_input,
    prepare_program,
)
from azr_jax.executor.validation import Proposal, Validation, validate_many, validate_proposal

__all__ = [
    "DEFAULT_BANNED",
    "DEFAULT_BANNED_BUILTINS",
    "LAYER_NAMES",
    "OPTIONAL_LAYERS",
    "STATUSES",
    "ExecutorPool",
    "Job",
    "LiteralError",
    "Prepared",
    "Proposal",
    "RunResult",
    "Validation",
    "check_input",
    "crux_equal",
    "grade_abduction",
    "grade_abduction_many",
    "grade_deduction",
    "grade_induction",
    "grade_induction_many",
    "output_repr",
    "parse_call_args",
    "parse_literal",
    "prepare_program",
    "score_cruxeval",
    "strict_equal",
    "validate_many",
    "validate_proposal",
]
