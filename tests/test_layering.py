"""The layers: web → logs → schedules → dispatch → media. Left may import right only.

Every import in every module is checked, including imports inside functions, so a
lazy import cannot break the rule unseen.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["web", "logs", "schedules", "dispatch", "media"]  # top first


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(LAYERS)


def test_each_package_imports_only_layers_below_it() -> None:
    violations = []
    for rank, package in enumerate(LAYERS):
        allowed = set(LAYERS[rank:])
        for path in sorted((ROOT / package).rglob("*.py")):
            for bad in imported_packages(path) - allowed:
                violations.append(f"{path.relative_to(ROOT)} imports {bad}")
    assert violations == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from web import app\n    import logs.journal\n")
    assert imported_packages(module) == {"web", "logs"}


def test_every_package_says_what_it_owns() -> None:
    for package in LAYERS:
        doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
        assert doc and len(doc) > 40, package
