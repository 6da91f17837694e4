"""scripts/memory_plan.py: parameter counts match the presets, the numbers are the documented sums."""

import json

import pytest

from tests.scripts.script_module import load_module

plan = load_module("scripts/memory_plan.py")
azr = load_module("configs/azr.py", "azr_config")


@pytest.mark.parametrize("model", sorted(azr.MODELS))
def test_architectures_match_the_presets(model):
    _, billions = azr.MODELS[model]
    assert plan.num_params(plan.ARCHS[model]) / 1e9 == pytest.approx(billions, rel=0.02)


def test_qwen2_5_7b_on_gpu_8_by_hand():
    r = plan.plan_one("qwen2.5-7b", "gpu-8")
    p = 7_615_616_512  # Qwen2.5-7B's published parameter count
    assert r["params_b"] * 1e9 == p and r["param_dtype"] == "float32"
    assert r["state_gib"] == pytest.approx(3 * 4 * p / 8 / 2**30)
    kv_token = 2 * 28 * 4 * 128 * 2  # K and V, layers, kv heads, head dim, bfloat16
    assert r["kv_gib"] == pytest.approx(kv_token * (6144 + 8096) * 64 / 8 / 2**30)
    assert r["sampler_gib"] == pytest.approx(4 * p / 2**30)  # 28 GiB <= half of 80: whole copy


def test_tensor_parallelism_shrinks_the_sampler_copy():
    r = plan.plan_one("qwen2.5-coder-14b", "v5e-32", tensor=4)
    assert r["mesh"] == [1, 8, 4] and r["sampler_gib"] == pytest.approx(r["sampler_full_gib"])
    assert plan.plan_one("qwen2.5-coder-14b", "v5e-32")["sampler_gib"] == 0


def test_main_prints_tables_and_json(capsys):
    plan.main()
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    assert len(data["plans"]) == sum(len(azr.hosts_of(m)) for m in azr.MODELS)
    assert sum(line.startswith("| qwen3-4b-base | v5p-8 |") for line in out) == 2
    assert all(plan.advice(r) for r in data["plans"])
