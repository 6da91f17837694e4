"""Reads an offline W&B run file (`run-<id>.wandb`): what a run logged, without the network.

The file is W&B's 7-byte header (":W&B", version) then a LevelDB log (32 KiB blocks of records
with a 7-byte header: crc32, length, type FULL/FIRST/MIDDLE/LAST), each record one protobuf
`wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, chunks, pending = 7, [], b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        body = data[pos + 7 : pos + 7 + length]
        if len(body) < length:  # a record still being written
            break
        pos += 7 + length
        if kind == _FULL:
            chunks.append(body)
        elif kind == _FIRST:
            pending = body
        elif kind == _MIDDLE:
            pending += body
        elif kind == _LAST:
            chunks.append(pending + body)
        elif kind == 0 and length == 0:
            pos += _BLOCK - pos % _BLOCK if pos % _BLOCK else 0
    return [pb.Record.FromString(c) for c in chunks]


def finished_records(path: Path, timeout_s: float = 60.0) -> list:
    """`records(path)` once the file ends with the run's "exit" record.

    `run.finish()` can return before W&B's service process has written the run's last records
    (seen on a loaded CI machine: the final history row missing), so wait for the file to be whole.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        found = records(path)
        if found and found[-1].WhichOneof("record_type") == "exit":
            return found
        if time.monotonic() > deadline:
            kinds = [r.WhichOneof("record_type") for r in found]
            raise AssertionError(f"{path}: no exit record after {timeout_s:.0f} s; records {kinds}")
        time.sleep(0.2)


def history(run_dir: Path) -> tuple[str, list[dict]]:
    """(run id, history rows as {key: value}) of every offline run under `run_dir`/wandb."""
    rows, ids = [], set()
    for path in sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")):
        for r in finished_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                ids.add(r.run.run_id)
            elif kind == "history":
                rows.append(
                    {
                        (item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                        for item in r.history.item
                    }
                )
    if len(ids) != 1:
        raise AssertionError(f"expected one W&B run id under {run_dir}, found {sorted(ids)}")
    return ids.pop(), rows
