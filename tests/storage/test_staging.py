"""storage/staging.py: gs:// objects copied once per host, reused, refreshed, errors named."""

import multiprocessing
import os

import pytest

from azr_jax.storage import paths, staging


@pytest.fixture
def remote(gcs, tmp_path, request):
    """A model-like directory in the bucket; returns its URL."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text('{"a": 1}')
    (src / "model.safetensors").write_bytes(bytes(range(256)) * 100)
    url = f"gs://{gcs.bucket}/staging/{os.getpid()}/{request.node.originalname}/model"
    paths.upload_tree(src, url)
    return url


def test_local_paths_are_returned_as_they_are(tmp_path):
    assert staging.stage(str(tmp_path)) == tmp_path


def test_stage_copies_once_then_reuses_then_refreshes(remote, tmp_path):
    cache = tmp_path / "cache"
    out = staging.stage(remote, cache)
    assert out == cache / remote[len("gs://") :]
    assert (out / "model.safetensors").read_bytes() == bytes(range(256)) * 100
    (out / "model.safetensors").write_bytes(b"local edit")  # a reuse does not copy again
    assert staging.stage(remote, cache) == out
    assert (out / "model.safetensors").read_bytes() == b"local edit"
    paths.write_atomic(f"{remote}/config.json", b'{"a": 22}')  # the bucket changed: copied again
    staging.stage(remote, cache)
    assert (out / "config.json").read_text() == '{"a": 22}'
    assert (out / "model.safetensors").read_bytes() == bytes(range(256)) * 100


def test_stage_a_single_object(remote, tmp_path):
    out = staging.stage(f"{remote}/config.json", tmp_path / "cache")
    assert out.read_text() == '{"a": 1}'


def test_missing_url_is_an_error_naming_it(gcs, tmp_path):
    url = f"gs://{gcs.bucket}/no/such/model"
    with pytest.raises(FileNotFoundError, match=url):
        staging.stage(url, tmp_path / "cache")


def _stage_and_report(args):
    url, cache = args
    return str(staging.stage(url, cache))


def test_processes_of_a_host_share_one_copy(remote, tmp_path):
    cache = tmp_path / "cache"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        outs = pool.map(_stage_and_report, [(remote, cache)] * 2)
    assert len(set(outs)) == 1
    assert sorted(p.name for p in (cache / remote[len("gs://") :]).iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
