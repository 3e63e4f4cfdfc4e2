"""Reading scenario files and `--set` overrides, and turning every mistake into one clear error."""

from __future__ import annotations

import copy
import difflib
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simnet.errors import SHOWN_CHARS, ScenarioError, cut, printable, shown_field
from simnet.scenario.model import Scenario, name_from_stem

MAX_FILE_BYTES = 1 << 20
NAMED_SECTIONS = ("nats", "hosts", "servers")
FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
# libyaml's parser (PyYAML's C extension) when it is there: it halves the time to load a large
# file (20,000 timeline events: 2.5 s against 7.6 s here) and limits nesting depth on its own;
# both build the same Python objects.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe YAML, except that a key given twice in one mapping is an error, not "last wins"
    (two `home:` NATs would otherwise quietly become one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # String keys (all of a scenario's) are compared as written, without building them
        # twice: that would cost more than the C parser saves. Other keys are built.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == STR_TAG:
                key: Any = key_node.value
            else:
                key = self.construct_object(key_node, deep=True)
            first = _first_line(seen, key, key_node.start_mark.line + 1)
            if first is not None:
                shown = printable(key, newlines=False)
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key '{shown}' (first at line {first})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


STR_TAG = "tag:yaml.org,2002:str"


def _first_line(seen: dict[Any, int], key: Any, line: int) -> int | None:
    """The line `key` was first seen on, if before; records it otherwise."""
    try:
        if key in seen:
            return seen[key]
        seen[key] = line
    except TypeError:  # an unhashable key: the base constructor reports it
        pass
    return None


def parse_yaml(text: str, where: str) -> Any:
    """`text` as YAML; any problem becomes a `ScenarioError` that starts with `where`."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. a raw escape
        raise ScenarioError(
            f"{where}: not valid YAML: character {chr(exc.character)!r} at position "
            f"{exc.position} is not allowed (write it escaped in a double-quoted string)"
        ) from None
    except yaml.YAMLError as exc:
        at = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            at = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ScenarioError(f"{where}: not valid YAML{at}: {problem}") from None
    except RecursionError:
        raise ScenarioError(
            f"{where}: not valid YAML: nested too deeply", fix="a scenario is a few levels deep"
        ) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ScenarioError(f"{where}: not valid YAML: {exc}") from None


def read_text_file(path: Path, what: str = "scenario file") -> str:
    """The contents of `path` if it is a regular UTF-8 file of at most 1 MiB.

    Anything else is refused before reading: a FIFO would block the read forever, a device like
    /dev/zero would never end (its size says 0), a directory or socket cannot be read at all. The
    kind is checked again and the size bounded on the opened file, so a file swapped in between
    is no way around either check."""
    try:
        kind = FILE_KINDS.get(stat.S_IFMT(path.stat().st_mode))
        if kind is not None:
            raise ScenarioError(
                f"{path}: is {kind}, not a regular file; a {what} is a YAML file",
                fix="give the path of a .yaml file",
            )
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with os.fdopen(fd, "rb") as f:
            kind = FILE_KINDS.get(stat.S_IFMT(os.fstat(f.fileno()).st_mode))
            if kind is not None:
                raise ScenarioError(
                    f"{path}: is {kind}, not a regular file; a {what} is a YAML file"
                )
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ScenarioError(
            f"{path}: no such {what}", fix="see the scenarios/ folder for examples"
        ) from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(f"{path}: file is larger than 1 MiB; is it a {what}?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Load, override and validate a scenario file; raise `ScenarioError` for anything wrong."""
    path = Path(path)
    data = parse_yaml(read_text_file(path), str(path))
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
    return scenario_from_dict(data, overrides, source=str(path))


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
    where = printable(path, newlines=False)  # a newline in a file name cannot start a line
    return f"{where} with {shown}" if shown else where


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
    if any("\udc80" <= ch <= "\udcff" for ch in override):  # bytes that are not UTF-8
        raw_bytes = override.encode("utf-8", "surrogateescape")
        raise ScenarioError(
            f"--set {shown}: {source}: {shown_field(path.strip())}: the value is not UTF-8 text "
            f"({shown_field(raw_bytes)[2:-1]})",
            fix="give the value as UTF-8 text",
        )
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


MESSAGE_CHARS = 400  # one problem's message, after its quoted value is cut: never a dump


def _short_values(message: str, value: object) -> str:
    """`message` with the value it quotes (as `'value'` or its repr) cut to `SHOWN_CHARS`, its
    control characters escaped, and the whole kept to `MESSAGE_CHARS`: a 1 MB name gives a
    one-line error, not a 1 MB one."""
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        short = repr(cut(value, SHOWN_CHARS))
        message = message.replace(repr(value), short).replace(f"'{value}'", short)
    return cut(printable(message), MESSAGE_CHARS)


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid scenario"]
    for error in exc.errors(include_url=False):
        parts = error["loc"]
        # a tagged union's branch name (hosts.X.peer.named / .command) is not a field to fix
        shown_parts = [p for i, p in enumerate(parts) if not (i and parts[i - 1] == "peer")]
        loc = ".".join(shown_field(p) for p in shown_parts)
        message = _short_values(error["msg"].removeprefix("Value error, "), error.get("input"))
        got = error.get("input")
        shown = ""
        if error["type"] not in ("value_error", "missing") and not isinstance(got, dict | list):
            text = repr(got)
            shown = f" (got {text if len(text) <= 80 else text[:76] + '...'})"
        lines.append(f"  {loc}: {message}{shown}" if loc else f"  {message}{shown}")
    return "\n".join(lines)
