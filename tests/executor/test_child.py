"""The child's side: the job wire form, the builtins and import guard a program gets."""

import pytest

from azr_jax.executor.child import BannedModuleError, decode_job, program_builtins
from azr_jax.executor.pool import Job, job_bytes


@pytest.mark.parametrize(
    "job",
    [
        Job("def f(x):\n    return x", "'a\\nb'"),
        Job("def g(s):\n    return s  # \u00e9\U0001f600 \x00", "'\x00 \n'", entry="g"),
        Job("def f(x):\n    return x", "1", expect="", literal_expect=True),
        Job("def f(x):\n    return x", "[1]", literal_args=True, expect="[1]"),
        Job("def f(x):\n    return x  # \ud800", "'\udfff'", expect="'\ud83d'"),
    ],
)
def test_job_wire_form_round_trips(job):
    # The zygote frames jobs by byte lengths: newlines, NULs and non-BMP text cannot shift a
    # field, and an empty expected value is not a missing one.
    data = job_bytes(7, job)
    header, _, payload = data.partition(b"\n")
    got = decode_job(header, payload)
    assert header.split()[0] == b"7"
    assert (got["c"], got["a"], got["e"], got["lit"]) == (
        job.code,
        job.args,
        job.entry,
        job.literal_args,
    )
    if job.expect is None:
        assert "x" not in got
    else:
        assert (got["x"], got["xlit"]) == (job.expect, job.literal_expect)


def test_program_builtins_lack_the_banned_and_guard_imports():
    allowed = program_builtins(frozenset({"os", "xml.dom"}), frozenset({"open", "eval"}))
    assert "open" not in allowed and "eval" not in allowed and "len" in allowed
    namespace = {"__name__": "program", "__builtins__": allowed}
    guard = allowed["__import__"]
    for name, fromlist in (("os", ()), ("os.path", ()), ("xml", ("dom",)), ("xml.dom", ())):
        with pytest.raises(BannedModuleError):
            guard(name, namespace, None, fromlist, 0)
    assert guard("math", namespace, None, (), 0).sqrt(4) == 2
    # A real stdlib module may import what it needs (its own globals are authentic).
    import json

    assert guard("os", vars(json), None, (), 0).sep == "/"
