"""The package layering, proved from the source: the declarative side (the scenario model and a
call's settings) imports nothing that touches the kernel, starts processes or runs aiortc.

Why it matters: the scenario model is what `simnet validate` and every tool reading a scenario
load, and `simnet.callspec` is imported by the peer agent inside each namespace; a stray import
there would make validation need root or slow every agent start, and brought back the cycle
scenario -> peer -> net -> scenario that issue 10 removed.

The graph is read with `ast` (imports inside functions count too, unlike what a module's
`sys.modules` shows after import) and followed transitively through simnet's own modules,
including the package `__init__` files Python runs on the way.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIMNET = ROOT / "simnet"

# What the declarative side must never reach, directly or through another simnet module.
RUNTIME_PACKAGES = ("simnet.net", "simnet.peer", "simnet.services", "simnet.call", "simnet.run")
KERNEL_LIBRARIES = ("aiortc", "aioice", "av", "pyroute2", "nftables")


def _source(module: str) -> Path | None:
    """The file of a simnet module (a package's `__init__.py`), None if it is not simnet's."""
    parts = module.split(".")
    if parts[0] != "simnet":
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every module `path` imports, anywhere in it (functions and TYPE_CHECKING blocks too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            # `from simnet.x import y` may import the submodule simnet.x.y.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_closure(roots: list[str]) -> dict[str, str]:
    """Every module reachable from `roots`, each with the simnet module that imports it."""
    seen: dict[str, str] = {root: "<root>" for root in roots}
    todo = list(roots)
    while todo:
        module = todo.pop()
        for step in _parents(module):
            path = _source(step)
            if path is None:
                continue
            for imported in _imports(path, step):
                if imported not in seen and (
                    _source(imported) is not None or not imported.startswith("simnet")
                ):
                    seen[imported] = step
                    todo.append(imported)
    return seen


def _forbidden(closure: dict[str, str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} (imported by {by})"
        for module, by in closure.items()
        if any(module == p or module.startswith(p + ".") for p in prefixes)
    )


def _scenario_modules() -> list[str]:
    return sorted(f"simnet.scenario.{p.stem}" for p in (SIMNET / "scenario").glob("*.py"))


def test_the_scenario_package_imports_no_runtime_code() -> None:
    modules = _scenario_modules()
    assert "simnet.scenario.model" in modules  # the walk sees the files it must judge
    closure = import_closure(modules)
    assert _forbidden(closure, RUNTIME_PACKAGES + KERNEL_LIBRARIES) == []


def test_call_settings_import_no_kernel_code_and_no_aiortc() -> None:
    closure = import_closure(["simnet.callspec"])
    assert _forbidden(closure, RUNTIME_PACKAGES + KERNEL_LIBRARIES + ("simnet.scenario",)) == []


def test_the_walk_finds_a_forbidden_import() -> None:
    """The check can fail: the peer protocol is known to reach the call settings, and the
    controller reaches the kernel side (simnet.net) through its run registry."""
    closure = import_closure(["simnet.peer.control.agent"])
    assert "simnet.callspec" in closure
    assert _forbidden(closure, ("simnet.net",)) != []


@pytest.mark.parametrize("module", ["simnet.scenario", "simnet.callspec"])
def test_importing_it_loads_no_runtime_module(module: str) -> None:
    """The same, as Python really imports it (a fresh interpreter, so nothing is preloaded)."""
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    prefixes = RUNTIME_PACKAGES + KERNEL_LIBRARIES
    assert [m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes)] == []


def test_only_the_cli_presents() -> None:
    """Library code returns data: terminal output (rich, `simnet.show`) and `simnet.present`
    belong to the CLI."""
    presenters = {"simnet.cli", "simnet.show"}
    offenders = []
    for path in sorted(SIMNET.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if module in presenters or module.startswith("simnet.present"):
            continue
        imported = {m: module for m in _imports(path, module)}
        offenders += _forbidden(imported, ("rich", "simnet.present", "simnet.show"))
    assert offenders == []
