"""Issue 17: project modules are imported at the top of the module that uses them; an import inside a function
(outside the CLI, which loads its commands lazily) stays only where it keeps a light module from loading torch or
another slow dependency at start-up, and says so with a ``# lazy:`` comment on its line or the line above."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"


def function_level_project_imports() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        if path.relative_to(CORE).parts[0] == "cli":
            continue
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                modules = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                           else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                if any(m.split(".")[0] == "core" for m in modules):
                    above = lines[node.lineno - 2] if node.lineno > 1 else ""
                    found.append((str(path.relative_to(CORE.parent)), node.lineno, lines[node.lineno - 1] + above))
    return sorted(set(found))


def test_each_function_level_project_import_says_why_it_is_lazy():
    unexplained = [f"{file}:{line}" for file, line, text in function_level_project_imports() if "# lazy:" not in text]
    assert unexplained == [], "move these imports to the top of their module, or say why they wait: " + ", ".join(
        unexplained)

