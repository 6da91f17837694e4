"""Diversity of proposals: normalised program text, pairwise similarity, a census, a penalty.

Proposer collapse (one family of programs taking over the buffer) is the failure AZR users
report. This module measures it and offers a diversity-aware proposer reward (off by default):

- `normalize_program(src)`: the program with its identifiers renamed in order of first use
  (`v0, v1, ...`; builtins, attributes and `f` kept), its dead code dropped (statements after
  a `return`, `raise`, `break` or `continue` in the same block; `if <constant>:` replaced by
  the branch it takes) and its layout made canonical by `ast.unparse`, so renaming, whitespace
  and padding do not make a program "new". (A 300-step self-play run with the diversity
  penalty, 2026-12-04, learned to pad one program, `return min(x)`, with unreachable lines.)
- `similarity(a, b)`: difflib's ratio over the normalised programs' tokens, in [0, 1].
- `mean_pairwise_similarity(programs)`: over all pairs of a step's valid programs.
- `ProgramCensus`: every valid proposal so far, as counts of normalised programs; its
  `distinct_fraction` is distinct programs / valid proposals (1: no repeats). JSON-able state
  (checkpointed with the buffers).
- `diversity_penalties(...)`: R-Zero-style: a valid proposal loses `weight` times the fraction
  of the other programs in its comparison pool (the step's other valid programs of its type and
  the newest buffer entries) that are at least `threshold` similar to it.
- `program_shape(src)` and `novelty_factors(...)`: a second option, multiplicative. A program's
  shape is its normalised text with every number and string replaced by one placeholder, so
  `if len(x) > 3: return max(x)` and its copy with 4 are one shape (the family a collapsed
  proposer repeats with its constants changed). A valid proposal's positive reward is scaled by
  1 / (1 + decay x n), n the earlier programs of its shape (the whole buffer of its type) plus
  the step's other valid programs of that shape. A penalty can be outweighed by a learnability
  reward (2026-12-04: a family solved 1 time in 8 earned more than the penalty took); a factor
  cannot: the n-th copy of a family earns at most 1 / (1 + decay x n). With `novelty_penalty`
  w > 0 a repeat also loses w x (1 - factor), so that copying a family costs more than writing
  a new program its solvers never or always solve (both 0 under the paper's reward).
"""

from __future__ import annotations

import ast
import builtins
import difflib
import functools
import io
import itertools
import tokenize
from collections import Counter
from collections.abc import Sequence
from typing import Any

_KEEP = frozenset(dir(builtins)) | {"f", "self"}


class _Renamer(ast.NodeTransformer):
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _new(self, name: str) -> str:
        if name in _KEEP:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._new(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._new(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._new(node.name)
        node.returns = None
        self.generic_visit(node)
        return node


_ENDS_BLOCK = (ast.Return, ast.Raise, ast.Break, ast.Continue)
_BLOCKS = ("body", "orelse", "finalbody")


class _DeadCode(ast.NodeTransformer):
    """Drops statements no run reaches: after a block's return/raise/break/continue, and the
    branch an `if` on a constant never takes."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for field in _BLOCKS:
            block = getattr(node, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                setattr(
                    node, field, self._block(block) or ([ast.Pass()] if field == "body" else [])
                )
        return node

    @staticmethod
    def _block(stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in stmts:
            if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Constant):
                out.extend(
                    s
                    for s in (stmt.body if stmt.test.value else stmt.orelse)
                    if not isinstance(s, ast.Pass)
                )
            else:
                out.append(stmt)
        for n, stmt in enumerate(out):
            if isinstance(stmt, _ENDS_BLOCK):
                return out[: n + 1]
        return out


def normalize_program(source: str) -> str:
    """Canonical text of a program: identifiers renamed in order of use, dead code dropped,
    layout by ast.unparse.

    A program that does not parse is returned with whitespace collapsed (it is still a string
    that equals another spelling of the same text).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return " ".join(source.split())
    return ast.unparse(_Renamer().visit(_DeadCode().visit(tree)))


class _Blank(ast.NodeTransformer):
    """Every number and string constant to one placeholder (booleans and None kept)."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, (bool, type(None), type(...))):
            return node
        return ast.copy_location(ast.Name(id="C", ctx=ast.Load()), node)


@functools.lru_cache(maxsize=1 << 16)
def program_shape(source: str) -> str:
    """`normalize_program` with numbers and strings blanked: a program family's one text."""
    normalized = normalize_program(source)
    try:
        tree = ast.parse(normalized)
    except (SyntaxError, ValueError):
        return normalized
    return ast.unparse(_Blank().visit(tree))


def _tokens(normalized: str) -> list[str]:
    try:
        return [
            t.string
            for t in tokenize.generate_tokens(io.StringIO(normalized).readline)
            if t.string.strip()
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return normalized.split()


def similarity(a: str, b: str) -> float:
    """Token-level similarity of two programs after normalisation, in [0, 1] (1: same text)."""
    ta, tb = _tokens(normalize_program(a)), _tokens(normalize_program(b))
    if not ta and not tb:
        return 1.0
    return difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio()


def mean_pairwise_similarity(programs: Sequence[str]) -> float:
    """Mean `similarity` over all pairs; 0.0 with fewer than two programs (nothing to compare)."""
    pairs = list(itertools.combinations(programs, 2))
    if not pairs:
        return 0.0
    return float(sum(similarity(a, b) for a, b in pairs) / len(pairs))


class ProgramCensus:
    """Counts of normalised valid programs proposed so far, per task type."""

    def __init__(self, counts: dict[str, dict[str, int]] | None = None):
        self.counts: dict[str, Counter] = {k: Counter(v) for k, v in (counts or {}).items()}

    def add(self, task_type: str, programs: Sequence[str]) -> None:
        c = self.counts.setdefault(task_type, Counter())
        c.update(normalize_program(p) for p in programs)

    def distinct_fraction(self, task_type: str | None = None) -> float:
        """Distinct programs / valid proposals (of one type, or all); 0.0 before any."""
        counters = (
            list(self.counts.values())
            if task_type is None
            else [self.counts.get(task_type, Counter())]
        )
        total = sum(sum(c.values()) for c in counters)
        distinct = len(set().union(*[set(c) for c in counters])) if counters else 0
        return distinct / total if total else 0.0

    def to_state(self) -> dict[str, Any]:
        return {"counts": {k: dict(v) for k, v in self.counts.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> ProgramCensus:
        return cls((state or {}).get("counts"))


def diversity_penalties(
    programs: Sequence[str], pool: Sequence[str], weight: float, threshold: float
) -> list[float]:
    """Penalty of each of a step's valid programs (of one task type), to subtract from its reward.

    Args:
      programs: the step's valid programs of one type.
      pool: earlier programs to compare with as well (e.g. the newest buffer entries).
      weight: the penalty of a program similar to everything it is compared with (0: off).
      threshold: similarity at or above which two programs count as the same cluster.
    """
    if weight == 0.0:
        return [0.0] * len(programs)
    out = []
    for i, p in enumerate(programs):
        others = [q for j, q in enumerate(programs) if j != i] + list(pool)
        if not others:
            out.append(0.0)
            continue
        close = sum(similarity(p, q) >= threshold for q in others)
        out.append(weight * close / len(others))
    return out


def novelty_factors(programs: Sequence[str], earlier: Sequence[str], decay: float) -> list[float]:
    """The factor each of a step's valid programs (of one type) scales its reward by.

    Args:
      programs: the step's valid programs of one type.
      earlier: the programs proposed before this step (e.g. the type's whole buffer).
      decay: how fast a repeated shape loses its reward (0: off, every factor 1).

    Returns:
      [len(programs)] factors 1 / (1 + decay * n), n = programs of the same `program_shape`
      among `earlier` and the step's other programs.
    """
    if decay == 0.0:
        return [1.0] * len(programs)
    shapes = [program_shape(p) for p in programs]
    seen = Counter(program_shape(p) for p in earlier)
    here = Counter(shapes)
    return [1.0 / (1.0 + decay * (seen[sh] + here[sh] - 1)) for sh in shapes]


def step_diversity(
    task_types: Sequence[Any],
    items: Sequence[tuple[Any, str, str | None]],
    episodes: Sequence[Any],
    verdicts: Sequence[Any],
    buffers: dict[Any, Any],
    weight: float,
    threshold: float,
    pool_size: int = 64,
    novelty_decay: float = 0.0,
    novelty_penalty: float = 0.0,
) -> dict[str, float]:
    """Per triplet type: the step's mean pairwise similarity; the options' rewards when on.

    Args:
      task_types: the run's task types (`TaskType`); induction is skipped (its programs are
        drawn from the buffers, not written by the proposer).
      items, episodes, verdicts: the step's proposals (type, prompt, given program), proposer
        episodes (`.reward` and `.verdict` are updated in place for valid ones) and validations.
      buffers: the task buffers; the newest `pool_size` programs of each type join the pool.
      weight, threshold: see `diversity_penalties` (weight 0: the paper's reward, untouched).
      novelty_decay: see `novelty_factors` (0: off); applied after the penalty, to positive
        rewards only (an invalid proposal's or an unlearnable task's reward is kept).
      novelty_penalty: w; with novelty_decay > 0, every valid proposal then also loses
        w x (1 - its factor) (0: repeats only earn less).
    """
    out: dict[str, float] = {}
    for t in task_types:
        if t.value == "code_f":
            continue
        idx = [
            i
            for i, (tt, _, _) in enumerate(items)
            if tt is t and verdicts[i] is not None and verdicts[i].valid
        ]
        programs = [verdicts[i].code for i in idx]
        out[f"{t.value}/propose/similarity"] = mean_pairwise_similarity(programs)
        if weight and programs:
            pool = [task.program for task in buffers[t].tasks[-pool_size:]]
            for i, pen in zip(
                idx, diversity_penalties(programs, pool, weight, threshold), strict=True
            ):
                episodes[i].reward -= pen
                episodes[i].verdict += f", diversity penalty {pen:.2f}"
        if novelty_decay and programs:
            earlier = [task.program for task in buffers[t].tasks]
            factors = novelty_factors(programs, earlier, novelty_decay)
            out[f"{t.value}/propose/novelty_factor"] = float(sum(factors) / len(factors))
            for i, fac in zip(idx, factors, strict=True):
                if episodes[i].reward > 0:
                    episodes[i].reward *= fac
                episodes[i].reward -= novelty_penalty * (1.0 - fac)
                if fac < 1.0:
                    episodes[i].verdict += f", novelty x{fac:.2f}"
    return out
