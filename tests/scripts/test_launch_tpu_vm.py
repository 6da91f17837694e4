"""scripts/launch_tpu_vm.sh: valid bash, and the gcloud calls it makes (a fake gcloud records them)."""

import os
import shlex
import subprocess
import sys
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
    assert "--worker=all" in calls[3] and "bash scripts/setup_tpu_vm.sh" in calls[3]
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


SETUP = REPO / "scripts" / "setup_tpu_vm.sh"
# A stand-in interpreter that reports the given version (the stock TPU VM images' is 3.10).
FAKE_PYTHON = """#!/usr/bin/env bash
if [[ "$1" == -c ]]; then echo "$FAKE_VERSION"; exit 0; fi
if [[ "$*" == "-m pip --version" ]]; then echo "pip 22.0.2"; exit 0; fi
echo "unexpected: $*" >&2; exit 3
"""


def _setup(tmp_path: Path, version: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(FAKE_PYTHON)
    (bin_dir / "python3").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",  # no uv on it
        "HOME": str(tmp_path / "home"),
        "FAKE_VERSION": version,
        "DRY_RUN": "1",
    }
    res = subprocess.run(
        ["bash", str(SETUP)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_setup_on_a_python_310_image_gets_311_with_uv(tmp_path):
    """The TPU VM images' Python 3.10: uv (from PyPI, into ~/.local) installs 3.11 and makes the
    venv with it; then the pinned jax[tpu] goes in. Dry run: the commands, printed."""
    out = _setup(tmp_path, "3.10")
    lines = [x for x in out.splitlines() if x.startswith("+ ")]
    uv = str(tmp_path / "home" / ".local" / "bin" / "uv")
    assert lines == [
        "+ python3 -m pip install --user --upgrade uv",
        f"+ {uv} python install 3.11",
        "+ rm -rf .venv",
        f"+ {uv} venv --seed --python 3.11 .venv",
        "+ .venv/bin/python -m pip install -q --upgrade pip",
        "+ .venv/bin/python -m pip install -q -e .\\[tpu\\]",
    ], out
    assert "Python 3.10; azr_jax needs >= 3.11" in out


def test_setup_with_python_311_uses_it(tmp_path):
    out = _setup(tmp_path, "3.11")
    lines = [x for x in out.splitlines() if x.startswith("+ ")]
    assert lines[0] == "+ python3 -m venv .venv" and "uv" not in out, out
    assert lines[-1] == "+ .venv/bin/python -m pip install -q -e .\\[tpu\\]"


def test_install_runs_the_setup_script_on_every_worker(tmp_path):
    calls = _run(tmp_path, "install", exists=True)
    assert "--worker=all" in calls[-1] and "bash scripts/setup_tpu_vm.sh" in calls[-1], calls


def test_dry_run_prints_the_gcloud_commands(tmp_path):
    """DRY_RUN=1: nothing runs (no gcloud on PATH needed), every command is printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("NAME", "ZONE", "PROJECT", "HOST")}
    env.update(DRY_RUN="1", ACCELERATOR_TYPE="v5litepod-8", PATH="/usr/bin:/bin")
    res = subprocess.run(
        ["bash", str(SCRIPT), "up", "--config.num_steps=2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [x for x in res.stdout.splitlines() if x.startswith("+ gcloud")]
    verbs = [x.split()[5] for x in lines]  # + gcloud compute tpus tpu-vm VERB
    assert verbs == ["create", "scp", "ssh", "ssh"], res.stdout
    assert "--accelerator-type=v5litepod-8 --version=v2-alpha-tpuv5-lite" in lines[0]
    command = shlex.split(lines[-1])[-1]  # the ssh --command, unquoted once
    assert "configs/azr.py:qwen2.5-coder-7b\\,v5e-8 --config.num_steps=2" in command, command


def test_the_tpu_extra_pins_the_tested_jax_and_libtpu():
    import tomllib

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["tpu"]
    assert "jax[tpu]==0.10.2" in extra and "libtpu==0.0.42.*" in extra
    compiler = (REPO / "requirements-tpu-compiler.txt").read_text()
    assert "libtpu==0.0.42.*" in compiler  # the TPU compiler the presets were checked with


def test_make_on_python_310_names_the_command_that_installs_311(tmp_path):
    """`make` with a Python below 3.11 stops before pip with the commands that get one."""
    shim = tmp_path / "python3.10"
    shim.write_text(
        "#!/usr/bin/env bash\n"
        f'exec {sys.executable} -c "import sys; sys.version_info = (3, 10, 12); '
        'sys.version = \'3.10.12 (fake)\'; exec(sys.argv[1])" "${2}"\n'
    )
    shim.chmod(0o755)
    res = subprocess.run(
        ["make", "-C", str(REPO), "setup", f"PYTHON={shim}", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0
    assert "needs Python >= 3.11" in res.stderr and "this is 3.10.12" in res.stderr, res.stderr
    assert "uv python install 3.11" in res.stderr
    assert not (tmp_path / "venv").exists()  # nothing was installed
