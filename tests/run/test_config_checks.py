"""Config validation: each bad value is named with its key and the fix, before any weights load."""

import importlib.util
from pathlib import Path

import pytest

from azr_jax.run.config_checks import ConfigError, check_config

ROOT = Path(__file__).resolve().parents[2]


def load(name: str, arg: str | None = None):
    spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


def test_default_config_is_valid():
    check_config(load("default"), num_devices=1)


@pytest.mark.parametrize(
    "key, value, pattern",
    [
        ("num_steps", -1, r"--config\.num_steps"),
        (
            "model_name",
            "/nonexistent/model",
            r"--config\.model_name.*not a Hugging Face model directory",
        ),
        ("model.dtype", "float8", r"--config\.model\.dtype"),
        ("sampling.top_p", 0.0, r"--config\.sampling\.top_p"),
        (
            "sampling.batch_size",
            3,
            r"--config\.sampling\.batch_size.*multiple of mesh data x fsdp = 2",
        ),
        ("azr.task_types", ("code_o", "code_x"), r"--config\.azr\.task_types"),
        ("azr.num_inputs", 3, r"--config\.azr\.num_inputs"),
        ("rl.aggregation", "sum", r"--config\.rl\.aggregation.*token-mean"),
        ("rl.schedule", "exp", r"--config\.rl\.schedule"),
        ("mesh.tensor", 3, r"--config\.mesh.*devices"),
        ("executor.workers", 0, r"--config\.executor\.workers"),
        ("model.attention", "flash", r"--config\.model\.attention.*einsum"),
        ("executor.max_in_flight", 0, r"--config\.executor\.max_in_flight"),
        ("rl.max_skipped_steps", 0, r"--config\.rl\.max_skipped_steps.*>= 1"),
        ("logging.samples_per_group", -1, r"--config\.logging\.samples_per_group"),
        ("logging.samples_max_file_mb", -1.0, r"--config\.logging\.samples_max_file_mb"),
        ("logging.samples_keep_steps", -2, r"--config\.logging\.samples_keep_steps"),
        ("rl.packing", None, r"--config\.rl\.packing.*True"),
        ("rl.grad_accum_dtype", "float16", r"--config\.rl\.grad_accum_dtype.*bfloat16"),
        ("model.mlp_chunk", -1, r"--config\.model\.mlp_chunk.*positive"),
        ("sampling.weights", "half", r"--config\.sampling\.weights.*shards"),
        ("engine.slots", 3, r"--config\.engine\.slots.*multiple of mesh data x fsdp = 2"),
        ("engine.chunk", 0, r"--config\.engine\.chunk"),
        ("engine.prefill_batch", 3, r"--config\.engine\.prefill_batch.*multiple"),
        ("engine.prefill_batch", 6, r"--config\.engine\.prefill_batch.*no larger than the 4"),
        ("engine.min_window", -1, r"--config\.engine\.min_window.*or 0 to read the whole cache"),
        ("model.base", "pretrained", r"--config\.model\.base.*warmstart"),
        ("warmstart.steps", 0, r"--config\.warmstart\.steps"),
        ("azr.diversity_penalty", -0.1, r"--config\.azr\.diversity_penalty"),
        ("azr.diversity_threshold", 1.5, r"--config\.azr\.diversity_threshold"),
        ("azr.novelty_decay", -1.0, r"--config\.azr\.novelty_decay"),
        ("azr.novelty_penalty", 0.5, r"--config\.azr\.novelty_penalty.*novelty_decay > 0"),
    ],
)
def test_bad_values_are_named(key, value, pattern):
    c = load("default")
    c.mesh.data, c.mesh.fsdp = 1, -1
    c.sampling.batch_size = 4
    c.azr.batch_size = 2
    node, leaf = c, key.split(".")
    for k in leaf[:-1]:
        node = node[k]
    node[leaf[-1]] = value
    with pytest.raises(ConfigError, match=pattern):
        check_config(c, num_devices=2)


def test_cudnn_attention_needs_a_gpu_and_half_precision():
    c = load("default")
    c.model.attention = "cudnn"
    with pytest.raises(ConfigError, match=r"model\.attention: cudnn needs a CUDA GPU.*'cpu'"):
        check_config(c, num_devices=1, backend="cpu")
    with pytest.raises(ConfigError, match=r"model\.attention: cudnn .*bfloat16") as e:
        check_config(c, num_devices=1, backend="gpu")
    assert "CUDA GPU" not in str(e.value)
    c.model.dtype = "bfloat16"
    check_config(c, num_devices=1, backend="gpu")


def test_all_errors_are_reported_at_once():
    c = load("default")
    c.num_steps = -5
    c.rl.clip_eps = 0
    with pytest.raises(ConfigError) as e:
        check_config(c, num_devices=1)
    assert "num_steps" in str(e.value) and "rl.clip_eps" in str(e.value)


def test_update_batch_must_divide_over_the_mesh():
    c = load("default")
    c.mesh.data, c.mesh.fsdp = 1, -1
    c.sampling.batch_size = 4
    c.azr.batch_size = 1  # 2 roles x 3 types x 1 = 6 rows over 4 devices
    with pytest.raises(ConfigError, match=r"--config\.azr\.batch_size.*6 rows.*data x fsdp = 4"):
        check_config(c, num_devices=4)


@pytest.mark.parametrize(
    "model",
    [
        "qwen2.5-coder-3b",
        "qwen2.5-coder-7b",
        "qwen2.5-coder-14b",
        "qwen2.5-7b",
        "llama-3.1-8b",
        "qwen3-4b-base",
    ],
)
def test_paper_presets_are_valid_on_their_hosts(model):
    azr = _azr_module()
    hosts = azr.hosts_of(model)
    assert len(hosts) == 4 and hosts[-1] == "gpu-8"  # a v4, a v5e and a v5p slice, and GPUs
    for host in hosts:
        c = load("azr", f"{model},{host}")
        c.model_name = ""  # hub names are checked at load time, not here
        check_config(c, num_devices=azr.HOSTS[host][0])
        assert c.rl.learning_rate == 1e-6 and c.azr.batch_size == 64 and c.azr.n_rollouts == 8
        assert (c.sampling.max_prompt_len, c.sampling.max_new_tokens) == (6144, 8096)


def _azr_module():
    spec = importlib.util.spec_from_file_location("azr_hosts", ROOT / "configs" / "azr.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_slice_too_small_for_a_model_names_the_one_to_use():
    for small in ("v5e-8", "v5e-16"):
        with pytest.raises(ValueError, match=rf"14b does not train on a {small}.*14b,v5e-32"):
            load("azr", f"qwen2.5-coder-14b,{small}")
    for small in ("v4-8", "v4-16"):  # v4-16: 30.8 GiB before the compensation bfloat16 needs
        with pytest.raises(ValueError, match=r"qwen2.5-coder-14b,v4-32"):
            load("azr", f"qwen2.5-coder-14b,{small}")
    load("azr", "qwen2.5-coder-3b,v5e-8")  # the smallest slice where it fits
    with pytest.raises(ValueError, match=r"llama-3.1-8b does not train on a v5e-8.*v5e-16"):
        load("azr", "llama-3.1-8b,v5e-8")
    # 7B on a v5e-8 (the TPU compiler: train step 12.2 GiB of 15.75) with its tuning
    c = load("azr", "qwen2.5-coder-7b,v5e-8")
    assert (c.model.param_dtype, c.model.remat_offload, c.rl.grad_accum_dtype) == (
        "bfloat16",
        True,
        "bfloat16",
    )
    assert c.rl.micro_batch_size == c.sampling.batch_size == 8


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown model 'gpt-9'"):
        load("azr", "gpt-9")


def test_auto_and_splash_attention_per_backend():
    """`auto` (the default) passes everywhere, even in float32 on a GPU (it then means einsum);
    splash on a GPU is an error naming the fix."""
    c = load("default")
    assert c.model.attention == "auto"
    for backend in ("cpu", "gpu", "tpu"):
        check_config(c, num_devices=1, backend=backend)
    c.model.attention = "splash"
    check_config(c, num_devices=1, backend="tpu")
    check_config(c, num_devices=1, backend="cpu")  # interpret mode: parity checks
    with pytest.raises(ConfigError, match=r"model\.attention: splash is the TPU kernel.*auto"):
        check_config(c, num_devices=1, backend="gpu")


PRESETS_ANYWHERE = """
import importlib.util, json, sys
from pathlib import Path
from azr_jax.run.config_checks import check_config

def load(arg):
    spec = importlib.util.spec_from_file_location("azr", Path("configs/azr.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, mod.get_config(arg)

azr, _ = load(None)
done = []
for model in azr.MODELS:
    for host in azr.hosts_of(model):
        _, c = load(f"{model},{host}")
        devices = azr.HOSTS[host][0]
        check_config(c, num_devices=devices, backend=c.hardware.platform)  # as on its hardware
        done.append([model, host, c.model_name, c.eval.every_steps, c.eval.cruxeval_path])
print(json.dumps(done))
"""


def test_every_preset_passes_its_check_in_a_clone_without_shared(tmp_path):
    """The repository alone (configs/ and azr_jax/, no ../shared beside it): every model x host
    preset, as the README's commands give it (hub name, eval.every_steps=50), passes its config
    check on its own hardware; no default points outside the repository."""
    import json
    import shutil
    import subprocess
    import sys

    clone = tmp_path / "clone"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("azr_jax", "configs"):
        shutil.copytree(ROOT / part, clone / part, ignore=ignore)
    assert not (clone.parent / "shared").exists()
    res = subprocess.run(
        [sys.executable, "-c", PRESETS_ANYWHERE],
        cwd=clone,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(clone), "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    done = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(done) == 6 * 4
    for model, host, name, every, crux in done:
        assert "/" in name and every == 50 and crux == "", (model, host, name, every, crux)


def _walk(value, path=""):
    if hasattr(value, "items"):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else k)
    else:
        yield path, value


@pytest.mark.parametrize("name, arg", [("default", None), ("azr", "qwen2.5-coder-7b,v5e-8")])
def test_no_default_path_points_outside_the_repository(name, arg):
    for key, value in _walk(load(name, arg)):
        if isinstance(value, str):
            assert "../" not in value and "shared/" not in value, (key, value)


def test_a_tpu_preset_on_cpu_stops_with_the_install_command():
    c = load("azr", "qwen2.5-coder-7b,v5e-8")
    assert (c.hardware.name, c.hardware.platform, c.hardware.devices) == ("v5e-8", "tpu", 8)
    with pytest.raises(ConfigError) as e:
        check_config(c, num_devices=8, backend="cpu")
    msg = str(e.value)
    assert "--config.hardware.platform: the v5e-8 preset needs 8 TPU devices" in msg
    assert "jax found 8 CPU device(s)" in msg
    assert "make tpu-vm-setup" in msg and "pip install -e '.[tpu]'" in msg
    assert "--config.hardware.allow_cpu=True" in msg
    check_config(c, num_devices=8, backend="tpu")  # on its slice: fine


def test_allow_cpu_runs_a_tpu_preset_on_cpu_deliberately(caplog):
    c = load("azr", "qwen2.5-coder-7b,v5e-8")
    c.hardware.allow_cpu = True
    with caplog.at_level("WARNING"):
        check_config(c, num_devices=8, backend="cpu")
    assert "sized for 8 TPU devices and runs on 8 CPU devices" in caplog.text


def test_fewer_devices_than_the_slice_is_an_error():
    c = load("azr", "qwen2.5-coder-7b,v5e-16")
    with pytest.raises(
        ConfigError, match=r"hardware\.devices: the v5e-16 preset is sized for 16 TPU"
    ):
        check_config(c, num_devices=4, backend="tpu")


def test_a_gpu_preset_on_cpu_names_the_cuda_extra():
    c = load("azr", "qwen3-4b-base,gpu-8")
    with pytest.raises(ConfigError, match=r"needs 8 GPU devices.*cuda12"):
        check_config(c, num_devices=8, backend="cpu")
    check_config(load("default"), num_devices=1, backend="cpu")  # no hardware: runs anywhere


def test_master_weights_key_and_the_presets_that_need_it():
    """Every preset that stores bfloat16 weights trains on a float32 master (the trainer's
    hyperparameters say so); float32 presets need none."""
    from azr_jax.run.trainer import hparams_from

    azr = _azr_module()
    seen = set()
    for model in azr.MODELS:
        for host in azr.hosts_of(model):
            c = load("azr", f"{model},{host}")
            master = hparams_from(c).master_weights
            if c.model.param_dtype == "bfloat16":
                assert master in ("float32", "compensated"), (model, host)
            else:
                assert master == "none", (model, host)
            seen.add(master)
    assert seen == {"float32", "compensated", "none"}
    c = load("default")
    c.rl.master_weights = "fp32"
    with pytest.raises(ConfigError, match=r"rl\.master_weights: 'fp32' must be float32"):
        check_config(c, num_devices=1)
