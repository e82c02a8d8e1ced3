"""The house stands: core/ keeps its layers (import-linter's contracts in pyproject.toml), a wrong-way import
breaks them, no two modules of core import each other round a circle, and core never imports Streamlit.

Imports inside functions count everywhere here: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` run on ``tree`` (its pyproject.toml and its core/), with ``tree`` first on the path."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"lint-imports is not installed beside {sys.executable}: pip install -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_lint_imports_keeps_every_contract() -> None:
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout
    assert "core never imports Streamlit KEPT" in run.stdout


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n\n" + code + "\n", encoding="utf-8")


def test_a_wrong_way_import_breaks_the_layers(tmp_path: Path) -> None:
    """A copy of core/ with two imports that run upwards, one at module level and one inside a function: the
    layers contract reports both by name, and lint-imports fails."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for package in config["tool"]["importlinter"]["root_packages"]:  # core, and whatever else the contracts name
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    _append(tmp_path / "core" / "domain" / "metrics.py", "import core.store.db  # noqa: E402")
    _append(tmp_path / "core" / "evaluation" / "baselines.py",
            "def _upwards() -> None:\n    import core.decision.decision  # noqa: F401")
    run = _lint_imports(tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "core is laid out by playbook step: each package imports only the steps below it BROKEN" in out
    assert "core.domain.metrics -> core.store.db" in out
    assert "core.evaluation.baselines -> core.decision.decision" in out
    # The database contract names the first one too: the typed contracts import no database.
    assert "the typed contracts and the pure training code import no database BROKEN" in out


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The modules an import statement names (``from core.x import y`` names core.x.y when that is a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: resolved against the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [base] + [f"{base}.{a.name}" for a in node.names]


def core_import_graph() -> dict[str, set[str]]:
    """{module of core: the modules of core it imports}, from every import statement, in functions too."""
    files = {_module_name(p): p for p in (ROOT / "core").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = _imported(node, module, path.name == "__init__.py")
                targets |= {n for n in names if n in files and n != module}
        graph[module] = targets
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph``, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def test_strongly_connected_finds_a_circle() -> None:
    """The scan below would see a circle: a -> b -> c -> a is one component, d stands alone."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["d"]]


def test_no_import_circle_between_modules_of_core() -> None:
    graph = core_import_graph()
    assert len(graph) > 50 and "core.store.db" in graph["core.store.jobs"]  # the scan sees core as it is
    circles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not circles, "modules of core that import each other round a circle (functions included):\n" + "\n".join(
        " <-> ".join(c) for c in circles)


def test_no_import_circle_between_packages_of_core() -> None:
    """The same graph, each module folded into its package (core.store.jobs into core.store): the steps of the
    playbook stand one above another, with no two packages leaning on each other."""
    folded: dict[str, set[str]] = {}
    for module, targets in core_import_graph().items():
        package = ".".join(module.split(".")[:2])
        folded.setdefault(package, set()).update(".".join(t.split(".")[:2]) for t in targets)
    for package, targets in folded.items():
        targets.discard(package)
    circles = [c for c in strongly_connected(folded) if len(c) > 1]
    assert not circles, "packages of core that import each other round a circle:\n" + "\n".join(
        " <-> ".join(c) for c in circles)


def test_core_never_imports_streamlit() -> None:
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names
                              if n == "streamlit" or n.startswith("streamlit.")]
    assert not offenders, f"core imports Streamlit: {offenders}"
