"""Every third-party package that core/, pages/ or app.py imports is declared in pyproject.toml's dependencies
(issue 17): an install from the package's metadata alone must be able to run what it ships."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"core", "pages", "app", "__future__"}


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised as PEP 503 does ("PyYAML>=6" -> "pyyaml")."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group()).lower()


def declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {_name(r) for r in project["dependencies"]}


def optional() -> set[str]:
    """What an extra a user asks for brings (`pip install 'stillroom[ray]'`); the test extra is no such thing."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get("optional-dependencies", {})
    return {_name(r) for name, reqs in extras.items() if name != "test" for r in reqs}


def top_level_imports() -> dict[str, str]:
    """Each third-party module imported at a module's top level (not inside a function) -> one file doing so."""
    found: dict[str, str] = {}
    for path in [*sorted((REPO / "core").rglob("*.py")), *sorted((REPO / "pages").rglob("*.py"))]:
        for node in ast.parse(path.read_text(), str(path)).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def imported_top_levels() -> dict[str, str]:
    """Each absolute top-level module imported anywhere (functions included) -> one file that imports it."""
    found: dict[str, str] = {}
    for path in [*sorted((REPO / "core").rglob("*.py")), *sorted((REPO / "pages").rglob("*.py")), REPO / "app.py",
                 REPO / "web.py"]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return {m: f for m, f in found.items() if m not in sys.stdlib_module_names and m not in FIRST_PARTY}


def undeclared() -> list[str]:
    """Imports no dependency declares; an extra's package counts as declared where it is imported lazily only."""
    distributions, wanted, extra, eager = packages_distributions(), declared(), optional(), top_level_imports()
    missing = []
    for module, where in sorted(imported_top_levels().items()):
        dists = {_name(d) for d in distributions.get(module, [])}
        if not dists & wanted and not (dists & extra and module not in eager):
            missing.append(f"{module} (imported by {where}; distribution {sorted(dists) or 'not installed'})")
    return missing


def test_every_third_party_import_is_a_declared_dependency():
    assert undeclared() == [], "imported but not in pyproject.toml's dependencies: " + "; ".join(undeclared())


def test_the_scan_sees_imports_inside_functions_and_names_distributions_not_modules():
    levels = imported_top_levels()
    assert {"yaml", "sklearn", "torch", "sqlalchemy"} <= set(levels)  # yaml -> PyYAML, sklearn -> scikit-learn
    assert {"core", "os"}.isdisjoint(levels)
    assert {"pyyaml", "scikit-learn", "sqlalchemy"} <= declared()


def test_a_package_of_an_extra_is_imported_only_inside_functions():
    """Ray comes with the `ray` extra: core imports it only where a run asks for it, so the default install runs."""
    assert "ray" in optional() and "ray" not in declared()
    assert "ray" in imported_top_levels() and "ray" not in top_level_imports()
