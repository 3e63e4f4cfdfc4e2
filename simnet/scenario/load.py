"""Reading scenario files and `--set` overrides, and turning every mistake into one clear error."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simnet.errors import ScenarioError, printable
from simnet.scenario.model import Scenario, name_from_stem
from simnet.scenario.yaml_file import load_yaml_file, parse_yaml

NAMED_SECTIONS = ("nats", "hosts", "servers")


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Load, override and validate a scenario file; raise `ScenarioError` for anything wrong."""
    path = Path(path)
    return scenario_from_dict(read_scenario_data(path), overrides, source=str(path))


def read_scenario_data(path: Path) -> dict[str, object]:
    """A scenario file's fields as parsed, not yet validated (named after the file unless it
    says its `name:`): what `scenario_from_dict` takes, so a file read once can be validated
    with many sets of overrides (a sweep's points)."""
    data = load_yaml_file(path, "scenario file")
    if data is None:
        raise ScenarioError(
            f"{path}: the file is empty", fix="see the scenarios/ folder for what a scenario holds"
        )
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{path}: a scenario must be a mapping of fields (name, nats, hosts, servers), "
            f"not a {type(data).__name__}"
        )
    data.setdefault("name", name_from_stem(path.stem))
    return data


def scenario_from_dict(
    data: Mapping[str, object], overrides: Iterable[str] = (), *, source: str = "<scenario>"
) -> Scenario:
    """Validate an already-parsed scenario (and its overrides); `data` is not modified."""
    overrides = list(overrides)
    try:
        fields = copy.deepcopy(dict(data))
    except RecursionError:
        raise ScenarioError(f"{source}: nested too deeply to be a scenario") from None
    for override in overrides:
        apply_override(fields, override, source=source)
    where = source_of(source, overrides)
    try:
        return Scenario.model_validate(fields)
    except ValidationError as exc:
        raise ScenarioError(_describe(exc, where)) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ScenarioError(f"{where}: invalid scenario: {shorten(exc, 200)}") from None


def source_of(path: str | Path, overrides: Iterable[str] = ()) -> str:
    """How errors name a scenario: its file, and the `--set`s applied to it."""
    shown = ", ".join(f"--set {shorten(o)}" for o in overrides)
    return f"{path} with {shown}" if shown else str(path)


def shorten(value: object, limit: int = 60) -> str:
    """`value` quoted as Python would, cut to `limit` characters (a `--set` value can be long)."""
    shown = repr(str(value))
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def apply_override(data: dict[str, object], override: str, *, source: str = "<scenario>") -> None:
    """Apply `dotted.path=value` (value parsed as YAML, so `true`, `5`, `[a, b]` work)."""
    path, sep, raw = override.partition("=")
    keys = [k for k in path.strip().split(".")]
    shown = shorten(override)
    if not sep or not all(keys):
        raise ScenarioError(
            f"--set {shown}: expected dotted.path=value",
            fix="e.g. --set nats.home.hairpin=false",
        )
    try:
        value = parse_yaml(raw, f"--set {shown}") if raw.strip() else ""
    except ScenarioError as exc:
        if "nested too deeply" in exc.message or "nesting depth" in exc.message:
            raise ScenarioError(
                f"--set {shown}: the value is nested too deeply",
                fix="a scenario field is a few levels deep at most",
            ) from None
        value = raw  # not YAML: the text itself (e.g. a description with a colon)
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        child = node.get(key) if isinstance(node, dict) else None
        if child is None and i == 1 and keys[0] in NAMED_SECTIONS:
            # A typo in a NAT/host/server name must not quietly create a new one.
            known = [str(k) for k in node]
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ScenarioError(
                f"--set {shown}: {source}: no {keys[0]}.{key}{hint}; "
                f"known: {', '.join(known) or 'none'}"
            )
        if child is None:
            child = {}
            node[key] = child
        elif not isinstance(child, dict):
            where = ".".join(keys[: i + 1])
            raise ScenarioError(f"--set {shown}: {source}: '{where}' is not a mapping")
        node = child
    node[keys[-1]] = value


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid scenario"]
    for error in exc.errors(include_url=False):
        parts = error["loc"]
        # a tagged union's branch name (hosts.X.peer.named / .command) is not a field to fix
        shown_parts = [p for i, p in enumerate(parts) if not (i and parts[i - 1] == "peer")]
        loc = ".".join(printable(p, newlines=False) for p in shown_parts)
        message = error["msg"].removeprefix("Value error, ")
        got = error.get("input")
        shown = ""
        if error["type"] not in ("value_error", "missing") and not isinstance(got, dict | list):
            text = repr(got)
            shown = f" (got {text if len(text) <= 80 else text[:76] + '...'})"
        lines.append(f"  {loc}: {message}{shown}" if loc else f"  {message}{shown}")
    return "\n".join(lines)
