"""Crash-safe checkpoints of a run: device state (sharded arrays) and host state (JSON) together.

One Orbax step directory `<directory>/<step>/` holds both items:
  device/ - a pytree of jax arrays (params, optimizer state, step, rng key, ...), written shard
            by shard from every process (Orbax `StandardSave`),
  host/   - plain JSON-able data the next step depends on (replay buffers with their numpy RNG
            states, host RNG state, ...), written by the primary process (`JsonSave`).
Orbax writes a step into `<step>.orbax-checkpoint-tmp-*` and renames it to `<step>` only once
both items are complete, so a step is either whole or absent: a process killed mid-save leaves a
tmp directory that `latest_step`/`restore` never see (and that the next `Checkpointer` removes).

Multi-host: every process must call `save` and `restore` with the same arguments; Orbax
coordinates the writes and the commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from azr_jax.storage import paths

_DEVICE = "device"
_HOST = "host"


class CheckpointSaveError(OSError):
    """A checkpoint could not be written (disk full, permissions); the message names the directory."""


class Checkpointer:
    """Saves every `save_interval_steps` steps, keeps the newest `max_to_keep` steps.

    Example:
        ckpt = Checkpointer(workdir / "checkpoints", save_interval_steps=50, max_to_keep=3)
        if (step := ckpt.latest_step()) is not None:
            state, host = ckpt.restore(step, abstract_state)
        ...
        ckpt.save(step, state, host)  # no-op unless step % 50 == 0
        ckpt.save(last_step, state, host, force=True)
        ckpt.close()
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        save_interval_steps: int,
        max_to_keep: int | None,
        async_save: bool = True,
    ):
        """Opens (or creates) the checkpoint directory.

        Args:
            directory: where the step directories live: a local path (absolute, or relative to
                the cwd) or a `gs://` URL.
            save_interval_steps: `save` writes only steps that are a multiple of this (or a
                preemption step, or `force=True`).
            max_to_keep: newest steps to keep; older ones are deleted after a new step commits.
                None keeps all.
            async_save: write in a background thread; `save` returns once the arrays are
                copied to host memory. The next `save`, `wait` and `close` wait for it.
        """
        if save_interval_steps < 1:
            raise ValueError(f"save_interval_steps={save_interval_steps} must be >= 1")
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep={max_to_keep} must be >= 1 (or None to keep all)")
        self.directory = paths.run_path(directory)  # a local directory or a gs:// URL
        self._pending: int | None = None  # the step of the last save (async: maybe in flight)
        policies = ocp.checkpoint_managers
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            # Exactly "every N steps, or when the cluster signals preemption": Orbax's default
            # would also save whatever step comes first in an empty directory.
            save_decision_policy=policies.AnySavePolicy(
                [
                    policies.FixedIntervalPolicy(save_interval_steps),
                    policies.PreemptionCheckpointingPolicy(),
                ]
            ),
            enable_async_checkpointing=async_save,
            # Removes `<step>.orbax-checkpoint-tmp-*` left by a killed save; finished steps are
            # never touched.
            cleanup_tmp_directories=True,
            create=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={
                _DEVICE: ocp.StandardCheckpointHandler(),
                _HOST: ocp.JsonCheckpointHandler(),
            },
        )

    def save(self, step: int, device_state: Any, host_state: Any, force: bool = False) -> bool:
        """Saves `step` if the interval policy (or `force`) says so; returns whether it did.

        Args:
            step: the training step the state is *after*; restoring it resumes at `step + 1`.
            device_state: pytree of jax arrays, any sharding.
            host_state: JSON-able data (dicts, lists, str, int, float, bool, None). Tuples come
                back as lists.
            force: save regardless of the interval (e.g. the final step). Saving a step that
                already exists is an error.

        Raises:
            CheckpointSaveError: writing this step (or, with async saves, the previous one)
                failed, e.g. no space left or no permission; names the directory. The steps
                already complete stay as they were (restorable).
        """
        try:
            saved = self._manager.save(
                step,
                args=ocp.args.Composite(
                    **{
                        _DEVICE: ocp.args.StandardSave(device_state),
                        _HOST: ocp.args.JsonSave(host_state),
                    }
                ),
                force=force,
            )
        except CheckpointSaveError:
            raise
        except Exception as e:
            raise self._save_failed(step, e) from e
        if saved:
            self._pending = step
        return saved

    def _save_failed(self, step: int | None, cause: Exception) -> CheckpointSaveError:
        """The error for a failed save, naming the directory and the newest complete step."""
        try:  # read the disk again: the manager's cached step list may include the failed one
            done = sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())
        except OSError:
            done = []
        step = self._pending if step is None else step
        which = f"step {step}" if step is not None else "a checkpoint"
        kept = (
            f"the last complete checkpoint, step {done[-1]}, is intact and rerunning resumes "
            "from it"
            if done
            else "no complete checkpoint exists yet"
        )
        return CheckpointSaveError(
            f"saving {which} to {self.directory} failed: {type(cause).__name__}: "
            f"{str(cause)[:500]}. The disk may be full or the directory not writable: free space "
            f"or fix the permissions of {self.directory} (or use another --config.output_dir); "
            f"{kept}."
        )

    def latest_step(self) -> int | None:
        """The newest complete step, or None if there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """All complete steps, oldest first."""
        return sorted(self._manager.all_steps())

    def restore(self, step: int | None, abstract_device_state: Any) -> tuple[Any, Any]:
        """Restores `(device_state, host_state)` of `step` (None: the latest step).

        Args:
            step: which step; None picks `latest_step()`.
            abstract_device_state: pytree of `jax.ShapeDtypeStruct` with `sharding` set, of the
                same structure, shapes and dtypes as the saved device state. Arrays are read
                straight into those shardings (the mesh may differ from the one that saved).

        Raises:
            FileNotFoundError: no such step (or no step at all).
            ValueError: the checkpoint's tree, shapes or dtypes differ from
                `abstract_device_state` (it belongs to another config); names every mismatch.
            RuntimeError: the step directory is unreadable (corrupted); names the path. Nothing
                is deleted.
        """
        self.wait()
        steps = self.all_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
            step = steps[-1]
        if step not in steps:
            raise FileNotFoundError(
                f"no complete checkpoint for step {step} in {self.directory}; have {steps}"
            )
        path = self.directory / str(step)
        try:
            stored = self._manager.item_metadata(step)[_DEVICE]
            stored_tree = stored.tree if hasattr(stored, "tree") else stored
            stored_flat = ocp.tree.to_flat_dict(stored_tree)
            if not stored_flat:
                raise FileNotFoundError(f"no array metadata in {path / _DEVICE}")
        except Exception as e:
            raise _corrupted(path, steps, e) from e
        _check_matches(stored_flat, abstract_device_state, path)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    **{
                        _DEVICE: ocp.args.StandardRestore(abstract_device_state),
                        _HOST: ocp.args.JsonRestore(),
                    }
                ),
            )
        except Exception as e:
            raise _corrupted(path, steps, e) from e
        return restored[_DEVICE], restored[_HOST]

    def restore_params(self, step: int, abstract_params: Any) -> Any:
        """Only the parameters of `step` (the device state's `params`), read straight into the
        shardings of `abstract_params`: no optimizer state is read, so evaluating a run needs
        the memory of its weights alone. Errors as `restore`."""
        self.wait()
        steps = self.all_steps()
        if step not in steps:
            raise FileNotFoundError(
                f"no complete checkpoint for step {step} in {self.directory}; have {steps}"
            )
        path = self.directory / str(step)
        wanted = {"params": abstract_params}
        try:
            stored = self._manager.item_metadata(step)[_DEVICE]
            stored_tree = stored.tree if hasattr(stored, "tree") else stored
            stored_flat = {
                k: v for k, v in ocp.tree.to_flat_dict(stored_tree).items() if k[0] == "params"
            }
            if not stored_flat:
                raise FileNotFoundError(f"no parameters in {path / _DEVICE}")
        except Exception as e:
            raise _corrupted(path, steps, e) from e
        _check_matches(stored_flat, wanted, path)
        restore_args = jax.tree_util.tree_map(
            lambda a: ocp.ArrayRestoreArgs(
                sharding=a.sharding, global_shape=a.shape, dtype=a.dtype
            ),
            wanted,
        )
        try:
            restored = ocp.PyTreeCheckpointer().restore(
                path / _DEVICE,
                args=ocp.args.PyTreeRestore(
                    item=wanted, restore_args=restore_args, partial_restore=True
                ),
            )
        except Exception as e:
            raise _corrupted(path, steps, e) from e
        return restored["params"]

    def wait(self) -> None:
        """Blocks until a pending async save has committed.

        Raises:
            CheckpointSaveError: that save failed (see `save`).
        """
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            raise self._save_failed(None, e) from e
        self._pending = None

    def close(self) -> None:
        """Waits for pending saves and releases Orbax's resources (CheckpointSaveError as `wait`)."""
        try:
            self._manager.close()
        except Exception as e:
            raise self._save_failed(None, e) from e

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_matches(stored_flat: dict[tuple, Any], abstract: Any, path: Path) -> None:
    """A ValueError listing every key whose presence, shape or dtype differs."""
    wanted_flat = ocp.tree.to_flat_dict(ocp.tree.serialize_tree(abstract, keep_empty_nodes=True))
    differ, missing, extra = [], [], []
    for key in sorted(stored_flat.keys() | wanted_flat.keys(), key=str):
        name = ".".join(str(k) for k in key)
        if key not in wanted_flat:
            extra.append(f"  {name}: in the checkpoint but not in the state being restored")
        elif key not in stored_flat:
            missing.append(f"  {name}: missing from the checkpoint")
        else:
            have, want = stored_flat[key], _stored_form(wanted_flat[key])
            if tuple(have.shape) != tuple(want.shape) or have.dtype != want.dtype:
                differ.append(
                    f"  {name}: checkpoint has {have.dtype}{list(have.shape)}, "
                    f"this run expects {want.dtype}{list(want.shape)}"
                )
    problems = differ + missing + extra
    if problems:
        shown = problems[:20] + (
            [f"  ... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        raise ValueError(
            f"checkpoint {path} does not match the state being restored; it belongs to another "
            "config (model size, optimizer or state layout):\n"
            + "\n".join(shown)
            + "\nUse the config that wrote it, or a fresh workdir."
        )


def _stored_form(leaf: Any) -> jax.ShapeDtypeStruct:
    """Shape and dtype as Orbax stores a leaf: a typed PRNG key is saved as its uint32 data."""
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(leaf.shape, leaf.dtype))
    return leaf


def _corrupted(path: Path, steps: list[int], cause: Exception) -> RuntimeError:
    older = [s for s in steps if s < int(path.name)]
    hint = (
        f"move it aside to resume from step {older[-1]}"
        if older
        else "no older complete step exists; start from a fresh workdir"
    )
    return RuntimeError(
        f"checkpoint {path} is unreadable (corrupted or partially deleted): "
        f"{type(cause).__name__}: {str(cause)[:500]}. Nothing was deleted; {hint}."
    )
