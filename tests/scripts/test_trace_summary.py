"""scripts/trace_summary.py: op totals from a profiler trace, counted once each."""

import gzip
import json

from tests.scripts.script_module import load_module


def _module():
    return load_module("scripts/trace_summary.py")


def _meta(kind, pid, name, tid=None):
    e = {"ph": "M", "name": kind, "pid": pid, "args": {"name": name}}
    if tid is not None:
        e["tid"] = tid
    return e


def _op(pid, tid, name, dur_us):
    return {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": 0, "dur": dur_us}


def test_device_trace_reads_the_xla_ops_line(tmp_path):
    events = [
        _meta("process_name", 1, "/host:CPU"),
        _meta("process_name", 2, "/device:GPU:0"),
        _meta("thread_name", 2, "XLA Modules", 10),
        _meta("thread_name", 2, "XLA Ops", 11),
        _meta("thread_name", 2, "Stream #7", 12),
        _op(1, 5, "PjitFunction(step)", 9000),  # host: not counted
        _op(2, 10, "jit_step", 5000),  # the module contains the ops: not counted twice
        _op(2, 11, "fusion.1", 1500),
        _op(2, 11, "fusion.1", 500),
        _op(2, 11, "custom-call.cudnn", 2500),
        _op(2, 12, "sm90_xmma_gemm", 2400),  # kernels of the same ops
    ]
    path = tmp_path / "plugins/profile/run/host.trace.json.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    mod = _module()
    got = mod.summarize(mod.load_events(tmp_path), top=5)
    assert got["timeline"] == "XLA Ops"
    assert got["total_ms"] == 4.5  # 1.5 + 0.5 + 2.5
    assert got["top"] == [["custom-call.cudnn", 2.5, 0.5556], ["fusion.1", 2.0, 0.4444]]
    assert got["threads"]["/device:GPU:0 / XLA Modules"] == 5.0


def test_cpu_trace_skips_the_executor_wrappers():
    mod = _module()
    events = [
        _meta("process_name", 1, "/host:CPU"),
        _meta("thread_name", 1, "tf_XLAEigen/1", 3),
        _meta("thread_name", 1, "python", 4),
        _op(1, 3, "ThunkExecutor::Execute", 7000),
        _op(1, 3, "dot.2", 4000),
        _op(1, 3, "fusion", 1000),
        _op(1, 4, "PjitFunction(step)", 9000),
    ]
    got = mod.summarize(events)
    assert got["timeline"] == "host XLA threads"
    assert got["total_ms"] == 5.0
    assert [name for name, _, _ in got["top"]] == ["dot.2", "fusion"]
