"""Reading scenario files and `--set` overrides, and turning every mistake into one clear error."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simnet.errors import ScenarioError
from simnet.scenario.model import Scenario

MAX_FILE_BYTES = 1 << 20
NAMED_SECTIONS = ("nats", "hosts", "servers")


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Load, override and validate a scenario file; raise `ScenarioError` for anything wrong."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ScenarioError(f"{path}: file is larger than 1 MiB; is it a scenario?")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(
            f"{path}: no such scenario file", fix="see the scenarios/ folder for examples"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ScenarioError(f"{path}: not valid YAML{where}: {problem}") from None
    except (ValueError, RecursionError) as exc:  # e.g. absurd nesting or numbers
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        raise ScenarioError(
            f"{path}: the file is empty", fix="see the scenarios/ folder for what a scenario holds"
        )
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{path}: a scenario must be a mapping of fields (name, nats, hosts, servers), "
            f"not a {type(data).__name__}"
        )
    data.setdefault("name", path.stem)
    return scenario_from_dict(data, overrides, source=str(path))


def scenario_from_dict(
    data: dict[str, Any], overrides: Iterable[str] = (), *, source: str = "<scenario>"
) -> Scenario:
    """Validate an already-parsed scenario (and its overrides); `data` is not modified."""
    data = copy.deepcopy(data)
    for override in overrides:
        apply_override(data, override, source=source)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_describe(exc, source)) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ScenarioError(f"{source}: invalid scenario: {exc}") from None


def apply_override(data: dict[str, Any], override: str, *, source: str = "<scenario>") -> None:
    """Apply `dotted.path=value` (value parsed as YAML, so `true`, `5`, `[a, b]` work)."""
    path, sep, raw = override.partition("=")
    keys = [k for k in path.strip().split(".")]
    if not sep or not all(keys):
        raise ScenarioError(
            f"--set {override!r}: expected dotted.path=value",
            fix="e.g. --set nats.home.hairpin=false",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        child = node.get(key) if isinstance(node, dict) else None
        if child is None and i == 1 and keys[0] in NAMED_SECTIONS:
            # A typo in a NAT/host/server name must not quietly create a new one.
            known = [str(k) for k in node]
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ScenarioError(
                f"--set {override!r}: {source}: no {keys[0]}.{key}{hint}; "
                f"known: {', '.join(known) or 'none'}"
            )
        if child is None:
            child = {}
            node[key] = child
        elif not isinstance(child, dict):
            where = ".".join(keys[: i + 1])
            raise ScenarioError(f"--set {override!r}: {source}: '{where}' is not a mapping")
        node = child
    node[keys[-1]] = value


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid scenario"]
    for error in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        got = error.get("input")
        shown = ""
        if error["type"] not in ("value_error", "missing") and not isinstance(got, dict | list):
            shown = f" (got {got!r})"
        lines.append(f"  {loc}: {message}{shown}" if loc else f"  {message}{shown}")
    return "\n".join(lines)
