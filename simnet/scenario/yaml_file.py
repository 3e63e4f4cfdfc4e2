"""Reading a YAML file simnet is given (a scenario, a population mix, a sweep), and turning every
way it can be wrong, or hostile, into one `ScenarioError` naming the file.

One reader for every file, so each gets the same protections:

- **Only regular files, at most 1 MiB** (`read_text_file`): a FIFO would block the read
  forever, a device like /dev/zero would never end, a directory cannot be read.
- **A key given twice in one mapping is an error**, not "last wins" (two `home:` NATs would
  otherwise quietly become one). YAML merge keys (`<<: *defaults`) are allowed: what a mapping
  writes itself overrides what it merges in, as YAML defines.
- **Bounded after aliases are expanded**: an alias is one node in the file but the whole value
  it names to everything that reads the result (validation, JSON, copies), so a chain of
  aliases (the "billion laughs") is a few hundred bytes that expand past any memory. A document
  may expand to at most `MAX_VALUES` values and `MAX_DEPTH` levels of nesting, counted on the
  parsed nodes before a single Python object is built; an alias that contains itself is refused.
- **Plain data only**: strings, numbers, booleans, null, lists and mappings, as JSON has them.
  A tag such as `!!binary`, `!!set` or `!!timestamp` is refused, an unquoted date stays the
  string it reads as (YAML 1.2, and a scenario has no date fields).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from simnet.errors import ScenarioError, printable

MAX_FILE_BYTES = 1 << 20
# A scenario is a few levels deep, a sweep value or a mix's class a few more: 64 is far beyond
# any of them and far below what the validators' recursion can take.
MAX_DEPTH = 64
# Values (scalars, lists, mappings) once aliases are expanded. Written out, a 1 MiB file holds
# at most about half a million (`[1,1,1,...]`); aliases may add as many again.
MAX_VALUES = 1_000_000
FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}

_CORE = "tag:yaml.org,2002:"
STR_TAG = _CORE + "str"
MERGE_TAG = _CORE + "merge"
TIMESTAMP_TAG = _CORE + "timestamp"
PLAIN_TAGS = frozenset(
    _CORE + name for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge")
)

# libyaml's parser (PyYAML's C extension) when it is there: it halves the time to load a large
# file (20,000 timeline events: 2.5 s against 7.6 s here) and limits nesting depth on its own;
# both build the same Python objects.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Refused(yaml.YAMLError):
    """Well-formed YAML that simnet does not read: `problem` at `mark`."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.mark = mark


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe YAML, with the module's rules: duplicate keys refused (merge keys allowed), the
    expanded document bounded, plain data only."""

    # YAML 1.1's implicit timestamps make `2024-01-01` a date object, which no field takes and
    # JSON cannot hold: without the resolver it stays a string, as YAML 1.2 reads it.
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != TIMESTAMP_TAG]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _measure(node)
        return self.construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # The keys this mapping writes itself must differ; merged-in keys (`<<`) may be
        # overridden, which is what a merge is for. String keys (all of a scenario's) are
        # compared as written, without building them twice: that would cost more than the C
        # parser saves. Other keys are built.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
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


def _first_line(seen: dict[Any, int], key: Any, line: int) -> int | None:
    """The line `key` was first seen on, if before; records it otherwise."""
    try:
        if key in seen:
            return seen[key]
        seen[key] = line
    except TypeError:  # an unhashable key: the base constructor reports it
        pass
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value)  # a sequence's


def _check_plain(node: yaml.Node) -> None:
    if node.tag not in PLAIN_TAGS:
        tag = node.tag.replace(_CORE, "!!")
        raise Refused(
            f"the tag {printable(tag, newlines=False)} is not allowed: simnet files hold "
            "strings, numbers, booleans, null, lists and mappings",
            node.start_mark,
        )


def _measure(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand it past `MAX_VALUES` values or `MAX_DEPTH` levels,
    an alias inside the value it names, or a value that is not plain data.

    Each distinct node is visited once (an alias is the node it names, shared), without
    recursion, so the check itself is linear in the file whatever the aliases multiply.
    Scalars (most nodes) are checked where their list or mapping is, never stacked."""
    _check_plain(root)
    if isinstance(root, yaml.ScalarNode):
        return
    # list or mapping -> (values, levels) once expanded; a scalar is (1, 1)
    measured: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()  # visited, their children not finished: the current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            values, levels = 1, 1
            for child in _children(node):
                if isinstance(child, yaml.ScalarNode):
                    values += 1
                else:
                    below = measured[id(child)]
                    values += below[0]
                    levels = max(levels, below[1])
            measured[key] = (values, levels + 1)
            open_nodes.discard(key)
            if values > MAX_VALUES:
                raise Refused(
                    f"aliases expand this value to more than {MAX_VALUES:,} values; "
                    "write it out, or use fewer aliases",
                    node.start_mark,
                )
            if levels + 1 > MAX_DEPTH:
                raise Refused(f"nested too deeply (more than {MAX_DEPTH} levels)", node.start_mark)
            continue
        if key in measured:
            continue
        if key in open_nodes:  # reached again before it was finished: it contains itself
            raise Refused("an alias refers to a value that contains it", node.start_mark)
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            _check_plain(child)
            if not isinstance(child, yaml.ScalarNode) and id(child) not in measured:
                stack.append((child, False))


def parse_yaml(text: str, where: str) -> Any:
    """`text` as YAML; any problem becomes a `ScenarioError` that starts with `where`."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. a raw escape
        raise ScenarioError(
            f"{where}: not valid YAML: character {chr(exc.character)!r} at position "
            f"{exc.position} is not allowed (write it escaped in a double-quoted string)"
        ) from None
    except Refused as exc:
        at = "" if exc.mark is None else f" line {exc.mark.line + 1}:"
        raise ScenarioError(f"{where}:{at} {exc.problem}") from None
    except yaml.YAMLError as exc:
        at = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            at = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ScenarioError(f"{where}: not valid YAML{at}: {problem}") from None
    except RecursionError:
        raise ScenarioError(
            f"{where}: not valid YAML: nested too deeply",
            fix=f"simnet files are at most {MAX_DEPTH} levels deep",
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
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or exc
        raise ScenarioError(f"{path}: cannot read {what}: {reason}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(f"{path}: file is larger than 1 MiB; is it a {what}?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_yaml_file(path: Path, what: str) -> Any:
    """The parsed contents of the YAML file `path` (a `what`, e.g. "mix file"), read with every
    rule above; `ScenarioError` naming the file otherwise."""
    return parse_yaml(read_text_file(path, what), str(path))
