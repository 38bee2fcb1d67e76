"""The judge of the invariants (devenv.oracle) is independent of the service it judges: it reads
only the emulated world, with its own code, so a bug in the service's readers cannot fool it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from devenv import oracle

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PACKAGES = ("core", "clients", "rotation", "provisioning", "blueprints", "rotator", "emulators")


def test_the_oracle_imports_nothing_from_the_service():
    tree = ast.parse((ROOT / "devenv" / "oracle.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "re", "dataclasses", "typing"}, imported
    assert not imported & set(SERVICE_PACKAGES)


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("nylas-entra-rotator 0123456789ab", True),
        ("nylas-entra-rotator 0123456789AB", False),
        ("nylas-entra-rotator manual copy", False),
        ("nylas-entra-rotator-backup", False),
        ("nylas-entra-rotator", False),
        ("nylas-entra-rotator 0123456789ab ", False),
        (None, False),
    ],
)
def test_only_our_exact_name_format_is_ours(name, ours):
    assert oracle.is_our_credential(name) is ours
