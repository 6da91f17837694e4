"""Loading and saving Hugging Face checkpoints: strictness, clear errors, export round trip."""

import json
import shutil
import struct

import jax
import numpy as np
import pytest
import torch
import transformers as tf

from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.model.hf_io import CheckpointError


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _rewrite(path, mutate):
    """Rewrites a safetensors file after `mutate(dict of arrays)`."""
    tensors = dict(hf_io.iter_safetensors(path))
    mutate(tensors)
    hf_io.write_safetensors(
        path, {k: (v.shape, v.dtype) for k, v in tensors.items()}, lambda k: tensors[k]
    )


def test_every_tensor_consumed_every_param_filled(family_dir):
    cfg, params = hf_io.load_hf(family_dir)
    want = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), model_lib.abstract_params(cfg))
    got = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), params)
    assert want == got


def test_export_round_trip_gives_same_logits_in_transformers(family_dir, tmp_path):
    cfg, params = hf_io.load_hf(family_dir)
    # Perturb the weights so the export cannot just be a copy of the input files.
    params = jax.tree_util.tree_map(lambda x: x * 1.5, params)
    out = hf_io.save_hf(params, cfg, tmp_path / "export", family_dir)
    cfg2, params2 = hf_io.load_hf(out)
    assert cfg2 == cfg
    for a, b in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(params2), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    ids = np.arange(3, 15, dtype=np.int64)[None]
    ref_model = tf.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = ref_model(input_ids=torch.tensor(ids)).logits.numpy()
    mask = np.ones_like(ids, bool)
    ours, _ = model_lib.forward(params, cfg, ids.astype(np.int32), np.arange(12)[None], mask)
    assert np.abs(np.asarray(ours) - ref).max() <= 1e-4
    assert (out / "tokenizer.json").exists() and (out / "generation_config.json").exists()


def test_sharded_checkpoint_with_index_loads(qwen2_dir, tmp_path):
    cfg, params = hf_io.load_hf(qwen2_dir)
    out = hf_io.save_hf(params, cfg, tmp_path / "sharded", qwen2_dir, max_shard_bytes=200_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    _, params2 = hf_io.load_hf(out)
    for a, b in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(params2), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # transformers reads our sharded export too
    tf.AutoModelForCausalLM.from_pretrained(out)


def test_bfloat16_export_and_load(qwen2_dir, tmp_path):
    cfg, params = hf_io.load_hf(qwen2_dir)
    out = hf_io.save_hf(params, cfg, tmp_path / "bf16", qwen2_dir, dtype="bfloat16")
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    _, p16 = hf_io.load_hf(out, param_dtype="bfloat16")
    a = np.asarray(params["embed"])
    b = np.asarray(p16["embed"]).astype(np.float32)
    assert np.abs(a - b).max() <= np.abs(a).max() / 128


def test_missing_tensor_is_named(qwen2_dir, tmp_path):
    d = _copy(qwen2_dir, tmp_path / "m")
    _rewrite(d / "model.safetensors", lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        hf_io.load_hf(d)


def test_shape_mismatch_is_named(qwen2_dir, tmp_path):
    d = _copy(qwen2_dir, tmp_path / "m")

    def cut(t):
        t["model.layers.0.self_attn.k_proj.weight"] = t["model.layers.0.self_attn.k_proj.weight"][
            :-1
        ]

    _rewrite(d / "model.safetensors", cut)
    with pytest.raises(
        CheckpointError,
        match=r"k_proj\.weight.*shape.*model\.safetensors|model\.safetensors.*k_proj\.weight.*shape",
    ):
        hf_io.load_hf(d)


def test_unexpected_tensor_is_named(qwen2_dir, tmp_path):
    d = _copy(qwen2_dir, tmp_path / "m")
    _rewrite(
        d / "model.safetensors", lambda t: t.update({"model.extra.weight": np.zeros(3, np.float32)})
    )
    with pytest.raises(CheckpointError, match=r"model\.extra\.weight"):
        hf_io.load_hf(d)


@pytest.mark.parametrize("damage", ["truncate", "header"])
def test_corrupt_file_is_named(qwen2_dir, tmp_path, damage):
    d = _copy(qwen2_dir, tmp_path / "m")
    f = d / "model.safetensors"
    raw = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(raw[: len(raw) - 1000])
    else:
        f.write_bytes(struct.pack("<Q", 50) + b"{not json" + raw[17:])
    with pytest.raises(
        CheckpointError, match="model.safetensors.*corrupt|corrupt.*model.safetensors"
    ):
        hf_io.load_hf(d)


def test_unknown_family_lists_supported(qwen2_dir, tmp_path):
    d = _copy(qwen2_dir, tmp_path / "m")
    conf = json.loads((d / "config.json").read_text())
    for name in ("gpt_neox", "my_own_arch"):  # known to transformers, and not
        conf["model_type"] = name
        (d / "config.json").write_text(json.dumps(conf))
        with pytest.raises(ValueError, match=f"{name}.*gpt2, llama, qwen2, qwen3"):
            hf_io.load_config(d)


def test_missing_directory_and_offline_hub_name_errors(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="no such local directory"):
        hf_io.resolve_model_dir(str(tmp_path / "nope"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="local-dir"):
        hf_io.resolve_model_dir("someone/not-a-real-model-xyz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        hf_io.resolve_model_dir(str(tmp_path / "empty"))


def test_embedding_rows_exceed_tokenizer(qwen2_dir):
    cfg = hf_io.load_config(qwen2_dir)
    assert cfg.vocab_size > len(hf_io.load_tokenizer(qwen2_dir))


def test_a_model_in_a_bucket_loads_like_the_local_one(gcs, qwen2_dir, tmp_path):
    """model_name=gs://...: staged once per host (storage/staging.py), then loaded as local."""
    import os

    from azr_jax.storage import paths

    url = f"gs://{gcs.bucket}/models-{os.getpid()}/qwen2-tiny"
    paths.upload_tree(qwen2_dir, url)
    cfg_local, local = hf_io.load_hf(qwen2_dir)
    cfg_remote, remote = hf_io.load_hf(url)
    assert cfg_local == cfg_remote
    for a, b in zip(jax.tree.leaves(local), jax.tree.leaves(remote), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert hf_io.load_tokenizer(url)("def f(x):")["input_ids"]
    missing = f"gs://{gcs.bucket}/models-{os.getpid()}/no-such-model"
    with pytest.raises(CheckpointError, match=missing):
        hf_io.load_config(missing)
