"""Multi-host plumbing: start the JAX cluster, and move batches between hosts and the global mesh.

One process runs per host (a TPU VM worker, or a GPU machine); each owns that host's devices.
The mesh (`sharding.make_mesh`) spans the devices of every host, so a jitted step sees one global
batch. Host-side phases (prompts, the executor, rewards) work on each process's own rows:

    rows = process_rows(mesh, global_batch_size)     # which rows of the batch are this host's
    local = run_programs(all_rows[rows])             # host work on this host's share only
    batch = global_batch({"tokens": local}, mesh)    # -> jax.Array [B, T] over data x fsdp
    mine = local_rows(batch["tokens"])               # the reverse: this host's rows, in order

Every process must run the same jitted calls in the same order; only `is_writer()` (process 0)
writes logs, samples and plots.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from azr_jax.parallel import sharding as shd

log = logging.getLogger(__name__)

# Environment variables that only exist on Cloud TPU VMs / pod slices (or multislice jobs); any of
# them means `jax.distributed.initialize()` can find the cluster by itself.
TPU_ENV_VARS = (
    "TPU_WORKER_HOSTNAMES",
    "TPU_WORKER_ID",
    "CLOUD_TPU_TASK_ID",
    "TPU_ACCELERATOR_TYPE",
    "MEGASCALE_COORDINATOR_ADDRESS",
    "MEGASCALE_NUM_SLICES",
)
# TPU chips are PCI devices of Google's vendor id (what jax's own TPU detection looks for).
GOOGLE_PCI_VENDOR = "0x1ae0"
FLAG_NAMES = ("coordinator_address", "num_processes", "process_id")


def detect_tpu_cluster(
    environ: Mapping[str, str] = os.environ, pci_dir: Path = Path("/sys/bus/pci/devices")
) -> str | None:
    """Why this looks like a Cloud TPU VM (a short reason), or None when it does not."""
    for name in TPU_ENV_VARS:
        if environ.get(name):
            return f"${name} is set"
    for vendor in sorted(pci_dir.glob("*/vendor")):
        try:
            if vendor.read_text().strip() == GOOGLE_PCI_VENDOR:
                return f"TPU chip at {vendor.parent}"
        except OSError:
            continue
    return None


def check_flags(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> bool:
    """True when all three are given, False when none is; a partial set or bad value is an error."""
    values = dict(zip(FLAG_NAMES, (coordinator_address, num_processes, process_id), strict=True))
    given = [k for k, v in values.items() if v is not None]
    if not given:
        return False
    missing = [k for k in FLAG_NAMES if values[k] is None]
    if missing:
        raise ValueError(
            f"multi-host: got --{' --'.join(given)} but not --{' --'.join(missing)}; pass all "
            "three (--coordinator_address=HOST0:PORT --num_processes=N --process_id=I on each "
            "host) or none (single host, or a Cloud TPU VM that finds its peers itself)"
        )
    if ":" not in coordinator_address:
        raise ValueError(
            f"--coordinator_address={coordinator_address!r}: expected HOST:PORT of process 0, "
            "e.g. 10.0.0.2:8476"
        )
    if num_processes < 1:
        raise ValueError(f"--num_processes={num_processes}: must be >= 1")
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"--process_id={process_id}: must be in [0, --num_processes={num_processes})"
        )
    return True


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Joins this process to the cluster; call once, before anything touches a JAX device.

    All three arguments: an explicit cluster (GPU hosts, CPU tests). None: a Cloud TPU VM or pod
    slice initialises itself; any other machine is a single host and nothing happens.
    """
    explicit = check_flags(coordinator_address, num_processes, process_id)
    if jax.distributed.is_initialized():
        log.info("jax.distributed is already initialised; leaving it as it is")
    elif explicit:
        # CPU processes exchange data over gloo (TCP); GPU and TPU use their own collectives.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    else:
        reason = detect_tpu_cluster()
        if reason is None:
            log.info("single host: %d devices (%s)", jax.device_count(), jax.default_backend())
            return
        log.info("Cloud TPU VM (%s): jax.distributed.initialize() finds the workers", reason)
        jax.distributed.initialize()
    log.info(
        "process %d of %d: %d local devices, %d global (%s)",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
        jax.default_backend(),
    )


def define_flags() -> None:
    """Registers --coordinator_address, --num_processes, --process_id (once) for entry scripts."""
    from absl import flags

    if "coordinator_address" in flags.FLAGS:
        return
    flags.DEFINE_string(
        "coordinator_address",
        None,
        "HOST:PORT of process 0 (multi-host GPU). Unset on one host or on Cloud TPU VMs.",
    )
    flags.DEFINE_integer("num_processes", None, "Number of processes (one per host).")
    flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")


def start_from_flags() -> None:
    """What every entry script does first: logging, then `initialize` from the cluster flags."""
    from absl import flags

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax's per-save INFO lines
    for name in ("fsspec", "gcsfs"):  # per-read INFO lines of gs:// files
        logging.getLogger(name).setLevel(logging.WARNING)
    f = flags.FLAGS
    initialize(f.coordinator_address, f.num_processes, f.process_id)


def is_writer() -> bool:
    """True on process 0: the one process that writes logs, samples and plots."""
    return jax.process_index() == 0


def process_rows(mesh: Mesh, global_batch_size: int) -> np.ndarray:
    """Indices (sorted) of the rows of a [global_batch_size, ...] batch that this host holds.

    Usually a contiguous range (`rows[0]:rows[-1] + 1`); on TPU topologies the mesh may
    interleave hosts, hence indices. Hosts that are replicas of each other get the same rows.
    """
    shd.check_batch(mesh, global_batch_size)
    return shd.addressable_rows(shd.batch_sharding(mesh, 1), (global_batch_size,))


def global_batch(local: Any, mesh: Mesh, global_batch_size: int | None = None) -> Any:
    """One global array per leaf, rows over data x fsdp, from this host's rows (`process_rows`).

    `local` is a numpy array or a pytree of them, each [rows of this host, ...].
    `global_batch_size` is needed only when hosts are replicas of each other.
    """

    def one(x: Any) -> jax.Array:
        x = np.asarray(x)
        shape = None if global_batch_size is None else (global_batch_size, *x.shape[1:])
        return jax.make_array_from_process_local_data(shd.batch_sharding(mesh, x.ndim), x, shape)

    return jax.tree_util.tree_map(one, local)


def local_rows(x: Any) -> Any:
    """This host's rows of a batch-sharded array (or pytree), in order: `global_batch` reversed."""

    def one(a: jax.Array) -> np.ndarray:
        rows = shd.addressable_rows(a.sharding, a.shape)
        pieces: dict[int, np.ndarray] = {}
        for shard in a.addressable_shards:
            start = shard.index[0].start or 0
            pieces.setdefault(start, np.asarray(shard.data))
        out = np.concatenate([pieces[k] for k in sorted(pieces)], axis=0)
        assert len(out) == len(rows), (a.shape, len(out), len(rows))
        return out

    return jax.tree_util.tree_map(one, x)


def allgather_rows(x: Any) -> Any:
    """The whole batch on every host (numpy) from a global array: e.g. rewards -> advantages."""
    return jax.tree_util.tree_map(
        lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)), x
    )


def fetch(x: Any) -> Any:
    """A pytree of arrays as numpy, whole, on every host (`device_get` on one host)."""
    if jax.process_count() == 1 or all(
        a.is_fully_addressable for a in jax.tree_util.tree_leaves(x) if isinstance(a, jax.Array)
    ):
        return jax.device_get(x)
    return allgather_rows(x)


def my_share(n: int) -> np.ndarray:
    """Indices of this process's share of `n` host-side jobs (contiguous, balanced, in order)."""
    return np.array_split(np.arange(n), jax.process_count())[jax.process_index()]


def gather_shares(local: list) -> list:
    """Every process's `local` results (JSON-able), concatenated in process order: the inverse of
    `my_share`. A collective: every process calls it, from the main thread, in the same order."""
    if jax.process_count() == 1:
        return list(local)
    data = np.frombuffer(json.dumps(local).encode(), np.uint8)
    sizes = host_allgather(np.array([data.size], np.int64))[:, 0]  # [P]
    buf = np.zeros(int(sizes.max()), np.uint8)
    buf[: data.size] = data
    every = host_allgather(buf)  # [P, max size]
    out: list = []
    for row, size in zip(every, sizes, strict=True):
        out += json.loads(bytes(row[:size]).decode())
    return out


def host_allgather(x: np.ndarray) -> np.ndarray:
    """[num_processes, ...]: `x` from every process, stacked in process order (same shape each)."""
    if jax.process_count() == 1:
        return np.asarray(x)[None]
    return np.asarray(multihost_utils.process_allgather(np.asarray(x), tiled=False))


def sync(name: str) -> None:
    """A barrier: returns once every process has reached `sync(name)` with the same name."""
    multihost_utils.sync_global_devices(name)
