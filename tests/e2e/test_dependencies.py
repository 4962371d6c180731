"""Each package's pyproject.toml says what it really needs (static; no cluster needed).

The shared library keeps what two or more services use; a service declares the
third-party packages its own code imports (beyond the library's). So the library must not
import what only the apiserver needs (etcd, NATS, the Kubernetes schemas), and no package
may import a distribution that neither it nor the library declares.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "libs/skiff", *sorted(p for p in (ROOT / "services").iterdir() if p.is_dir())]
APISERVER_ONLY = {"aetcd", "nats-py", "kubernetes-validate", "cel-expr-python"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(package: Path) -> set[str]:
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    return {
        _normalize(re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0])
        for dep in project.get("dependencies", [])
    }


def _imported(package: Path) -> set[str]:
    """Top-level modules the package's own source imports (tests and generated code aside)."""
    modules: set[str] = set()
    for path in (package / "src").rglob("*.py"):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"skiff", "__future__"}


def _candidates(module: str) -> set[str]:
    """The distributions that may provide a top-level module (several for a namespace
    package such as ``opentelemetry``)."""
    return {_normalize(d) for d in packages_distributions().get(module, [module])}


def _undeclared(modules: set[str], declared: set[str]) -> list[str]:
    return sorted(m for m in modules if not _candidates(m) & declared)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_imports_are_declared(package: Path) -> None:
    declared = _declared(package)
    if package.name != "skiff":
        declared |= _declared(ROOT / "libs/skiff")
    missing = _undeclared(_imported(package), declared)
    assert not missing, f"{package.name} imports {missing} without declaring them"


def test_library_leaves_apiserver_only_dependencies_to_the_apiserver() -> None:
    lib = ROOT / "libs/skiff"
    assert not _declared(lib) & APISERVER_ONLY
    assert not set().union(*map(_candidates, _imported(lib))) & APISERVER_ONLY
    assert APISERVER_ONLY <= _declared(ROOT / "services/apiserver")
