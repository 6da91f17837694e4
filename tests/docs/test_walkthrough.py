"""docs/multihost.md's v5e-8 walk-through: every command runs (launch_tpu_vm.sh in its dry-run
mode) and every training, evaluation and export command it starts passes the script's own flag
parsing and config check, as on the slice (8 TPU devices)."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "multihost.md"
# Parses a script's flags exactly as the script does (its own DEFINE_*s run on import), then
# runs the config check the trainer runs, with the slice's device count and backend.
CHECK = """
import importlib.util, json, sys
from absl import flags
from azr_jax.run.config_checks import check_config
script, args = sys.argv[1], sys.argv[2:]
spec = importlib.util.spec_from_file_location("entry", script)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
flags.FLAGS([script, *args])
c = mod._CONFIG.value
check_config(c, num_devices=8, backend="tpu")
print(json.dumps({"model_name": c.model_name, "output_dir": c.output_dir,
                  "hardware": c.hardware.name, "param_dtype": c.model.param_dtype}))
"""


def _block() -> list[str]:
    text = DOC.read_text()
    found = re.search(r"```bash walkthrough\n(.*?)```", text, re.S)
    assert found, "docs/multihost.md lost its ```bash walkthrough block"
    return [x for x in found.group(1).splitlines() if x.strip() and not x.startswith("#")]


def _env(lines: list[str]) -> dict[str, str]:
    env = {}
    for line in lines:
        if line.startswith("export "):
            for pair in shlex.split(line[len("export ") :]):
                k, v = pair.split("=", 1)
                env[k] = v
    return env


def _dry_run(line: str, env: dict[str, str]) -> list[str]:
    """The gcloud commands one walk-through line prints under DRY_RUN=1."""
    full = {**{k: v for k, v in os.environ.items() if k != "HOST"}, **env, "DRY_RUN": "1"}
    res = subprocess.run(
        ["bash", "-c", line], env=full, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, (line, res.stderr)
    return [x[2:] for x in res.stdout.splitlines() if x.startswith("+ gcloud ")]


def _script_calls(gcloud: list[str]) -> list[list[str]]:
    """`scripts/X.py ARGS` inside the ssh --command of the printed gcloud calls."""
    calls = []
    for cmd in gcloud:
        argv = shlex.split(cmd)
        if "--command" not in argv:
            continue
        remote = shlex.split(argv[argv.index("--command") + 1])
        for i, word in enumerate(remote):
            if re.fullmatch(r"scripts/\w+\.py", word):
                end = next((j for j in range(i + 1, len(remote)) if remote[j] in (">", "&")), None)
                calls.append(remote[i : end or len(remote)])
    return calls


def _check(call: list[str]) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", CHECK, str(ROOT / call[0]), *call[1:]],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, (call, res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_the_walkthrough_commands_pass_their_checks():
    lines = _block()
    env = _env(lines)
    assert env["ACCELERATOR_TYPE"] == "v5litepod-8" and env["OUTPUT_DIR"].startswith("gs://")
    commands = [x for x in lines if not x.startswith("export ")]
    assert all("scripts/launch_tpu_vm.sh" in x for x in commands), commands
    gcloud = [c for line in commands for c in _dry_run(line, env)]
    verbs = [c.split()[4] for c in gcloud]
    assert verbs[:3] == ["create", "scp", "ssh"] and verbs[-1] == "delete", verbs
    assert any("bash scripts/setup_tpu_vm.sh" in " ".join(shlex.split(c)) for c in gcloud)
    calls = _script_calls(gcloud)
    scripts = [c[0] for c in calls]
    assert scripts == [
        "scripts/train.py",
        "scripts/evaluate.py",
        "scripts/evaluate.py",
        "scripts/export_hf.py",
    ], calls
    results = [_check(c) for c in calls]
    train = results[0]
    assert train == {
        "model_name": "Qwen/Qwen2.5-Coder-7B",
        "output_dir": env["OUTPUT_DIR"],
        "hardware": "v5e-8",
        "param_dtype": "bfloat16",
    }
    for r in results[1:]:
        assert r["output_dir"] == env["OUTPUT_DIR"]
