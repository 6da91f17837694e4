"""One path type for everything a run reads or writes: a local path or a `gs://` URL.

`run_path(s)` gives an `etils.epath.Path` (what Orbax uses; `gs://` goes through gcsfs), so the
same code writes a run directory on local disk or in a Cloud Storage bucket. What object storage
lacks is handled here, once:
  - no atomic rename: `write_atomic` writes one object in one upload (readers see the old or the
    new object, whole); on local disk it writes a temporary file and renames it;
  - no append: files that grow (metrics.jsonl, TensorBoard events) are kept in a local staging
    directory and uploaded whole with `upload` (see run/records.py);
  - directories are prefixes: `mkdir` is a no-op there and an empty "directory" does not exist.

Pointing the clients at an emulator (tests): STORAGE_EMULATOR_HOST for gcsfs, and for
tensorstore (Orbax's arrays) TENSORSTORE_GCS_HTTP_URL with GOOGLE_AUTH_TOKEN_FOR_TESTING.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from etils import epath

URL_SCHEMES = ("gs://",)


def is_url(path: str | os.PathLike) -> bool:
    """True for a Cloud Storage URL (`gs://bucket/...`)."""
    return str(path).startswith(URL_SCHEMES)


def run_path(path: str | os.PathLike) -> epath.Path:
    """`path` as an epath.Path: a `gs://` URL as is, a local path made absolute (`~` expanded).

    Raises:
        ValueError: a mangled URL such as `gs:/bucket` (one slash), which would otherwise become
            a local directory named `gs:`.
    """
    text = os.fspath(path)
    if is_url(text):
        if len(text) <= len("gs://") or text[len("gs://")] == "/":
            raise ValueError(f"{text!r}: a Cloud Storage URL needs a bucket: gs://BUCKET/PATH")
        return epath.Path(text)
    if text.startswith("gs:"):
        raise ValueError(
            f"{text!r} is not a Cloud Storage URL (it would create a local directory named "
            "'gs:'); write gs://BUCKET/PATH with two slashes"
        )
    return epath.Path(os.path.abspath(os.path.expanduser(text)))


def local(path: str | os.PathLike) -> Path:
    """A local path as a pathlib.Path; a URL is an error (callers stage it first)."""
    if is_url(path):
        raise ValueError(f"{path}: a local path is needed here, not a URL")
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` so that readers see the old or the new file, whole."""
    path = run_path(path)
    if is_url(path):
        path.write_bytes(data)  # one object upload: atomic in Cloud Storage
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def makedirs(path: str | os.PathLike) -> epath.Path:
    """Creates a local directory (parents too); a no-op for a URL (prefixes need no creating)."""
    path = run_path(path)
    if not is_url(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def upload(local_file: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copies one local file to `dest` (local or URL) whole, atomically."""
    write_atomic(dest, Path(local_file).read_bytes())


def upload_tree(
    local_dir: str | os.PathLike, dest: str | os.PathLike, last: str = "config.json"
) -> epath.Path:
    """Copies the files under `local_dir` to `dest` (local path or URL); returns `dest`.

    The file named `last` goes last, so that its presence means the copy is complete (a model
    directory's config.json: readers look for it first).
    """
    src, dest = Path(local_dir), run_path(dest)
    if not is_url(dest):
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return dest
    files = sorted((p for p in src.rglob("*") if p.is_file()), key=lambda p: (p.name == last, p))
    for file in files:
        upload(file, dest / file.relative_to(src).as_posix())
    return dest


def list_files(url: str | os.PathLike) -> dict[str, int]:
    """{relative name: size} of every file under `url` (a directory or prefix), read afresh
    (no cached listing)."""
    root = str(run_path(url)).rstrip("/")
    if not is_url(root):
        return {
            os.path.relpath(os.path.join(folder, name), root): os.path.getsize(
                os.path.join(folder, name)
            )
            for folder, _, names in os.walk(root)
            for name in names
        }
    import fsspec  # epath's walk drops the gs:// of the folders it yields

    fs = fsspec.filesystem("gs")
    fs.invalidate_cache(root)
    prefix = root[len("gs://") :] + "/"
    found = fs.find(root, detail=True)
    return {
        name[len(prefix) :]: int(info["size"])
        for name, info in found.items()
        if info.get("type") == "file" and name.startswith(prefix)
    }
