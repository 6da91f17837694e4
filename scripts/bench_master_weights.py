"""What AdamW at the paper's lr does to bfloat16 weights, with and without a master copy.

    python scripts/bench_master_weights.py [--n=4096] [--steps=100] [--lr=1e-6]

Weights drawn at scale 0.02 (a typical LM weight), a fixed random gradient, AdamW (b1 0.9,
b2 0.999, no decay) for `--steps` steps in four ways: float32 weights (the reference), bfloat16
weights summed plainly, bfloat16 with a float32 master (`rl.master_weights=float32`) and with a
Kahan compensation (`compensated`). Last line JSON, per way: the fraction of stored weights the
first step changed and all steps changed, and the weights' error against the float32 run as a
fraction of float32's mean move (the effective weight: stored + compensation, or the master).
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.update import master_weights
from azr_jax.update.train_step import make_optimizer


def run(n: int, steps: int, lr: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    w = jnp.asarray(rng.normal(size=n) * 0.02, jnp.bfloat16)
    g = {"w": jnp.asarray(rng.normal(size=n), jnp.float32)}
    opt = make_optimizer(lr, weight_decay=0.0, clip_norm=1e9)
    ways = {
        "float32": (opt, {"w": w.astype(jnp.float32)}),
        "bfloat16_plain": (opt, {"w": w}),
        "bfloat16_master": (master_weights.with_master_weights(opt), {"w": w}),
        "bfloat16_compensated": (master_weights.with_compensated_sum(opt), {"w": w}),
    }
    out = {}
    for name, (o, p0) in ways.items():
        state, p = o.init(p0), p0
        first = None
        for i in range(steps):
            u, state = o.update(g, state, p)
            p = master_weights.apply(p, u, state)
            if i == 0:
                first = float(jnp.mean(p["w"] != p0["w"]))
        effective = np.asarray(p["w"], np.float64)
        if isinstance(state, master_weights.MasterState):
            effective = np.asarray(state.master["w"], np.float64)
        if isinstance(state, master_weights.CompensatedState):
            effective = effective + np.asarray(state.compensation["w"], np.float64)
        out[name] = {
            "changed_first_step": round(first, 4),
            "changed_after": round(float(jnp.mean(p["w"] != p0["w"])), 4),
            "effective": effective,
        }
    ref = out["float32"]["effective"]
    move = float(np.mean(np.abs(ref - np.asarray(w, np.float64))))
    for v in out.values():
        v["error_vs_float32_of_move"] = round(
            float(np.mean(np.abs(v.pop("effective") - ref))) / move, 4
        )
    return {"n": n, "steps": steps, "lr": lr, "float32_mean_move": move, "ways": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-6)
    a = ap.parse_args()
    jax.config.update("jax_platforms", "cpu")
    result = run(a.n, a.steps, a.lr)
    for name, v in result["ways"].items():
        print(f"{name:22s} {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
