"""One self-play step of AZR (AZR_SPEC section 1), phase by phase, reading top to bottom.

    propose   -> the policy writes tasks for each task type            (device)
    validate  -> the executor checks every proposal                    (host, overlaps `solve`)
    solve     -> the policy answers tasks drawn from the buffers       (device)
    grade     -> the executor checks every answer                      (host, overlaps `estimate`)
    estimate  -> n solver rollouts per valid proposal: learnability    (device + host)
    reward    -> rewards of the six (task type, role) groups, TRR++ advantages
    (update   -> one policy-gradient step over all six groups: trainer.py)

Host work runs on one background thread while the device samples, so the executor checks batch
i while the device generates the next; `device_wait_s` is how long the device sat idle waiting
for the host. This module never touches parameters except through `Policy.generate`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from azr_jax.executor.grading import grade_abduction_many, grade_deduction, grade_induction_many
from azr_jax.executor.literals import LiteralError, parse_literal
from azr_jax.executor.pool import ExecutorPool
from azr_jax.executor.validation import Proposal, Validation, validate_many
from azr_jax.selfplay import advantages as adv_lib
from azr_jax.selfplay import diversity, parsing, prompts, rewards
from azr_jax.selfplay.buffers import TaskBuffer, sample_induction_programs
from azr_jax.selfplay.tasks import InductionTask, Role, TaskType, Triplet, group_id, group_name

ANSWER_STOP = "</answer>"


@dataclasses.dataclass
class Episode:
    """One sampled response, trained on (or, for difficulty rollouts, only graded)."""

    group: int  # (task type, role) group id in [0, 6)
    prompt_ids: np.ndarray  # [p] int32 real prompt tokens (no padding)
    response_ids: np.ndarray  # [r] int32 generated tokens (EOS / stop token included)
    logprobs: np.ndarray  # [r] float32 the sampler's log-probs of response_ids
    prompt: str
    response: str
    reward: float = 0.0
    verdict: str = ""  # human-readable outcome for the samples log


@dataclasses.dataclass(frozen=True)
class SelfPlaySettings:
    """The knobs of one step (from the run config; see configs/default.py for meanings)."""

    task_types: tuple[TaskType, ...]
    batch_size: int
    n_rollouts: int
    num_references: int
    num_inputs: int
    max_recent: int
    extreme_reward: float
    token_weighted: bool
    banned_modules: tuple[str, ...]
    diversity_penalty: float = 0.0  # 0: the paper's proposer reward (see diversity.py)
    diversity_threshold: float = 0.9
    novelty_decay: float = 0.0  # 0: off (see diversity.novelty_factors)
    novelty_penalty: float = 0.0  # with novelty_decay: a repeat also loses this x (1 - factor)


class Policy:
    """What the loop needs from the model: text in, sampled episodes out (see trainer.py)."""

    def generate(self, texts: Sequence[str], n: int, phase: str) -> list[list[tuple]]:
        """For each text, n tuples (prompt_ids, response_ids, logprobs, response_text)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class HostShare:
    """How host-side checks split over the hosts of a multi-host run (see distributed.py).

    `mine(n)` gives the indices of this host's share of n jobs; `gather(local)` (a collective,
    called on the main thread by every host in the same order) returns everyone's results, in
    order. The default is one host doing everything.
    """

    mine: Callable[[int], Sequence[int]] = lambda n: range(n)
    gather: Callable[[list], list] = list


@dataclasses.dataclass
class StepResult:
    episodes: list[Episode]  # the 6 groups' trained episodes
    new_tasks: dict[TaskType, list]  # valid proposals, to enter the buffers
    metrics: dict[str, float]


class Timer:
    """Seconds per phase, and how long the device waited on host work."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.device_wait = 0.0

    def phase(self, name: str, fn: Callable, *args: Any) -> Any:
        t = time.perf_counter()
        out = fn(*args)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
        return out

    def host(self, pool: ThreadPoolExecutor, name: str, fn: Callable, *args: Any) -> Future:
        """Runs `fn` on the host thread, recording its own duration as `<name>` (host seconds)."""
        return pool.submit(self.phase, name, fn, *args)

    def wait(self, name: str, fut: Future) -> Any:
        t = time.perf_counter()
        out = fut.result()
        waited = time.perf_counter() - t
        self.device_wait += waited
        self.seconds[name + "_wait"] = self.seconds.get(name + "_wait", 0.0) + waited
        return out


# ----------------------------------------------------------------------------- propose
def propose_prompts(
    s: SelfPlaySettings, buffers: dict[TaskType, TaskBuffer]
) -> list[tuple[TaskType, str, str | None]]:
    """(task type, prompt, given program for induction) for every proposal of this step."""
    out = []
    for t in s.task_types:
        for _ in range(s.batch_size):
            if t is TaskType.INDUCTION:
                sources = [buffers[TaskType.DEDUCTION], buffers[TaskType.ABDUCTION]]
                program = sample_induction_programs(sources, 1, buffers[t].rng)[0]
                text = prompts.induction_proposer_prompt(
                    program,
                    s.banned_modules,
                    num_inputs=s.num_inputs,
                    num_visible=s.num_inputs // 2,
                )
                out.append((t, text, program))
            else:
                refs = buffers[t].sample_references(s.num_references)
                out.append((t, prompts.triplet_proposer_prompt(t, refs, s.banned_modules), None))
    return out


def _episodes(group: int, texts: Sequence[str], samples: list[list[tuple]]) -> list[Episode]:
    return [
        Episode(group, p_ids, r_ids, lps, text, response)
        for text, rows in zip(texts, samples, strict=True)
        for p_ids, r_ids, lps, response in rows
    ]


def parse_proposals(
    s: SelfPlaySettings, items: list[tuple[TaskType, str, str | None]], episodes: list[Episode]
) -> list[tuple[parsing.Proposal, Proposal | None]]:
    """Each proposer episode's parse and, when well-formed, the executor job that checks it."""
    out = []
    for (t, _, program), ep in zip(items, episodes, strict=True):
        parsed = parsing.parse_proposer_response(t, ep.response, num_inputs=s.num_inputs)
        if not parsed.well_formed:
            out.append((parsed, None))
        elif t is TaskType.INDUCTION:
            out.append((parsed, Proposal(program, list(parsed.inputs), parsed.message, True)))
        else:
            out.append((parsed, Proposal(parsed.program, list(parsed.inputs))))
    return out


def validate(pool: ExecutorPool, jobs: list[Proposal | None]) -> list[Validation | None]:
    todo = [j for j in jobs if j is not None]
    done = iter(validate_many(pool, todo) if todo else [])
    return [None if j is None else next(done) for j in jobs]


def to_task(t: TaskType, job: Proposal, v: Validation, num_visible: int):
    if t is TaskType.INDUCTION:
        return InductionTask(v.code, tuple(job.inputs), tuple(v.outputs), job.message, num_visible)
    return Triplet(v.code, job.inputs[0], v.outputs[0])


# ----------------------------------------------------------------------------- solve and grade
def solve_tasks(
    s: SelfPlaySettings, buffers: dict[TaskType, TaskBuffer], step: int
) -> list[tuple[TaskType, Any]]:
    """The tasks solved (and trained on) this step: newest of the previous step first."""
    return [
        (t, task)
        for t in s.task_types
        for task in buffers[t].sample_solve_batch(s.batch_size, step - 1, s.max_recent)
    ]


def grade(
    pool: ExecutorPool, items: Sequence[tuple[TaskType, Any]], responses: Sequence[str]
) -> list[tuple[bool, bool, str]]:
    """(well_formed, correct, verdict) for each solver response to its task."""
    out: list[tuple[bool, bool, str] | None] = [None] * len(items)
    abd, ind = [], []
    for i, ((t, task), response) in enumerate(zip(items, responses, strict=True)):
        ans = parsing.parse_solver_response(t, response)
        if not ans.well_formed:
            out[i] = (False, False, f"format: {ans.error}")
        elif t is TaskType.DEDUCTION:
            ok = _literal(ans.answer)
            correct = ok and grade_deduction(ans.answer, task.output)
            out[i] = (
                ok,
                correct,
                "correct" if correct else ("wrong" if ok else "format: not a literal"),
            )
        elif t is TaskType.ABDUCTION:
            abd.append((i, (task.program, ans.answer, task.output)))
        else:
            ind.append((i, (ans.answer, list(task.hidden_pairs))))
    for idx, verdicts in ((abd, grade_abduction_many), (ind, grade_induction_many)):
        if idx:
            results = verdicts(pool, [item for _, item in idx])
            for (i, _), correct in zip(idx, results, strict=True):
                out[i] = (True, correct, "correct" if correct else "wrong")
    return out  # type: ignore[return-value]


def _literal(text: str) -> bool:
    try:
        parse_literal(text, max_chars=parsing.MAX_ANSWER_CHARS)
        return True
    except LiteralError:
        return False


# ----------------------------------------------------------------------------- one step
def run_step(
    s: SelfPlaySettings,
    policy: Policy,
    pool: ExecutorPool,
    buffers: dict[TaskType, TaskBuffer],
    step: int,
    host: ThreadPoolExecutor,
    share: HostShare = HostShare(),
) -> StepResult:
    timer = Timer()

    # 1. propose (device), then validate on the host while the device solves.
    items = propose_prompts(s, buffers)
    texts = [text for _, text, _ in items]
    samples = timer.phase("propose", policy.generate, texts, 1, "propose")
    prop_eps = [
        _episodes(group_id(t, Role.PROPOSER), [text], [rows])[0]
        for (t, text, _), rows in zip(items, samples, strict=True)
    ]
    parsed = parse_proposals(s, items, prop_eps)
    jobs = [job for _, job in parsed]
    mine_v = list(share.mine(len(jobs)))  # this host validates its share of the proposals
    validation = timer.host(host, "validate", validate, pool, [jobs[i] for i in mine_v])

    # 2. solve tasks from the buffers (device), grade on the host while the device estimates.
    solve_items = solve_tasks(s, buffers, step)
    solve_texts = [prompts.solver_prompt(t, task) for t, task in solve_items]
    solve_samples = timer.phase("solve", policy.generate, solve_texts, 1, "solve")
    solve_eps = [
        _episodes(group_id(t, Role.SOLVER), [text], [rows])[0]
        for (t, _), text, rows in zip(solve_items, solve_texts, solve_samples, strict=True)
    ]
    mine_g = list(share.mine(len(solve_items)))
    grading = timer.host(
        host,
        "grade",
        grade,
        pool,
        [solve_items[i] for i in mine_g],
        [solve_eps[i].response for i in mine_g],
    )

    # 3. difficulty of each valid proposal: n solver rollouts (not trained on).
    local = [
        None if v is None else dataclasses.asdict(v) for v in timer.wait("validate", validation)
    ]
    verdicts = [None if v is None else Validation(**v) for v in share.gather(local)]
    new_tasks: dict[TaskType, list] = {t: [] for t in s.task_types}
    valid_idx = []
    for i, ((t, _, _), (_, job), v) in enumerate(zip(items, parsed, verdicts, strict=True)):
        if v is not None and v.valid:
            new_tasks[t].append(to_task(t, job, v, s.num_inputs // 2))
            valid_idx.append(i)
    est_items = [
        (items[i][0], new_tasks[items[i][0]][k]) for k, i in _per_type_index(items, valid_idx)
    ]
    solved: dict[int, list[bool]] = {}
    if est_items:
        est_texts = [prompts.solver_prompt(t, task) for t, task in est_items]
        est_samples = timer.phase("estimate", policy.generate, est_texts, s.n_rollouts, "estimate")
        flat_items = [it for it in est_items for _ in range(s.n_rollouts)]
        flat_resp = [row[3] for rows in est_samples for row in rows]
        mine_e = list(share.mine(len(flat_items)))
        local_e = timer.phase(
            "estimate_grade",
            grade,
            pool,
            [flat_items[i] for i in mine_e],
            [flat_resp[i] for i in mine_e],
        )
        est_grades = [tuple(g) for g in share.gather([list(g) for g in local_e])]
        for j, i in enumerate(valid_idx):
            chunk = est_grades[j * s.n_rollouts : (j + 1) * s.n_rollouts]
            solved[i] = [c for _, c, _ in chunk]

    # 4. rewards of both roles.
    for i, (ep, (p, _), v) in enumerate(zip(prop_eps, parsed, verdicts, strict=True)):
        if not p.well_formed:
            ep.reward, ep.verdict = rewards.INVALID_PROPOSAL, f"format: {p.error}"
        elif not v.valid:
            ep.reward, ep.verdict = rewards.INVALID_PROPOSAL, f"invalid: {v.reason}"
        else:
            ep.reward = rewards.learnability_reward(solved[i], s.extreme_reward)
            ep.verdict = f"valid, solve rate {np.mean(solved[i]):.2f}"
    div = proposal_diversity(s, items, prop_eps, verdicts, buffers)
    solve_grades = [tuple(g) for g in share.gather([list(g) for g in timer.wait("grade", grading)])]
    for ep, (well_formed, correct, verdict) in zip(solve_eps, solve_grades, strict=True):
        ep.reward, ep.verdict = rewards.solver_reward(well_formed, correct), verdict

    episodes = prop_eps + solve_eps
    metrics = step_metrics(s, episodes, prop_eps, verdicts, solve_grades, solve_items)
    metrics.update(div)
    metrics.update({f"time/{k}_s": v for k, v in timer.seconds.items()})
    metrics["time/device_wait_s"] = timer.device_wait
    est_rows = [row for rows in est_samples for row in rows] if est_items else []
    metrics.update(phase_tokens(prop_eps, solve_eps, est_rows))
    return StepResult(episodes, new_tasks, metrics)


def proposal_diversity(s: SelfPlaySettings, items, prop_eps, verdicts, buffers) -> dict[str, float]:
    """The step's diversity metrics; the diversity options' rewards applied to `prop_eps`."""
    return diversity.step_diversity(
        s.task_types,
        items,
        prop_eps,
        verdicts,
        buffers,
        s.diversity_penalty,
        s.diversity_threshold,
        novelty_decay=s.novelty_decay,
        novelty_penalty=s.novelty_penalty,
    )


def phase_tokens(prop_eps, solve_eps, est_rows) -> dict[str, float]:
    """Generated tokens per phase (`tokens/propose`, ...; difficulty rollouts: `estimate`)."""
    return {
        "tokens/propose": float(sum(len(e.response_ids) for e in prop_eps)),
        "tokens/solve": float(sum(len(e.response_ids) for e in solve_eps)),
        "tokens/estimate": float(sum(len(row[1]) for row in est_rows)),
    }


def _per_type_index(items, valid_idx):
    """(index within its type's new-task list, index in items) for each valid proposal."""
    counts: dict[TaskType, int] = {}
    out = []
    for i in valid_idx:
        t = items[i][0]
        out.append((counts.get(t, 0), i))
        counts[t] = counts.get(t, 0) + 1
    return out


def advantages(s: SelfPlaySettings, episodes: Sequence[Episode]) -> np.ndarray:
    """TRR++: rewards normalised within each (task type, role) group. [E] float32."""
    r = np.array([e.reward for e in episodes], np.float32)
    g = np.array([e.group for e in episodes], np.int32)
    lengths = np.array([len(e.response_ids) for e in episodes], np.float32)
    return adv_lib.trr_advantages(r, g, lengths=lengths, token_weighted=s.token_weighted)


def step_metrics(s, episodes, prop_eps, verdicts, solve_grades, solve_items) -> dict[str, float]:
    out: dict[str, float] = {}
    for gid in sorted({e.group for e in episodes}):
        eps = [e for e in episodes if e.group == gid]
        name = group_name(gid)
        out[f"{name}/reward"] = float(np.mean([e.reward for e in eps]))
        out[f"{name}/response_len"] = float(np.mean([len(e.response_ids) for e in eps]))
    for t in s.task_types:
        name = group_name(group_id(t, Role.PROPOSER))
        idx = [i for i, e in enumerate(prop_eps) if e.group == group_id(t, Role.PROPOSER)]
        valid = [verdicts[i] is not None and verdicts[i].valid for i in idx]
        out[f"{name}/valid_rate"] = float(np.mean(valid)) if valid else 0.0
        sname = group_name(group_id(t, Role.SOLVER))
        acc = [c for (tt, _), (_, c, _) in zip(solve_items, solve_grades, strict=True) if tt is t]
        out[f"{sname}/accuracy"] = float(np.mean(acc)) if acc else 0.0
    return out
