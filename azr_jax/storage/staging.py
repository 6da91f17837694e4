"""Cloud Storage objects staged once per host into a local cache that every process reads.

Model weights (`--config.model_name=gs://BUCKET/Qwen2.5-Coder-7B`), evaluation data and the
like are copied, not streamed: transformers reads config and tokenizer files only from a local
directory, the safetensors loader seeks tensor by tensor (one ranged request each over a
network), and a restart on the same VM (or `evaluate.py`/`export_hf.py` after training) reuses
the copy instead of fetching 15 GB again. The first process of a host to take the lock copies;
the others wait and then read the same files. A copy is reused while the names and sizes of the
objects under the URL are those it recorded (`.staged.json`, written last: a copy cut short is
redone).

The cache is `$AZR_STAGE_DIR`, else `~/.cache/azr_jax/staged`; the copy of `gs://B/P` is
`<cache>/B/P`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from azr_jax.storage import paths

MARKER = ".staged.json"


def cache_root() -> Path:
    """Where staged copies live (`$AZR_STAGE_DIR`, else `~/.cache/azr_jax/staged`)."""
    return Path(os.environ.get("AZR_STAGE_DIR") or "~/.cache/azr_jax/staged").expanduser()


def stage(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """A local path holding `source`: the path itself if local, else a once-per-host copy.

    Args:
        source: a local file/directory, or a `gs://` URL of an object or a prefix (directory).
        cache_dir: where copies go (default `cache_root()`).

    Raises:
        FileNotFoundError: no object (nor any object under the prefix) at the URL; names it.
    """
    if not paths.is_url(source):
        return paths.local(source)
    url = paths.run_path(source)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    dest = root / str(url)[len("gs://") :]
    if url.is_file():
        files = {"": url.stat().length}
    else:
        files = paths.list_files(url)
    if not files:
        raise FileNotFoundError(
            f"{url}: no such object in Cloud Storage (nor any object under it); check the URL "
            f"(gsutil ls {url}) and that this VM's service account can read the bucket"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    marker = dest.parent / f"{dest.name}{MARKER}"
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one copier per host; the others wait here
        if marker.exists() and json.loads(marker.read_text()) == files and dest.exists():
            return dest
        marker.unlink(missing_ok=True)
        for name, _ in sorted(files.items()):
            src = url / name if name else url
            out = dest / name if name else dest
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".part")
            with src.open("rb") as r, open(tmp, "wb") as w:
                shutil.copyfileobj(r, w, 64 << 20)
            os.replace(tmp, out)
        marker.write_text(json.dumps(files, sort_keys=True))
    return dest
