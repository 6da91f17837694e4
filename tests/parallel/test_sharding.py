"""Meshes, logical-axis rules, and the sharded forward on 8 fake CPU devices."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.parallel import sharding as shd

MESHES = [
    dict(data=2, fsdp=2, tensor=2),
    dict(data=1, fsdp=8, tensor=1),
    dict(data=4, fsdp=1, tensor=2),
]


def test_eight_fake_devices():
    assert jax.device_count() == 8


def test_make_mesh_fills_the_rest_and_rejects_bad_sizes():
    assert dict(shd.make_mesh(data=-1, fsdp=2, tensor=2).shape) == {
        "data": 2,
        "fsdp": 2,
        "tensor": 2,
    }
    assert dict(shd.make_mesh(data=1, fsdp=-1).shape) == {"data": 1, "fsdp": 8, "tensor": 1}
    with pytest.raises(ValueError, match="only one axis may be -1"):
        shd.make_mesh(data=-1, fsdp=-1)
    with pytest.raises(ValueError, match="needs 6 devices but 8"):
        shd.make_mesh(data=3, fsdp=2, tensor=1)
    with pytest.raises(ValueError, match="do not divide"):
        shd.make_mesh(data=-1, tensor=3)


def test_batch_and_head_checks_name_the_fix():
    mesh = shd.make_mesh(data=2, fsdp=2, tensor=2)
    shd.check_batch(mesh, 8)
    with pytest.raises(ValueError, match="6 rows does not divide.*data x fsdp = 4"):
        shd.check_batch(mesh, 6)
    with pytest.raises(ValueError, match="num_key_value_heads=3.*mesh.tensor=2"):
        shd.check_heads(mesh, 6, 3)


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda m: "x".join(map(str, m.values())))
def test_sharded_forward_equals_unsharded(qwen2_dir, mesh_shape):
    cfg, ref_params = hf_io.load_hf(qwen2_dir)
    mesh = shd.make_mesh(**mesh_shape)
    _, params = hf_io.load_hf(qwen2_dir, mesh)
    # Parameters land on the shardings the rules ask for.
    axes = model_lib.param_axes(cfg)
    q = params["layers"][0]["attn"]["q"]["kernel"]
    assert q.sharding.spec == P("fsdp", "tensor", None)
    assert params["layers"][1]["mlp"]["down"]["kernel"].sharding.spec == P("tensor", "fsdp")
    assert params["embed"].sharding.spec == P("tensor", "fsdp")
    want = shd.tree_shardings(model_lib.abstract_params(cfg), axes, mesh)
    for got, exp in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(want), strict=True
    ):
        assert got.sharding == exp
    # Each device holds only its slice of a sharded weight.
    n_shards = mesh.shape["fsdp"] * mesh.shape["tensor"]
    assert q.addressable_shards[0].data.size == q.size // n_shards

    ids = np.arange(2, 34, dtype=np.int32).reshape(8, 4)
    mask = np.ones_like(ids, bool)
    mask[::3, 0] = False
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    ref, _ = model_lib.forward(ref_params, cfg, ids, pos, mask)
    batch = shd.batch_sharding(mesh, 2)
    fwd = jax.jit(model_lib.forward, static_argnums=1, in_shardings=(want, batch, batch, batch))
    ids, pos, mask = (jax.device_put(x, batch) for x in (ids, pos, mask))
    with jax.set_mesh(mesh):
        out, _ = fwd(params, cfg, ids, pos, mask)
        fused, _ = fwd(params, cfg.replace(attention="xla"), ids, pos, mask)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-5)
    # jax.nn.dot_product_attention partitions the same way (real positions: pad rows differ).
    real = np.asarray(mask)
    np.testing.assert_allclose(np.asarray(fused)[real], np.asarray(ref)[real], atol=1e-5)


def test_indivisible_parameter_dimension_is_named(qwen2_dir):
    cfg = hf_io.load_config(qwen2_dir)  # hidden 64: fsdp=8 divides; 2 kv heads over tensor=4 do not
    mesh = shd.make_mesh(data=2, fsdp=1, tensor=4)
    with pytest.raises(ValueError, match=r"kv_heads.*size 2.*tensor.*size 4"):
        hf_io.load_params(qwen2_dir, cfg, mesh)


def test_sample_rules_drop_fsdp():
    mesh = shd.make_mesh(data=1, fsdp=4, tensor=2)
    s = shd.named_sharding(mesh, ("embed", "mlp"), (64, 128), shd.SAMPLE_RULES)
    assert s.spec == P(None, "tensor")


def test_addressable_rows_one_process_holds_every_row():
    mesh = shd.make_mesh(2, 2, 2)
    rows = shd.addressable_rows(shd.batch_sharding(mesh, 2), (8, 5))
    np.testing.assert_array_equal(rows, np.arange(8))
