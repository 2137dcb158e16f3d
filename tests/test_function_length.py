"""No function in keck_tui/ is longer than 80 lines, except those allowed below with a reason.

A long function is one doing several jobs; split it along its seams. An entry here says
why a function may stay long (or who is splitting it); remove it when that is done.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "keck_tui"
MAX_LINES = 80

#: "path/relative/to/keck_tui.py:Qualified.name" -> why it may stay longer than MAX_LINES.
ALLOWED: dict[str, str] = {}


def long_functions(root: Path = PACKAGE, limit: int = MAX_LINES) -> dict[str, int]:
    """``"file:Qualified.name" -> lines`` for every function or method over ``limit`` lines
    (from its ``def`` to its last line; decorators not counted)."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, where: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                if lines > limit:
                    found[f"{where}:{name}"] = lines
                visit(child, where, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, where, prefix + child.name + ".")

    for path in sorted(root.rglob("*.py")):
        visit(ast.parse(path.read_text(), str(path)), str(path.relative_to(root)), "")
    return found


def test_no_function_is_longer_than_80_lines_unless_allowed() -> None:
    over = {k: v for k, v in long_functions().items() if k not in ALLOWED}
    assert not over, ("split these along their seams (or allow them in tests/test_function_length.py "
                      f"with a reason): {over}")


def test_every_allowed_entry_is_still_long() -> None:
    """An allowance for a function that was split, renamed or deleted is removed too."""
    found = long_functions()
    stale = sorted(k for k in ALLOWED if k not in found)
    assert not stale, f"no longer over {MAX_LINES} lines (or gone): remove from ALLOWED: {stale}"
    assert all(reason.strip() for reason in ALLOWED.values())


def test_the_checker_finds_a_long_method_in_a_class(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(80))
    (tmp_path / "m.py").write_text(f"class A:\n    def short(self):\n        pass\n\n    def long(self):\n{body}\n")
    assert long_functions(tmp_path) == {"m.py:A.long": 81}
