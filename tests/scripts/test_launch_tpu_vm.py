"""scripts/launch_tpu_vm.sh: valid bash, and the gcloud calls it makes (a fake gcloud records them)."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "launch_tpu_vm.sh"
FAKE_GCLOUD = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$GCLOUD_LOG"
if [[ "$*" == *" describe "* ]]; then exit "$FAKE_DESCRIBE_RC"; fi
"""


def _run(tmp_path: Path, *args: str, exists: bool = False, **env: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gcloud").write_text(FAKE_GCLOUD)
    (bin_dir / "gcloud").chmod(0o755)
    log = tmp_path / "gcloud.log"
    log.unlink(missing_ok=True)
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in ("NAME", "ZONE", "PROJECT", "HOST")},
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GCLOUD_LOG": str(log),
        "FAKE_DESCRIBE_RC": "0" if exists else "1",
        **env,
    }
    subprocess.run(
        ["bash", str(SCRIPT), *args], env=full_env, check=True, timeout=60, capture_output=True
    )
    return log.read_text().splitlines() if log.exists() else []


def test_bash_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_up_creates_copies_installs_and_trains_on_every_worker(tmp_path):
    calls = _run(
        tmp_path,
        "up",
        "--config.num_steps=3",
        NAME="azr-test",
        ZONE="us-east5-a",
        PROJECT="proj",
        ACCELERATOR_TYPE="v5p-8",
        MODEL="qwen3-4b-base",
        OUTPUT_DIR="gs://bucket/run",
    )
    verbs = [c.split()[3] for c in calls]
    assert verbs == ["describe", "create", "scp", "ssh", "ssh"], calls
    assert all(c.startswith("compute tpus tpu-vm ") for c in calls)
    assert all("--zone=us-east5-a" in c and "--project=proj" in c for c in calls)
    assert "--accelerator-type=v5p-8 --version=v2-alpha-tpuv5" in calls[1]
    assert (
        calls[2].endswith("--worker=all") and "azr_jax.tar.gz azr-test:azr_jax.tar.gz" in calls[2]
    )
    assert "--worker=all" in calls[3] and "pip install -q -e '.[tpu]'" in calls[3]
    train = calls[4].split("--command ", 1)[1]
    argv = shlex.split(train.split("scripts/train.py", 1)[1].split(">")[0])
    assert argv == [
        "--config=configs/azr.py:qwen3-4b-base,v5p-8",
        "--config.output_dir=gs://bucket/run",
        "--config.num_steps=3",
    ]
    assert "--worker=all" in calls[4] and "nohup" in train


def test_up_reuses_an_existing_vm(tmp_path):
    calls = _run(tmp_path, "up", exists=True, ACCELERATOR_TYPE="v5litepod-8")
    assert [c.split()[3] for c in calls] == ["describe", "scp", "ssh", "ssh"]
    assert "configs/azr.py:qwen2.5-coder-7b\\,v5e-8" in calls[-1]


@pytest.mark.parametrize(
    "command, verb, needle",
    [
        ("status", "describe", "--format=value(state,acceleratorType)"),
        ("logs", "ssh", "--worker=0 --command tail -n 200 azr_jax/train.log"),
        ("stop", "ssh", "--worker=all --command kill"),
        ("delete", "delete", "--quiet"),
    ],
)
def test_management_commands(tmp_path, command, verb, needle):
    calls = _run(tmp_path, command, exists=True)
    assert calls[0].split()[3] == verb and needle in calls[0], calls


def test_unknown_accelerator_is_an_error(tmp_path):
    with pytest.raises(subprocess.CalledProcessError):
        _run(tmp_path, "create", ACCELERATOR_TYPE="h100-8")


@pytest.mark.parametrize(
    "accelerator, host",
    [
        ("v4-16", "v4-16"),
        ("v4-32", "v4-32"),
        ("v5litepod-16", "v5e-16"),
        ("v5litepod-32", "v5e-32"),
    ],
)
def test_multi_host_slices_train_their_own_preset(tmp_path, accelerator, host):
    calls = _run(
        tmp_path, "up", exists=True, ACCELERATOR_TYPE=accelerator, MODEL="qwen2.5-coder-14b"
    )
    assert f"configs/azr.py:qwen2.5-coder-14b\\,{host}" in calls[-1], calls[-1]
