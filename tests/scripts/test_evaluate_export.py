"""scripts/evaluate.py and scripts/export_hf.py on a short run of the tiny default."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

from azr_jax.model import hf_io
from azr_jax.model.parity import compare
from azr_jax.run import restore
from tests.scripts.script_module import load_module

ROOT = Path(__file__).resolve().parents[2]
CRUX = Path(
    os.environ.get(
        "AZR_CRUXEVAL_PATH", ROOT.parent / "shared" / "data" / "cruxeval" / "cruxeval_dev.jsonl"
    )
)


def _script(script: str, *args: str, extra_env: dict | None = None):
    """scripts/SCRIPT on the default config (one CPU device): the finished process."""
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
        PYTHONPATH=str(ROOT),
        **(extra_env or {}),
    )
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / script),
            f"--config={ROOT / 'configs' / 'default.py'}",
        ]
        + list(args),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _run(script: str, *args: str) -> dict:
    return _run_env({}, script, *args)


def _run_env(extra_env: dict, script: str, *args: str) -> dict:
    res = _script(script, "--config.model.base=random", *args, extra_env=extra_env)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    last = _run(
        "train.py",
        f"--config.output_dir={out}",
        "--config.num_steps=1",
        "--config.azr.batch_size=2",
        "--config.sampling.max_new_tokens=16",
    )
    assert last["step"] == 1
    return out


def test_evaluate_checkpoint_and_base_model(run_dir):
    if not CRUX.exists():
        pytest.skip(f"CRUXEval dev file not found at {CRUX} (set AZR_CRUXEVAL_PATH)")
    common = [
        f"--config.output_dir={run_dir}",
        "--config.eval.max_records=12",
        f"--config.eval.cruxeval_path={CRUX}",
        "--config.eval.max_new_tokens=16",
    ]
    summary = _run("evaluate.py", *common)
    assert summary["n"] == 12 and summary["step"] == 1
    assert 0.0 <= summary["cruxeval_o"] <= 1.0 and 0.0 <= summary["cruxeval_i"] <= 1.0
    rows = [
        json.loads(x) for x in (run_dir / "eval" / "step_000001.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 24 and {r["task"] for r in rows} == {"cruxeval_o", "cruxeval_i"}
    base = _run("evaluate.py", *common, f"--model_dir={run_dir / 'base_model'}")
    assert base["n"] == 12 and base["step"] is None
    assert (run_dir / "eval" / "hf_base_model.jsonl").exists()


def test_evaluate_missing_run_is_a_clear_error(tmp_path):
    res = _script(
        "evaluate.py",
        "--config.model.base=random",
        f"--config.output_dir={tmp_path}",
        f"--config.eval.cruxeval_path={_crux_file(tmp_path)}",
    )
    assert res.returncode != 0 and "holds no run" in res.stderr


def _crux_file(tmp_path: Path) -> Path:
    """Two records in CRUXEval's format (code, input, output, id), written here."""
    path = tmp_path / "crux.jsonl"
    rows = [
        {"id": "t0", "code": "def f(x):\n    return x + 1", "input": "1", "output": "2"},
        {"id": "t1", "code": "def f(s):\n    return s[::-1]", "input": "'ab'", "output": "'ba'"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluate_with_nothing_to_evaluate_says_what_to_pass(run_dir):
    """The default has no evaluation file (none ships with the repository): a clear error
    naming the keys, before any weights load."""
    res = _script("evaluate.py", f"--config.output_dir={run_dir}")
    assert res.returncode != 0
    assert "nothing to evaluate: pass --config.eval.cruxeval_path=FILE" in res.stderr


def _hub_cache(tmp_path: Path, name: str, model_dir: Path) -> Path:
    """A Hugging Face hub cache holding `name` at one revision, laid out as huggingface_hub lays
    it out (models--ORG--NAME/refs/main, snapshots/REV/...): what a download leaves."""
    import shutil

    cache = tmp_path / "hub"
    repo = cache / ("models--" + name.replace("/", "--"))
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    shutil.copytree(model_dir, repo / "snapshots" / rev)
    return cache


def test_a_bfloat16_run_from_a_hub_name_evaluates_and_exports(tmp_path):
    """A run started from a hub name (no base_model/ copy) in bfloat16 with its float32 master:
    evaluate.py and export_hf.py given only --config.output_dir (the default config says float32
    and no model) take the model, dtypes and mesh from the run's config.json, restore the
    parameters alone, and export the trained weights in the run's dtype."""
    from tests.conftest import tiny_checkpoint

    name = "azr-test/tiny-qwen2"
    cache = _hub_cache(tmp_path, name, tiny_checkpoint("qwen2"))
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    last = _run_env(
        env,
        "train.py",
        f"--config.output_dir={out}",
        f"--config.model_name={name}",
        "--config.model.param_dtype=bfloat16",
        "--config.num_steps=1",
        "--config.azr.batch_size=2",
        "--config.sampling.max_new_tokens=16",
    )
    assert last["step"] == 1
    assert not (out / "base_model").exists()
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["model_name"] == name and recorded["rl"]["master_weights"] == "float32"

    summary = _run_env(
        env,
        "evaluate.py",
        f"--config.output_dir={out}",
        f"--config.eval.cruxeval_path={_crux_file(tmp_path)}",
        "--config.eval.max_new_tokens=8",
    )
    assert summary["n"] == 2 and summary["step"] == 1

    export = tmp_path / "export"
    info = _run_env(env, "export_hf.py", f"--config.output_dir={out}", f"--out={export}")
    assert info["step"] == 1
    assert json.loads((export / "config.json").read_text())["dtype"] == "bfloat16"
    # the exported weights are the checkpoint's bfloat16 parameters, read without the optimizer
    config = load_module("configs/default.py", "default_config").get_config()
    config.output_dir = str(out)
    config = restore.recorded_config(config)
    assert (config.model_name, config.model.param_dtype) == (name, "bfloat16")
    # (in this process the hub cache is not HF_HUB_CACHE's: name the snapshot as a directory)
    config.model_name = str(next((cache / "models--azr-test--tiny-qwen2" / "snapshots").iterdir()))
    cfg, params, _, _, step = restore.load_policy(config)
    assert step == 1 and cfg.param_dtype == "bfloat16"
    _, exported = hf_io.load_hf(export, param_dtype="bfloat16")
    np.testing.assert_array_equal(
        np.asarray(params["embed"], np.float32), np.asarray(exported["embed"], np.float32)
    )
    # a key named on the command line is the caller's, not the record's
    named = restore.recorded_config(config, {"model.param_dtype"})
    assert named.model.param_dtype == "bfloat16"  # unchanged: it was already the run's
    config.model.param_dtype = "float32"
    assert restore.recorded_config(config, {"model.param_dtype"}).model.param_dtype == "float32"
    assert restore.recorded_config(config).model.param_dtype == "bfloat16"


def test_a_run_without_its_base_copy_finds_the_recorded_model(run_dir, tmp_path):
    """A run from a named directory (the curve script's, from the warm start) has no
    base_model/; its config.json's model_name says where it started."""
    run2 = tmp_path / "run2"
    run2.mkdir()
    (run2 / "checkpoints").symlink_to(run_dir / "checkpoints")
    assert restore.run_base_model(run_dir) == run_dir / "base_model"
    with pytest.raises(FileNotFoundError, match=r"base model is not at .*--config\.model_name"):
        restore.run_base_model(run2)
    (run2 / "config.json").write_text(json.dumps({"model_name": str(run_dir / "base_model")}))
    assert restore.run_base_model(run2) == run_dir / "base_model"
    assert restore.run_base_model(run2, str(run_dir / "base_model")) == run_dir / "base_model"
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        restore.run_base_model(run2, str(tmp_path / "nowhere"))  # given: not second-guessed
    config = load_module("configs/default.py", "default_config").get_config()
    config.model.base = "random"
    config.output_dir = str(run2)
    config.mesh.fsdp, config.mesh.data = 1, -1
    _, params, _, base, step = restore.load_policy(config)
    assert step == 1 and Path(base) == (run_dir / "base_model").resolve()


def test_export_gives_the_trained_policy_with_the_same_logits(run_dir, tmp_path):
    out = tmp_path / "export"
    info = _run("export_hf.py", f"--config.output_dir={run_dir}", f"--out={out}")
    assert info["step"] == 1
    # The exported weights are the checkpoint's (trained), not the base model's.
    config = load_module("configs/default.py", "default_config").get_config()
    config.model.base = "random"
    config.output_dir = str(run_dir)
    config.mesh.fsdp = 1
    config.mesh.data = -1
    _, params, _, _, step = restore.load_policy(config)
    _, exported = hf_io.load_hf(out)
    _, base = hf_io.load_hf(run_dir / "base_model")
    np.testing.assert_array_equal(np.asarray(params["embed"]), np.asarray(exported["embed"]))
    assert np.abs(np.asarray(exported["embed"]) - np.asarray(base["embed"])).max() > 0
    result = compare(out)
    assert result["max_abs_logit_diff"] <= 1e-4 and result["greedy_tokens_match"]
    tf.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
