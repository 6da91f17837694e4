"""Proof that it learns: TRR++ teaches a tiny RANDOM model a deduction task family from scratch.

    python scripts/rl_sanity.py                        # the full run (a few minutes on 2 cores)
    python scripts/rl_sanity.py --steps 250 --seed 1   # shorter

Everything on the path is the project's own: the compiled sampler (`Generator` / `JaxPolicy`),
the executor (gold outputs by running every program in the sandbox with `validate_many`;
answers graded by `selfplay.grade`, i.e. `parsing` + the type-strict `grade_deduction`), the
solver reward of AZR_SPEC section 3, TRR++ advantages and the jitted train step. Only the model
is new: a 2-layer Qwen2-shaped transformer drawn at random (`model.init_params`) over a
character-level tokenizer built here, so nothing is known at the start.

Task family: one program, `def f(a, b, c): return b`, on three-digit inputs; the solver
predicts the output. Prompt (compact, one character per token, the think block and `<answer>`
pre-filled, so a well-formed response is one digit then `</answer>`):

    f(a,b,c)=b;f(4,1,7)=<think></think><answer>        -> 1</answer>

The grader sees the assistant turn: the pre-filled `<think></think><answer>` followed by the
completion. Ten possible answers: a constant answer (format alone) scores about 0.1, so held-out
accuracy above 0.5 needs the input read. Held-out tasks use input triples that never occur in
training. Entropy bonus 0.05 (AZR: 0.001): with less, the random policy collapses onto one
constant digit while learning the format and never recovers. Not learned within this budget
(tried, 300-500 steps): a family of several programs (return a / b / c, or (a+1)%10 etc.): the
policy stayed near chance (the same model trained SUPERVISED on it reaches only ~0.4 after 300
steps of 128: it is hard for this model, not only for RL).

Last line: JSON (initial/final held-out accuracy and mean solver reward, steps, seconds, ...).
Records go to `--out` (metrics.jsonl, samples/, plots/rl_sanity.png).
"""

import json
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("seed", 0, "Seed of the model init, the task split and the sampling keys.")
flags.DEFINE_integer("steps", 500, "Policy updates.")
flags.DEFINE_integer("batch", 128, "Solver rollouts per update (one prompt each, one group).")
flags.DEFINE_float("lr", 2e-3, "AdamW learning rate (constant).")
flags.DEFINE_integer("eval_every", 25, "Greedy held-out evaluation every this many steps.")
flags.DEFINE_integer("eval_tasks", 128, "Held-out tasks (program, input) evaluated greedily.")
flags.DEFINE_integer("train_tasks", 512, "Training tasks drawn from the non-held-out inputs.")
flags.DEFINE_float(
    "entropy_coef", 0.05, "Entropy bonus (AZR: 0.001; from scratch the policy collapses with it)."
)
flags.DEFINE_string("out", "runs/rl_sanity", "Run directory (metrics, samples, plot).")
FLAGS = flags.FLAGS

# What f(a, b, c) returns. One program: the variants that pick or shift one of several
# arguments (a, b, c, (a+1)%10, ...) did not learn within the budget (see the docstring).
PROGRAMS = ("b",)
HELD_OUT_INPUTS = 200  # of the 1000 input triples, never trained on
PREFILL = "<think></think><answer>"
EOS, PAD, UNK = "<|endoftext|>", "<|pad|>", "<unk>"
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
CHARS = "0123456789abcf(),;=+%"
MAX_NEW_TOKENS = 4  # a digit, </answer>, and room to ramble (malformed)


# ----------------------------------------------------------------------------- tokenizer, model
def make_tokenizer():
    """One token per character of CHARS, plus the four tags and EOS / PAD / UNK."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([PAD, EOS, UNK, *TAGS, *CHARS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, unk_token=UNK
    )
    fast.add_tokens(list(TAGS))  # already in the vocab: now matched whole, before the split
    return fast


def model_config(vocab_size: int):
    from azr_jax.model.config import ModelConfig

    return ModelConfig(
        family="qwen2",
        vocab_size=vocab_size,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=4,
        head_dim=16,
        intermediate_size=256,
        norm_eps=1e-6,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        attention_bias=True,
    )


# ----------------------------------------------------------------------------- tasks
def program_source(expr: str) -> str:
    return f"def f(a, b, c):\n    return {expr}"


def prompt_text(expr: str, args: tuple[int, int, int]) -> str:
    return f"f(a,b,c)={expr};f({','.join(map(str, args))})={PREFILL}"


def split_tasks(seed: int, n_train: int, n_eval: int):
    """(train, held-out) lists of (expr, args); held-out inputs never occur in training."""
    import numpy as np

    rng = np.random.default_rng(seed)
    triples = [(a, b, c) for a in range(10) for b in range(10) for c in range(10)]
    order = rng.permutation(len(triples))
    held = [triples[i] for i in order[:HELD_OUT_INPUTS]]
    seen = [triples[i] for i in order[HELD_OUT_INPUTS:]]

    def draw(inputs, n):
        combos = [(e, t) for e in PROGRAMS for t in inputs]
        return [combos[i] for i in rng.choice(len(combos), n, replace=False)]

    return draw(seen, n_train), draw(held, n_eval)


def with_gold(pool, tasks):
    """(prompt, Triplet) per task; the output is computed by running the program in the sandbox."""
    from azr_jax.executor.validation import Proposal, validate_many
    from azr_jax.selfplay.tasks import Triplet

    jobs = [Proposal(program_source(e), [", ".join(map(str, t))]) for e, t in tasks]
    out = []
    for (e, t), job, v in zip(tasks, jobs, validate_many(pool, jobs), strict=True):
        if not v.valid:
            raise RuntimeError(f"task program {job.code!r} on {job.inputs} is invalid: {v.reason}")
        out.append((prompt_text(e, t), Triplet(v.code, job.inputs[0], v.outputs[0])))
    return out


# ----------------------------------------------------------------------------- grading
def score(pool, triplets, completions):
    """Per-completion (reward, correct, verdict): AZR_SPEC section 3 on the assistant turn."""
    from azr_jax.selfplay import rewards
    from azr_jax.selfplay import step as selfplay
    from azr_jax.selfplay.tasks import TaskType

    items = [(TaskType.DEDUCTION, t) for t in triplets]
    graded = selfplay.grade(pool, items, [PREFILL + c for c in completions])
    return [(rewards.solver_reward(ok, correct), correct, v) for ok, correct, v in graded]


# ----------------------------------------------------------------------------- the run
def main(argv):
    del argv
    t_start = time.perf_counter()
    import jax
    import numpy as np

    from azr_jax.executor.pool import ExecutorPool
    from azr_jax.model import transformer as model_lib
    from azr_jax.parallel import sharding as shd
    from azr_jax.run.records import RunLogger
    from azr_jax.run.trainer import JaxPolicy, greedy_fn, make_batch
    from azr_jax.sampling.generate import Generator
    from azr_jax.sampling.sampler import Sampler
    from azr_jax.sampling.settings import SamplingSettings
    from azr_jax.selfplay import step as selfplay
    from azr_jax.selfplay.advantages import trr_advantages
    from azr_jax.selfplay.tasks import Role, TaskType, group_id
    from azr_jax.update.pg_loss import PGLossConfig
    from azr_jax.update.train_step import TrainHparams, jit_init_state, jit_train_step

    seed = FLAGS.seed
    tokenizer = make_tokenizer()
    eos_id, pad_id = tokenizer.convert_tokens_to_ids([EOS, PAD])
    cfg = model_config(len(tokenizer))
    pool = ExecutorPool(workers=2, hash_seeds=[1000 + seed, 2000 + seed])
    train_tasks, eval_tasks = split_tasks(seed, FLAGS.train_tasks, FLAGS.eval_tasks)
    train, held_out = with_gold(pool, train_tasks), with_gold(pool, eval_tasks)

    # One device (even where XLA_FLAGS fakes several): the numbers do not depend on the host.
    mesh = shd.make_mesh(devices=jax.devices()[:1])
    loss = PGLossConfig(entropy_coef=FLAGS.entropy_coef)
    hp = TrainHparams(loss=loss, lr=FLAGS.lr, weight_decay=0.0)
    state = jit_init_state(cfg, hp, mesh)(model_lib.init_params(cfg, seed))
    step_fn = jit_train_step(cfg, hp, mesh)
    prompt_len = max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p, _ in train)
    sampler = Sampler(cfg, mesh, max_cache_length=prompt_len + MAX_NEW_TOKENS)
    generator = Generator(sampler, tokenizer, prompt_buckets=(prompt_len,))
    settings = SamplingSettings(
        max_new_tokens=MAX_NEW_TOKENS,
        temperature=1.0,
        eos_ids=(eos_id,),
        stop_strings=(TAGS[-1],),
        pad_id=pad_id,
    )
    policy = JaxPolicy(generator, settings, FLAGS.batch, seed)
    group = group_id(TaskType.DEDUCTION, Role.SOLVER)
    task_rng = np.random.default_rng(seed + 1)

    def evaluate(params) -> dict[str, float]:
        texts = greedy_fn(generator, params, settings, FLAGS.eval_tasks)([p for p, _ in held_out])
        graded = score(pool, [t for _, t in held_out], texts)
        return {
            "eval/accuracy": float(np.mean([c for _, c, _ in graded])),
            "eval/reward": float(np.mean([r for r, _, _ in graded])),
            "eval/well_formed": float(np.mean([r > -1 for r, _, _ in graded])),
        }

    out = Path(FLAGS.out)
    logger = RunLogger(out)
    curve = [{"step": 0, **evaluate(state.params)}]
    logger.log(0, curve[0])
    t_loop = time.perf_counter()
    try:
        for step in range(FLAGS.steps):
            batch_tasks = [train[i] for i in task_rng.choice(len(train), FLAGS.batch)]
            prompts = [p for p, _ in batch_tasks]
            policy.params, policy.step = state.params, step
            samples = policy.generate(prompts, 1, "solve")
            episodes = selfplay._episodes(group, prompts, samples)  # the loop's own conversion
            graded = score(pool, [t for _, t in batch_tasks], [e.response for e in episodes])
            for e, (r, _, verdict) in zip(episodes, graded, strict=True):
                e.reward, e.verdict = r, verdict
            rewards = np.array([e.reward for e in episodes], np.float32)
            adv = trr_advantages(rewards, np.full(len(episodes), group))
            batch, _ = make_batch(episodes, adv, pad_id)
            state, m = step_fn(state, batch, jax.random.key(seed))
            m = jax.device_get(m)
            record = {
                "train/reward": float(rewards.mean()),
                "train/accuracy": float(np.mean([c for _, c, _ in graded])),
                "train/entropy": float(m["entropy"]),
                "train/grad_norm": float(m["grad_norm"]),
                "train/clip_frac": float(m["clip_frac"]),
                "train/logprob_diff_max": float(m["logprob_diff_max"]),
            }
            done = step + 1
            if done % FLAGS.eval_every == 0 or done == FLAGS.steps:
                record.update(evaluate(state.params))
                curve.append({"step": done, **record})
                print(
                    f"step {done}: held-out accuracy {record['eval/accuracy']:.3f} reward "
                    f"{record['eval/reward']:.3f}, train reward {record['train/reward']:.3f} "
                    f"({time.perf_counter() - t_loop:.0f}s)",
                    flush=True,
                )
            record["time/elapsed_s"] = time.perf_counter() - t_start
            logger.log(done, record)
            if done == FLAGS.steps:
                logger.log_samples(
                    done,
                    [
                        {"prompt": e.prompt, "response": e.response, "reward": e.reward}
                        for e in episodes[:16]
                    ],
                )
        logger.plot({"rl_sanity": ["eval/accuracy", "eval/reward", "train/reward"]})
    finally:
        logger.close()
        pool.close()
    first, last = curve[0], curve[-1]
    summary = {
        "initial_accuracy": first["eval/accuracy"],
        "final_accuracy": last["eval/accuracy"],
        "initial_reward": first["eval/reward"],
        "final_reward": last["eval/reward"],
        "initial_well_formed": first["eval/well_formed"],
        "final_well_formed": last["eval/well_formed"],
        "best_accuracy": max(c["eval/accuracy"] for c in curve),
        "steps": FLAGS.steps,
        "seed": seed,
        "batch": FLAGS.batch,
        "lr": FLAGS.lr,
        "held_out_tasks": len(held_out),
        "seconds_per_step": round((time.perf_counter() - t_loop) / max(FLAGS.steps, 1), 3),
        "plot": str(out / "plots" / "rl_sanity.png"),
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
