"""Fixtures the code-grading tests share: one sandbox pool and the publisher-format files per
test module (a module that defines its own `pool` uses that one)."""

import pytest

from azr_jax.evals import benchmarks as bm
from azr_jax.evals import code_grading as cg
from tests.evals import publisher_files as pf


@pytest.fixture(scope="module")
def pool():
    with cg.code_pool(workers=2, test_timeout_s=1.5, memory_mb=512) as p:
        yield p


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = pf.write_all(tmp_path_factory.mktemp("benchmarks"))
    return {name: bm.load(name, d) for name in bm.CODE_BENCHMARKS}
