"""A file of the project that is not in the package (scripts/*.py, configs/*.py), as a module."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_module(relative_path: str, name: str | None = None):
    """The module of ROOT/relative_path, registered under `name` (default: the file's stem) so
    that dataclasses and pickles can look it up."""
    path = ROOT / relative_path
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
