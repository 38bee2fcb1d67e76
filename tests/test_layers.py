"""The house has no arrow that runs back up: ``core`` (the record, the errors, the ports) at the
bottom; ``rotation`` and ``provisioning`` (the use cases) on it; ``clients`` (one adapter per outside
system) beside them, implementing the ports; ``bootstrap`` above all of them, building the services
from settings; the triggers (``blueprints``) and the CLI (``rotator``) on top. Checked from the
source: an import that breaks the order fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> the first-party packages it may import (at run time; typing-only imports may look up)
ALLOWED = {
    "core": {"core"},
    "rotation": {"core", "rotation"},
    "provisioning": {"core", "rotation", "provisioning"},
    "clients": {"core", "clients"},
    "bootstrap": {"core", "clients", "rotation", "provisioning", "bootstrap"},
    "blueprints": {"core", "rotation", "provisioning", "bootstrap", "blueprints"},
    "rotator": {"core", "rotation", "provisioning", "bootstrap", "clients", "rotator"},
}
FIRST_PARTY = set(ALLOWED) | {"emulators", "devenv", "demo", "bench", "scripts", "tests", "function_app"}


def runtime_imports(path: Path) -> set[str]:
    """First-party packages a module imports, outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & FIRST_PARTY


def modules(package: str) -> list[Path]:
    single = ROOT / f"{package}.py"
    return [single] if single.exists() else sorted((ROOT / package).glob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_runs_back_up_the_layers(package):
    wrong = {
        f"{path.relative_to(ROOT)} imports {bad}"
        for path in modules(package)
        for bad in runtime_imports(path) - ALLOWED[package]
    }
    assert not wrong, sorted(wrong)


def test_the_ports_live_beside_the_domain_and_the_composition_root_above_it():
    assert (ROOT / "core" / "ports.py").exists() and not (ROOT / "clients" / "interfaces.py").exists()
    assert (ROOT / "bootstrap.py").exists() and not (ROOT / "clients" / "factory.py").exists()
