"""One self-play step on one queue: every request of the step decodes together, host checks stream.

The same step as `step.run_step` (AZR_SPEC section 1), with the phases as what a request is for
rather than when it runs:

    propose + solve -> all enter the queue at once                         (device)
    validate        -> each proposal, as soon as it is out                  (host, while decoding)
    estimate        -> a valid proposal's n rollouts join the queue at once (device)
    grade           -> each answer as soon as it is out                     (host, while decoding)
    reward          -> as in run_step, once every request and check is in

Order in the queue (`PRIORITY`): proposals first (their checks release more work), then the
difficulty rollouts of valid proposals as they pass, then the solves, which nothing waits on: they
keep the slots full while proposals are being validated and fill the tail behind the last
rollouts. The device only waits on the host when the queue is empty and checks are still running
(`device_wait_s`). A request's tokens depend only on its key, (step, phase, index), never on
when it ran (sampling/engine.py), so the result does not depend on the host's timing. Needs a
policy with `queue()` (trainer.JaxPolicy on the engine) and one host (no HostShare split).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from azr_jax.executor.pool import ExecutorPool
from azr_jax.selfplay import prompts, rewards
from azr_jax.selfplay.buffers import TaskBuffer
from azr_jax.selfplay.step import (
    Episode,
    SelfPlaySettings,
    StepResult,
    _episodes,
    grade,
    parse_proposals,
    proposal_diversity,
    propose_prompts,
    solve_tasks,
    step_metrics,
    to_task,
    validate,
)
from azr_jax.selfplay.tasks import Role, TaskType, group_id

# Which requests the queue serves first (lower first): the phases whose results release more
# work go ahead of the solves, which release none.
PRIORITY = {"propose": 0, "estimate": 1, "solve": 2}


class Queue:
    """What the streaming step needs from the model (trainer.py: the engine's session)."""

    def submit(self, text: str, n: int, phase: str, index: int, priority: int = 0) -> None:
        """n samples of `text`, keyed by (phase, index): the same whenever they are decoded.
        Lower `priority` is decoded first, where the queue can choose."""
        raise NotImplementedError

    def busy(self) -> bool:
        raise NotImplementedError

    def step(self) -> list[tuple[tuple[str, int], list[tuple]]]:
        """Decodes a little; ((phase, index), rows) for every text whose n samples are all out;
        rows as in `Policy.generate`: (prompt_ids, response_ids, logprobs, response_text)."""
        raise NotImplementedError


def run_step_streaming(
    s: SelfPlaySettings,
    policy: Any,  # a step.Policy with queue() -> Queue
    pool: ExecutorPool,
    buffers: dict[TaskType, TaskBuffer],
    step: int,
    host: ThreadPoolExecutor,
) -> StepResult:
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    tokens: dict[str, int] = {"propose": 0, "solve": 0, "estimate": 0}
    device_wait = 0.0

    def timed(name, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
        return out

    # 1. every proposal and every solve of the step enter the queue together.
    items = propose_prompts(s, buffers)
    solve_items = solve_tasks(s, buffers, step)
    solve_texts = [prompts.solver_prompt(t, task) for t, task in solve_items]
    queue = policy.queue()
    for i, (_, text, _) in enumerate(items):
        queue.submit(text, 1, "propose", i, PRIORITY["propose"])
    for i, text in enumerate(solve_texts):
        queue.submit(text, 1, "solve", i, PRIORITY["solve"])

    prop_eps: list[Episode | None] = [None] * len(items)
    parsed: list[Any] = [None] * len(items)
    verdicts: list[Any] = [None] * len(items)
    tasks: dict[int, Any] = {}  # proposal index -> its task, once valid
    solved: dict[int, list[bool]] = {}
    solve_eps: list[Episode | None] = [None] * len(solve_items)
    solve_grades: list[Any] = [None] * len(solve_items)
    checks: list[tuple[str, list[int], list[int], Future]] = []  # host checks in flight

    # Host checks wait in `pending` and go to the host in one call per kind whenever it is free:
    # the executor pool runs a call's programs side by side, so one call a request would leave it
    # running one program at a time while the queue decodes the next ones.
    pending: dict[str, list[tuple[int, Any, list[str]]]] = {
        "validate": [], "grade": [], "estimate_grade": []
    }  # fmt: skip

    def on_decoded(phase: str, i: int, rows: list[tuple]) -> None:
        """2. a finished request goes to its host check."""
        tokens[phase] += sum(len(r[1]) for r in rows)
        if phase == "propose":
            t, text, _ = items[i]
            prop_eps[i] = _episodes(group_id(t, Role.PROPOSER), [text], [rows])[0]
            parsed[i] = parse_proposals(s, [items[i]], [prop_eps[i]])[0]
            if parsed[i][1] is not None:
                pending["validate"].append((i, parsed[i][1], []))
        elif phase == "solve":
            t = solve_items[i][0]
            solve_eps[i] = _episodes(group_id(t, Role.SOLVER), [solve_texts[i]], [rows])[0]
            pending["grade"].append((i, solve_items[i], [solve_eps[i].response]))
        else:  # estimate: the n rollouts of proposal i (graded, not trained on)
            item = (items[i][0], tasks[i])
            pending["estimate_grade"].append((i, item, [r[3] for r in rows]))

    def flush() -> None:
        """Every kind's waiting checks, one call each, once the host has nothing in flight."""
        if checks:
            return
        for kind, todo in pending.items():
            if not todo:
                continue
            idx = [i for i, _, _ in todo]
            if kind == "validate":
                args = ([job for _, job, _ in todo],)
            else:  # one (task, response) pair per response
                args = (
                    [item for _, item, texts in todo for _ in texts],
                    [text for _, _, texts in todo for text in texts],
                )
            sizes = [max(len(texts), 1) for _, _, texts in todo]
            fn = validate if kind == "validate" else grade
            checks.append((kind, idx, sizes, host.submit(timed, kind, fn, pool, *args)))
            todo.clear()

    def on_checked(kind: str, i: int, result: list) -> None:
        """3. a valid proposal's difficulty rollouts join the queue at once."""
        if kind == "validate":
            verdicts[i] = result[0]
            if verdicts[i].valid:
                t, job = items[i][0], parsed[i][1]
                tasks[i] = to_task(t, job, verdicts[i], s.num_inputs // 2)
                text = prompts.solver_prompt(t, tasks[i])
                queue.submit(text, s.n_rollouts, "estimate", i, PRIORITY["estimate"])
        elif kind == "grade":
            solve_grades[i] = tuple(result[0])
        else:
            solved[i] = [c for _, c, _ in result]

    while queue.busy() or checks or any(pending.values()):
        if queue.busy():
            for (phase, i), rows in timed("decode", queue.step):
                on_decoded(phase, i, rows)
        elif checks:  # nothing to decode: the device waits on the host
            t = time.perf_counter()
            checks[0][3].result()
            device_wait += time.perf_counter() - t
        for c in [c for c in checks if c[3].done()]:
            checks.remove(c)
            kind, idx, sizes, result = c[0], c[1], c[2], c[3].result()
            start = 0
            for i, n in zip(idx, sizes, strict=True):
                on_checked(kind, i, result[start : start + n])
                start += n
        flush()

    # 4. rewards of both roles (as in step.run_step).
    new_tasks: dict[TaskType, list] = {t: [] for t in s.task_types}
    for i, ep in enumerate(prop_eps):
        p, v = parsed[i][0], verdicts[i]
        if not p.well_formed:
            ep.reward, ep.verdict = rewards.INVALID_PROPOSAL, f"format: {p.error}"
        elif not v.valid:
            ep.reward, ep.verdict = rewards.INVALID_PROPOSAL, f"invalid: {v.reason}"
        else:
            new_tasks[items[i][0]].append(tasks[i])
            ep.reward = rewards.learnability_reward(solved[i], s.extreme_reward)
            ep.verdict = f"valid, solve rate {np.mean(solved[i]):.2f}"
    div = proposal_diversity(s, items, prop_eps, verdicts, buffers)
    for ep, (well_formed, correct, verdict) in zip(solve_eps, solve_grades, strict=True):
        ep.reward, ep.verdict = rewards.solver_reward(well_formed, correct), verdict

    episodes = prop_eps + solve_eps
    metrics = step_metrics(s, episodes, prop_eps, verdicts, solve_grades, solve_items)
    metrics.update(div)
    metrics.update({f"time/{k}_s": v for k, v in seconds.items()})
    metrics.update({f"tokens/{k}": float(v) for k, v in tokens.items()})
    metrics["time/rollout_s"] = time.perf_counter() - t_start
    metrics["time/device_wait_s"] = device_wait
    return StepResult(episodes, new_tasks, metrics)
