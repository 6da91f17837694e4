"""storage/paths.py on local disk and on a real Cloud Storage server (the emulator)."""

import os

import pytest

from azr_jax.storage import paths


@pytest.fixture(params=["local", "gs"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "root")
    gcs = request.getfixturevalue("gcs")
    return f"gs://{gcs.bucket}/test_paths/{os.getpid()}/{request.node.originalname}"


def test_run_path_keeps_urls_and_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(paths.run_path("gs://b/azr/run")) == "gs://b/azr/run"
    assert str(paths.run_path("runs/x")) == str(tmp_path / "runs" / "x")
    for bad in ("gs:/b/run", "gs:b", "gs://", "gs:///run"):
        with pytest.raises(ValueError, match="gs://BUCKET/PATH"):
            paths.run_path(bad)
    assert not (tmp_path / "gs:").exists()


def test_write_atomic_read_back_and_overwrite(root):
    f = paths.run_path(root) / "a" / "b.txt"
    paths.write_atomic(f, b"one")
    paths.write_atomic(f, b"two")
    assert f.read_bytes() == b"two"
    assert sorted(p.name for p in f.parent.iterdir()) == ["b.txt"]  # no temporary left


def test_upload_tree_and_list_files(root, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_bytes(b"x" * 10)
    (src / "sub" / "c.txt").write_text("abc")
    dest = paths.upload_tree(src, paths.run_path(root) / "model")
    assert paths.list_files(dest) == {"config.json": 2, "model.safetensors": 10, "sub/c.txt": 3}
    assert (dest / "sub" / "c.txt").read_text() == "abc"


def test_makedirs_and_local(root):
    d = paths.makedirs(paths.run_path(root) / "d")
    if paths.is_url(root):
        with pytest.raises(ValueError, match="not a URL"):
            paths.local(d)
    else:
        assert paths.local(d).is_dir()
