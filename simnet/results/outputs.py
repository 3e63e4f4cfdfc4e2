"""Where a command may write: every output option is checked here before anything is built.

Rules (docs/guides/results.md, "Where results are written"):

- an output *file* (`report --out`, `compare --github-benchmark`, and the files written beside
  it) must be absent or a regular file (a symlink counts as what it points at); its nearest
  existing folder must be a writable directory (missing folders below it are created). A
  device, FIFO, socket or directory is refused, never replaced: a page is written as
  `NAME.tmp` and renamed over `NAME`, which would turn `/dev/null` into a plain file.
- an output *directory* (`--out` of run, matrix, load, population, sweep) must be a writable
  directory, or absent with a writable directory as its nearest existing parent (it is created
  when the first row is stored).

A refusal is an `UnusableOutput` (exit 2) naming the option and the path, raised before a call
is made, so no row is lost to an output that could never be written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from simnet.errors import SimnetError, printable


class UnusableOutput(SimnetError):
    """An output path a command cannot (or must not) write; nothing was built."""

    exit_code = 2


_KINDS = (
    (stat.S_ISREG, "a file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _name(path: Path) -> str:
    return printable(path, newlines=False)


def _writable_directory(directory: Path, option: str, target: Path) -> None:
    """`directory` exists, is a directory and this process may create files (and folders) in
    it."""
    shown = f"{option} {_name(target)}"
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        raise UnusableOutput(
            f"{shown}: the folder {_name(directory)} does not exist",
            fix=f"create it first (mkdir -p {_name(directory)}) or choose another {option}",
        ) from None
    except OSError as exc:
        raise UnusableOutput(f"{shown}: cannot use {_name(directory)}: {exc.strerror}") from None
    if not stat.S_ISDIR(mode):
        raise UnusableOutput(
            f"{shown}: {_name(directory)} is not a directory ({_kind(mode)})",
            fix=f"choose another {option}",
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UnusableOutput(
            f"{shown}: the folder {_name(directory)} is not writable",
            fix=f"choose a folder you may write to for {option}",
        )


def _nearest_existing(path: Path) -> Path:
    """The closest folder above `path` that exists (or is a symlink): where a missing folder
    on the way would be created."""
    parent = path.absolute().parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    return parent


def _not_a_folder(path: Path, option: str) -> UnusableOutput:
    """The error for a path through something that is not a folder (`afile/x`)."""
    blocking = next((p for p in path.absolute().parents if p.exists() and not p.is_dir()), None)
    where = f"{_name(blocking)} is not a folder" if blocking else "a part of it is not a folder"
    return UnusableOutput(f"{option} {_name(path)}: {where}", fix=f"choose another {option}")


def check_output_file(path: Path, option: str) -> Path:
    """`path` if a command may write the file there (module docstring), else `UnusableOutput`
    naming `option` and `path`. Nothing is created."""
    try:
        mode = path.stat().st_mode  # follows a symlink: what would be written is its target
    except FileNotFoundError:
        if path.is_symlink():
            raise UnusableOutput(
                f"{option} {_name(path)}: a symlink to a missing file ({_name(path.readlink())})",
                fix=f"remove the symlink or choose another {option}",
            ) from None
        mode = None
    except NotADirectoryError:
        raise _not_a_folder(path, option) from None
    except OSError as exc:
        raise UnusableOutput(f"{option} {_name(path)}: cannot use it: {exc.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise UnusableOutput(
            f"{option} {_name(path)} is {_kind(mode)}, not a regular file; it is never replaced",
            fix=f"give {option} the path of a regular file to write",
        )
    _writable_directory(_nearest_existing(path), option, path)
    return path


def check_output_dir(path: Path, option: str = "--out") -> Path:
    """`path` if rows may be stored in it (module docstring), else `UnusableOutput` naming
    `option` and `path`. Nothing is created."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise UnusableOutput(
                f"{option} {_name(path)}: a symlink to a missing folder ({_name(path.readlink())})",
                fix=f"remove the symlink or choose another {option}",
            ) from None
        _writable_directory(_nearest_existing(path), option, path)
        return path
    except NotADirectoryError:
        raise _not_a_folder(path, option) from None
    except OSError as exc:
        raise UnusableOutput(f"{option} {_name(path)}: cannot use it: {exc.strerror}") from None
    if not stat.S_ISDIR(mode):
        raise UnusableOutput(
            f"{option} {_name(path)} is {_kind(mode)}, not a directory",
            fix=f"{option} names the folder the result files go into, e.g. {option} results",
        )
    _writable_directory(path, option, path)
    return path


def write_output(path: Path, data: bytes | str, option: str) -> None:
    """Write `data` to `path` (checked with `check_output_file`); a failing write (a full disk)
    is an `UnusableOutput` naming the path, not a traceback."""
    check_output_file(path, option)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
    except OSError as exc:
        raise UnusableOutput(f"{option}: cannot write {_name(path)}: {exc.strerror}") from None
