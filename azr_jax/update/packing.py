"""Packed update batches: several episodes share one row, so short responses stop paying for the
longest row. Host side, numpy only; the result is a `PGBatch` the jitted step takes as it is.

An episode is (prompt ids, response ids, the sampler's log-probs of the response, advantage,
group id, reward). Each row of the packed batch is a run of whole episodes, each laid out as
`[prompt | response]` with no padding between them, then padding to the row length:

    tokens       [R, L] int32    the episodes back to back, then `pad_id`
    attn_mask    [R, L] bool     real tokens
    loss_mask    [R, L] bool     response tokens
    segment_ids  [R, L] int32    k on the row's k-th episode (1, 2, ...), 0 on padding
    positions    [R, L] int32    0, 1, ... restarting at each episode's first token
    old_logprobs [R, L] float32  the sampler's log-probs on the response tokens, else 0
    logprob_index [R, N] int32   the row's response positions, then L (N: see bucket_rows)
    advantages / group_ids / rewards  [R, S]  slot k - 1 = segment k; empty slots 0 / -1 / 0
                                              (S: the most episodes in a row, a power of two)

The model attends only within a segment (`azr_jax.model.transformer`), so each episode's
log-probs equal those of the same episode in a row of its own, and `pg_loss` / `train_step`
aggregate per episode: the loss in every aggregation mode, its gradient and the metrics equal
the padded batch's (`tests/update/test_packing.py`).

Placement is first-fit decreasing: episodes sorted by length (longest first, ties by index)
each go to the first row with room, a new row when none has. The LM head runs on N positions
of every row (N from the row with the most response tokens), so when holding every row to the
longest response's bucket of response tokens packs into no more rows, that packing is used. Row length L is the caller's
(`row_length`; the trainer uses the padded layout's row length capped by the config's prompt +
response cap, so a packed batch has fewer rows than the padded one and never longer ones).
Rows are then padded with empty rows to a multiple of `row_multiple` (micro-batches x the
mesh's data x fsdp: every device gets whole rows of every micro-batch), and with
`bucket_rows` further up to the next size u * {1, 1.5} * 2^k (u = row_multiple), so a run
compiles the step for a handful of row counts, at most a third of them empty.

Legend: E episodes, R packed rows, L row length, S episode slots per row, N scored positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from azr_jax.update.pg_loss import PGBatch


def _pow2(n: int) -> int:
    """The smallest power of two >= max(n, 1)."""
    return 1 << max(n - 1, 0).bit_length()


def bucket_rows(rows: int, multiple: int) -> int:
    """The smallest u * m >= rows with m in {1, 2, 3, 4, 6, 8, 12, ...} (u = multiple): a few
    sizes per octave, at most a third of the result padding (also used for N, positions
    scored per row)."""
    units = -(-max(rows, 1) // multiple)
    p = _pow2(units)  # units lies in (p / 2, p]
    m = 3 * p // 4 if p >= 4 and units <= 3 * p // 4 else p
    return m * multiple


def first_fit_decreasing(
    lengths: Sequence[int],
    row_length: int,
    scored: Sequence[int] | None = None,
    max_scored: int | None = None,
) -> list[list[int]]:
    """Episode indices per row: first-fit decreasing bin packing of `lengths` into `row_length`.

    With `scored` (per episode, e.g. response tokens) and `max_scored`, a row also holds at most
    `max_scored` of those. Within a row, episodes keep the order they were placed in (longest
    first).
    """
    too_long = [i for i, n in enumerate(lengths) if n > row_length]
    if too_long:
        i = too_long[0]
        raise ValueError(
            f"episode {i} has {lengths[i]} tokens (prompt + response), more than the packed row "
            f"length {row_length}; pass a larger row_length (the prompt + response cap)"
        )
    if scored is None:
        scored, max_scored = [0] * len(lengths), 0
    elif max_scored is None or max(scored, default=0) > max_scored:
        raise ValueError(f"max_scored={max_scored} must be >= every episode's scored count")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    score_room: list[int] = []
    for i in order:
        n, m = lengths[i], scored[i]
        for r, free in enumerate(room):
            if n <= free and m <= score_room[r]:
                rows[r].append(i)
                room[r] -= n
                score_room[r] -= m
                break
        else:
            rows.append([i])
            room.append(row_length - n)
            score_room.append(max_scored - m)
    return rows


def pack_episodes(
    prompts: Sequence[np.ndarray],  # E x [p_e] int32
    responses: Sequence[np.ndarray],  # E x [r_e] int32
    logprobs: Sequence[np.ndarray],  # E x [r_e] float32: the sampler's
    advantages: np.ndarray,  # [E] float32
    group_ids: np.ndarray,  # [E] int32
    rewards: np.ndarray,  # [E] float32
    *,
    pad_id: int,
    row_length: int,
    row_multiple: int = 1,
    bucket: bool = True,
) -> PGBatch:
    """Packs E episodes into R rows of `row_length` tokens (see the module docstring).

    Args:
      prompts, responses, logprobs: per episode, without padding; a prompt is never empty.
      advantages, group_ids, rewards: [E] per episode.
      pad_id: the token id of padding.
      row_length: L, tokens per row; every episode's prompt + response must fit.
      row_multiple: R is padded with empty rows to a multiple of it.
      bucket: also round R up to a bucket (u * {1, 1.5} * 2^k, u = row_multiple).

    Returns:
      a packed `PGBatch` with numpy leaves and `response_start=1`.
    """
    e = len(prompts)
    if not e or len(responses) != e or len(logprobs) != e:
        raise ValueError(
            f"pack_episodes: got {e} prompts, {len(responses)} responses and {len(logprobs)} "
            "log-prob arrays; pass one of each per episode (at least one episode)"
        )
    for name, x in (("advantages", advantages), ("group_ids", group_ids), ("rewards", rewards)):
        if np.shape(x) != (e,):
            raise ValueError(f"pack_episodes: {name} has shape {np.shape(x)}, expected ({e},)")
    for i in range(e):
        if len(prompts[i]) == 0:
            raise ValueError(f"episode {i} has an empty prompt (its first token has no context)")
        if len(logprobs[i]) != len(responses[i]):
            raise ValueError(
                f"episode {i}: {len(logprobs[i])} log-probs for {len(responses[i])} response tokens"
            )
    if row_multiple < 1:
        raise ValueError(f"row_multiple={row_multiple} must be >= 1")
    lengths = [len(prompts[i]) + len(responses[i]) for i in range(e)]
    n_resp = [len(r) for r in responses]

    def rows_for(placement):
        if bucket:
            return bucket_rows(len(placement), row_multiple)
        return -(-len(placement) // row_multiple) * row_multiple

    def width_for(placement):  # N: scored positions per row
        most = max(sum(n_resp[i] for i in row) for row in placement)
        return min(bucket_rows(most, 1), row_length)

    placement = first_fit_decreasing(lengths, row_length)
    n_rows, width = rows_for(placement), width_for(placement)
    # The LM head runs on N positions of every row, N set by the row with the most response
    # tokens: when a packing that holds each row to the longest response's bucket needs no
    # more rows, take it (the same model work, less of the head's).
    tight = min(bucket_rows(max(n_resp), 1), row_length)
    if width > tight:
        alt = first_fit_decreasing(lengths, row_length, n_resp, tight)
        if rows_for(alt) <= n_rows:
            placement, width = alt, width_for(alt)
    slots = _pow2(max(len(r) for r in placement))

    shape = (n_rows, row_length)
    tokens = np.full(shape, pad_id, np.int32)
    attn = np.zeros(shape, bool)
    loss = np.zeros(shape, bool)
    seg = np.zeros(shape, np.int32)
    pos = np.zeros(shape, np.int32)
    old = np.zeros(shape, np.float32)
    index = np.full((n_rows, width), row_length, np.int32)
    adv = np.zeros((n_rows, slots), np.float32)
    gid = np.full((n_rows, slots), -1, np.int32)
    rew = np.zeros((n_rows, slots), np.float32)
    for r, row in enumerate(placement):
        at, n_scored = 0, 0
        for k, i in enumerate(row):
            lp, lr = len(prompts[i]), len(responses[i])
            end = at + lp + lr
            tokens[r, at : at + lp] = prompts[i]
            tokens[r, at + lp : end] = responses[i]
            attn[r, at:end] = True
            loss[r, at + lp : end] = True
            seg[r, at:end] = k + 1
            pos[r, at:end] = np.arange(lp + lr)
            old[r, at + lp : end] = logprobs[i]
            index[r, n_scored : n_scored + lr] = np.arange(at + lp, end)
            adv[r, k], gid[r, k], rew[r, k] = advantages[i], group_ids[i], rewards[i]
            at, n_scored = end, n_scored + lr
    return PGBatch(
        tokens=tokens,
        attn_mask=attn,
        loss_mask=loss,
        advantages=adv,
        old_logprobs=old,
        group_ids=gid,
        rewards=rew,
        response_start=1,
        segment_ids=seg,
        positions=pos,
        logprob_index=index,
    )


def packed_length(prompt_lengths: Sequence[int], response_lengths: Sequence[int], cap: int) -> int:
    """The trainer's row length: the padded layout's (prompt and response widths each bucketed to
    a power of two >= 16), capped at `cap` (the config's prompt + response cap), never shorter
    than the longest episode."""

    def bucket(n: int) -> int:
        return max(16, _pow2(n))

    padded = bucket(max(prompt_lengths)) + bucket(max(max(response_lengths), 1))
    longest = max(p + r for p, r in zip(prompt_lengths, response_lengths, strict=True))
    return max(min(padded, cap), longest)
