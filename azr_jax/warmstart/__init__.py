"""The warm start: a small code model trained from scratch on this machine, on programs from a
grammar of small typed functions rendered in the self-play prompt and answer formats. Stands in
for a pretrained base coder. May import: azr_jax.parallel, model, executor, selfplay."""
