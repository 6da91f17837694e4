"""The package's layering holds: no module imports from a layer above its own.

An import graph over `azr_jax/` read from the source (nothing is imported). The table below is the
one place the layers are written down; each subpackage's `__init__.py` says the same in words.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "azr_jax"

# package -> the azr_jax packages its modules may import (besides their own).
MAY_IMPORT = {
    "storage": set(),
    "parallel": set(),
    "model": {"parallel", "storage"},
    "sampling": {"parallel", "model"},
    "update": {"parallel", "model"},
    "executor": set(),
    "selfplay": {"executor"},
    "evals": {"executor", "selfplay", "sampling", "model", "parallel"},
    "warmstart": {"parallel", "model", "executor", "selfplay"},
    "run": {
        "storage",
        "parallel",
        "model",
        "sampling",
        "update",
        "executor",
        "selfplay",
        "evals",
        "warmstart",
    },
}
HOST_ONLY = {"executor", "selfplay", "storage"}  # never import JAX (STYLE.md, rule 6)
DEVICE_LIBS = {"jax", "jaxlib", "flax", "optax", "orbax"}


def _imports(path: Path, source: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in a module, relative ones resolved."""
    tree = ast.parse(source, filename=str(path))
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    here = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module
            out.append((node.lineno, mod))
            # `from azr_jax import model` names a package: count each name as an import of it
            if mod == "azr_jax":
                out += [(node.lineno, f"azr_jax.{a.name}") for a in node.names]
    return out


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _layer_of(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else None


def test_every_subpackage_has_a_layer():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(MAY_IMPORT), (
        "a new subpackage needs its row in MAY_IMPORT (and its rule in its __init__.py docstring)"
    )
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside any concept folder: {loose}"


def _upward_imports(path: Path, source: str) -> list[str]:
    layer = _layer_of(path)
    bad = []
    for line, mod in _imports(path, source):
        top = mod.split(".")[0]
        if layer in HOST_ONLY and top in DEVICE_LIBS:
            bad.append(f"line {line}: {mod} (the {layer} layer is host-only: no JAX)")
        if top != "azr_jax" or mod == "azr_jax":
            continue
        target = mod.split(".")[1]
        if layer is None or target == layer or target == "__version__":
            continue
        if target not in MAY_IMPORT[layer]:
            bad.append(f"line {line}: {mod} ({layer} may import only {sorted(MAY_IMPORT[layer])})")
    return bad


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_up_the_layers(path):
    bad = _upward_imports(path, path.read_text())
    assert not bad, f"{path.relative_to(PACKAGE.parent)} imports up the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*/__init__.py")), ids=lambda p: p.parent.name)
def test_init_is_only_a_docstring(path):
    body = ast.parse(path.read_text()).body
    assert len(body) == 1 and isinstance(body[0], ast.Expr), (
        f"{path.relative_to(PACKAGE.parent)}: a subpackage's __init__.py holds only its docstring "
        "(what the concept is, what it may import); import from the modules themselves"
    )
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert "import" in doc.lower(), f"{path}: the docstring says what the package may import"


def test_the_check_catches_what_it_should():
    """The check itself can fail: upward, sideways and JAX-on-the-host imports are reported."""
    model_file = PACKAGE / "model" / "probe.py"
    assert _upward_imports(model_file, "from azr_jax.run import trainer\n")
    assert _upward_imports(model_file, "from azr_jax import selfplay\n")
    assert _upward_imports(
        PACKAGE / "update" / "probe.py", "from azr_jax.sampling import sampler\n"
    )
    assert _upward_imports(PACKAGE / "selfplay" / "probe.py", "import jax.numpy as jnp\n")
    assert _upward_imports(PACKAGE / "executor" / "probe.py", "from ..selfplay import tasks\n")
    assert not _upward_imports(model_file, "from azr_jax.parallel import sharding\nimport jax\n")
