"""No module under tests/ imports a test module (`test_*.py`): what several test modules share
lives in a helper module named for what it holds, a fixture in the nearest conftest.py.

Why: importing a test module runs all of its module-level code in the importer, re-exports its
fixtures only by a name a linter calls unused (`# noqa: F401`), and makes one test's private
helper another's dependency that nobody sees when editing the first. Read with `ast`, so an
import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_file(root: Path, dotted: str) -> Path | None:
    """The file of module `dotted` under `root`, if it is a module (not a package or a name)."""
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imported(root: Path, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import may load as a module: `a.b` for `import a.b`; `a` and `a.x`
    for `from a import x` (x may be a module); a relative import resolved against `path`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = path.parent.relative_to(root).parts
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def imports_of_test_modules(root: Path, folder: Path) -> list[str]:
    """ "path:line module" for every import of a `test_*.py` module in a file under `folder`."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for dotted in _imported(root, path, node):
                file = _module_file(root, dotted) if dotted else None
                if file is not None and file.name.startswith("test_") and file != path:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {dotted}")
    return found


def test_no_test_module_imports_another() -> None:
    found = imports_of_test_modules(ROOT, ROOT / "tests")
    assert found == [], (
        "a test module imports another test module; move what they share into a helper module "
        f"(or a fixture into conftest.py): {found}"
    )


def test_the_scan_sees_every_form_of_import(tmp_path: Path) -> None:
    unit = tmp_path / "tests" / "unit"
    unit.mkdir(parents=True)
    for name in ("__init__.py", "test_a.py", "test_b.py", "test_c.py", "test_d.py", "rows.py"):
        (unit / name).write_text("")
    (tmp_path / "tests" / "__init__.py").write_text("")
    (unit / "test_e.py").write_text(
        "from tests.unit.test_a import x\n"
        "import tests.unit.test_b\n"
        "from tests.unit import test_c, rows\n"
        "def f():\n"
        "    from .test_d import y\n"
        "from tests.unit.rows import row\n"  # a helper module: allowed
        "from . import rows as r\n"
    )
    assert imports_of_test_modules(tmp_path, tmp_path / "tests") == [
        "tests/unit/test_e.py:1 tests.unit.test_a",
        "tests/unit/test_e.py:2 tests.unit.test_b",
        "tests/unit/test_e.py:3 tests.unit.test_c",
        "tests/unit/test_e.py:5 tests.unit.test_d",
    ]
