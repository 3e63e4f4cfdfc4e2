"""The package layering, proved from the source (the same table is in docs/architecture.md,
"Layers", and a test below keeps the two alike).

Every simnet module sits on one floor, and imports only from its own floor or the floors below:

    0  simnet (the package), callspec, errors, aio, settings, show, signals
    1  scenario
    2  results (data only)
    3  net
    4  probe, peer, services
    5  call
    6  run, cleanup, doctor
    7  population
    8  present
    9  cli, __main__

A top-level `simnet/*.py` module the table does not name is on the ground floor, so it may
import only ground-floor modules; a module anywhere else that no floor names fails the test
until it is placed. Besides the floors, no two files import each other, directly or in a loop.

Why it matters: a floor can be read, tested and changed knowing only the floors below it. The
scenario model is what `simnet validate` and every tool reading a scenario load, and
`simnet.callspec` is imported by the peer agent inside each namespace; a stray import there would
make validation need root or slow every agent start.

The graph is read with `ast`: imports inside functions and under `if TYPE_CHECKING:` count too,
unlike what a module's `sys.modules` shows after import. An edge goes to the file that defines
the imported module (`from simnet.net import netns` is an edge to simnet/net/netns.py); the
package `__init__` files Python runs on the way are followed by the transitive checks, not by
the floor and circle checks (a package's `__init__` is on its package's floor).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIMNET = ROOT / "simnet"

# Ground floor first. A module is on the floor of the longest name here that is it or a package
# holding it.
LAYERS: list[tuple[str, ...]] = [
    (
        "simnet",
        "simnet.callspec",
        "simnet.errors",
        "simnet.aio",
        "simnet.settings",
        "simnet.show",
        "simnet.signals",
        "simnet.peerkinds",
        "simnet.addresses",
        "simnet.quantile",
        "simnet.fielddoc",
    ),
    ("simnet.scenario",),
    ("simnet.results",),
    ("simnet.net",),
    ("simnet.probe", "simnet.peer", "simnet.services"),
    ("simnet.call",),
    ("simnet.run", "simnet.cleanup", "simnet.doctor"),
    ("simnet.population",),
    ("simnet.present",),
    ("simnet.cli", "simnet.__main__"),
]

# What the declarative side must never reach, directly or through another simnet module.
RUNTIME_PACKAGES = ("simnet.net", "simnet.peer", "simnet.services", "simnet.call", "simnet.run")
KERNEL_LIBRARIES = ("aiortc", "aioice", "av", "pyroute2", "nftables")

Graph = Mapping[str, set[str]]


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def modules() -> dict[str, Path]:
    """Every module of simnet, with its file."""
    return {_module_of(path): path for path in sorted(SIMNET.rglob("*.py"))}


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


def file_graph() -> dict[str, set[str]]:
    """Each simnet module and the simnet modules (files) it imports, itself left out.

    `from simnet.x import y` is an edge to simnet.x.y when that is a module, else to simnet.x.
    """
    files = modules()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for imported in _imports(path, module):
            name = imported
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name.startswith("simnet") and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def floor_of(module: str) -> int | None:
    """The floor of `module` (0 is the ground floor); None if no floor holds it.

    A top-level module the table leaves out (a file `simnet/<name>.py`) is on the ground floor."""
    matches = [
        (len(name), floor)
        for floor, names in enumerate(LAYERS)
        for name in names
        if name != "simnet" and (module == name or module.startswith(name + "."))
    ]
    if matches:
        return max(matches)[1]
    if module == "simnet" or (
        module.count(".") == 1 and (SIMNET / f"{module.split('.')[1]}.py").is_file()
    ):
        return 0
    return None


def unplaced(graph: Graph, floor: Callable[[str], int | None] = floor_of) -> list[str]:
    return sorted(
        f"{module} is on no floor: add it (or its package) to LAYERS in "
        "tests/unit/test_import_graph.py and to the table in docs/architecture.md"
        for module in graph
        if floor(module) is None
    )


def upward_imports(graph: Graph, floor: Callable[[str], int | None] = floor_of) -> list[str]:
    """Every import of a module on a higher floor than the importer's."""
    found = []
    for module, targets in sorted(graph.items()):
        own = floor(module)
        for target in sorted(targets):
            theirs = floor(target)
            if own is not None and theirs is not None and theirs > own:
                found.append(f"{module} (floor {own}) imports {target} (floor {theirs})")
    return found


def circles(graph: Graph) -> list[list[str]]:
    """The import circles of `graph`: per group of files that reach each other, one loop through
    them as a list of files (first file repeated at the end)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_loop(graph, group) for group in sorted(groups)]


def _loop(graph: Graph, group: list[str]) -> list[str]:
    """A shortest path from the group's first file back to itself, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return [*paths[node], start]
            if nxt in members and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                todo.append(nxt)
    raise AssertionError(f"no loop through {group}")  # a component always has one


def import_closure(roots: list[str]) -> dict[str, str]:
    """Every module reachable from `roots` (through the package `__init__` files Python runs on
    the way too), each with the simnet module that imports it."""
    seen: dict[str, str] = {root: "<root>" for root in roots}
    todo = list(roots)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for step in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
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


# --- the floors and the circles ---------------------------------------------------------------


def test_every_module_is_on_a_floor() -> None:
    graph = file_graph()
    assert {"simnet.cli", "simnet.scenario.model", "simnet.net.builder"} <= set(graph)
    assert unplaced(graph) == []


def test_no_module_imports_from_a_floor_above_its_own() -> None:
    assert upward_imports(file_graph()) == []


def test_no_two_files_import_each_other_directly_or_in_a_loop() -> None:
    assert [" -> ".join(loop) for loop in circles(file_graph())] == []


def test_the_checks_can_fail() -> None:
    """A synthetic graph with an upward import, a circle of three files, one of two, and a
    module on no floor: each check names what is wrong."""
    graph = {
        "simnet.net.builder": {"simnet.run.calls", "simnet.errors"},
        "simnet.run.calls": {"simnet.run.load"},
        "simnet.run.load": {"simnet.run.sweep"},
        "simnet.run.sweep": {"simnet.run.calls"},
        "simnet.net.process": {"simnet.net.registry"},
        "simnet.net.registry": {"simnet.net.process"},
        "simnet.errors": set(),
        "simnet.newpackage.thing": set(),
    }
    assert upward_imports(graph) == [
        "simnet.net.builder (floor 3) imports simnet.run.calls (floor 6)"
    ]
    assert circles(graph) == [
        ["simnet.net.process", "simnet.net.registry", "simnet.net.process"],
        ["simnet.run.calls", "simnet.run.load", "simnet.run.sweep", "simnet.run.calls"],
    ]
    assert [m.split(" ")[0] for m in unplaced(graph)] == ["simnet.newpackage.thing"]


def test_an_unlisted_top_level_module_is_on_the_ground_floor() -> None:
    """`simnet/<name>.py` left out of the table is judged as a ground-floor module: importing
    anything above the ground floor is an upward import."""
    assert floor_of("simnet.errors") == 0
    assert floor_of("simnet.scenario.model") == 1
    assert floor_of("simnet.peer.chromium.agent") == 4
    assert floor_of("simnet.results.report") == 2
    assert floor_of("simnet.present.report.page") == 8
    assert floor_of("simnet.nosuchpackage.module") is None

    def floor(module: str) -> int | None:  # as if simnet/newleaf.py existed
        return 0 if module == "simnet.newleaf" else floor_of(module)

    graph = {"simnet.newleaf": {"simnet.errors", "simnet.scenario.model"}}
    assert upward_imports(graph, floor) == [
        "simnet.newleaf (floor 0) imports simnet.scenario.model (floor 1)"
    ]


def test_the_architecture_doc_shows_the_same_floors() -> None:
    """docs/architecture.md, section "Layers": one table row per floor, naming its modules."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    floors = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].split(" ")[0].isdigit():
            names = re.findall(r"`([^`]+)`", cells[1])
            floors.append(tuple("simnet" if n == "simnet" else f"simnet.{n}" for n in names))
    assert floors == LAYERS


# --- what the declarative side reaches --------------------------------------------------------


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
    """The check can fail: a scenario's calls reach the call settings and the kernel side."""
    closure = import_closure(["simnet.run.calls"])
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


# --- who presents -----------------------------------------------------------------------------


def test_only_the_cli_presents() -> None:
    """Library code returns data: terminal output (rich, `simnet.show`), plots (matplotlib) and
    `simnet.present` belong to the CLI and the presenters."""
    presenters = {"simnet.cli", "simnet.show"}
    offenders = []
    for module, path in modules().items():
        if module in presenters or module.startswith("simnet.present"):
            continue
        imported = {m: module for m in _imports(path, module)}
        offenders += _forbidden(imported, ("rich", "matplotlib", "simnet.present", "simnet.show"))
    assert offenders == []
