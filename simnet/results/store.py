"""The results store: a directory of Parquet files, one per run, plus metadata columns.

One file per run (not one growing file) is what makes a crash lose nothing: a run's row is on
disk the moment the run ends, and a half-written file can only be the run that was cut short.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import platform
import re
import stat
import subprocess
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from pyarrow import ArrowException

from simnet import __version__
from simnet.errors import SimnetError, printable
from simnet.peerkinds import KINDS
from simnet.results.outputs import UnusableOutput, check_output_dir
from simnet.results.schema import ResultRow, check_version


@functools.cache
def environment() -> dict[str, str]:
    """Versions and machine facts that make a result reproducible, computed once per process."""
    return {
        "simnet_version": __version__,
        **{
            f"{kind.name}_version": _package_version(kind.package)
            for kind in KINDS.values()
            if kind.package is not None
        },
        "aioice_version": _package_version("aioice"),
        "coturn_version": _coturn_version(),
        "kernel": platform.release(),
        "host": platform.node(),
        "git_revision": _git_revision(),
    }


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _coturn_version() -> str:
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "coturn"], capture_output=True, text=True
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


FILE_STEM_MAX = 64


def file_stem(name: str) -> str:
    """The part of a results file's name that comes from a scenario (or sweep) name.

    Only letters, digits and `_.-`, at most 64 characters, never starting with a dot: the name
    is the user's, and used raw it put files outside `--out` (`../x`), in subdirectories
    (`a/b`), or failed for its length after the call had been made."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("._-")[:FILE_STEM_MAX]
    return stem or "results"


class ResultStore:
    """Writes each run's row to `<out>/<name>-<stamp>-<n>.parquet` as soon as it is known
    (`<name>` made safe by `file_stem`)."""

    def __init__(self, out_dir: Path, name: str, formats: Iterable[str] = ()) -> None:
        # before the first call: an --out that cannot hold files would lose its row
        self.out_dir = check_output_dir(out_dir, "--out")
        self.name = name
        self.stem = file_stem(name)
        self.stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        self.formats = set(formats)
        self.count = 0

    def write(self, row: ResultRow) -> Path:
        """Store `row`; if it cannot be stored as Parquet, keep it as JSON and say where. A
        failing write (a full disk, a folder removed meanwhile) is an `UnusableOutput` naming
        the path."""
        try:
            return self._write(row)
        except OSError as exc:
            where = printable(exc.filename or self.out_dir, newlines=False)
            raise UnusableOutput(f"--out: cannot write {where}: {exc.strerror}") from None

    def _write(self, row: ResultRow) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        full = {**environment(), **row.columns()}
        # (not Path.with_suffix: a dot in the name, "v1.2", would be taken for a suffix and
        # every row of the run written to the same "v1.parquet")
        base = f"{self.stem}-{self.stamp}-{self.count:04d}"
        self.count += 1
        path = self.out_dir / f"{base}.parquet"
        tmp = self.out_dir / f"{base}.parquet.tmp"
        as_json = json.dumps(full, default=str) + "\n"
        try:
            frame = pd.DataFrame([{k: _cell(v) for k, v in full.items()}])
            frame.to_parquet(tmp, index=False)
        except (ValueError, TypeError, OverflowError, ArrowException) as exc:
            kept = self.out_dir / f"{base}.json"
            kept.write_text(as_json)
            tmp.unlink(missing_ok=True)
            raise SimnetError(
                f"a result row could not be stored as Parquet ({type(exc).__name__}: {exc}); "
                f"it is kept as JSON in {kept}",
                fix="please report this with the JSON file",
            ) from None
        tmp.replace(path)  # readers never see half a file
        if "csv" in self.formats:
            frame.to_csv(self.out_dir / f"{base}.csv", index=False)
        if "json" in self.formats:
            (self.out_dir / f"{base}.json").write_text(as_json)
        return path


def _cell(value: object) -> object:
    """Nested values (dicts, lists) are stored as JSON text so every row has flat columns."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return value


class UnusableResults(SimnetError):
    """Stored results a command cannot read: missing, not a regular file, not Parquet, not
    simnet rows, or no rows at all; exit 2 ("could not run"), not 1 ("regressed")."""

    exit_code = 2


def _result_files(path: Path) -> list[Path]:
    """The result files `path` names: itself, or every `*.parquet` under it. Anything that is
    not a regular file (a FIFO would block the reader, a device never ends, a dangling symlink
    has nothing to read) is an `UnusableResults` naming it, never skipped in silence."""
    if path.is_dir():  # (a folder named *.parquet is a folder: rglob reads what it holds)
        files = sorted(f for f in path.rglob("*.parquet") if f.is_symlink() or not f.is_dir())
    else:
        files = [path]
    for file in files:
        try:
            mode = file.stat().st_mode
        except FileNotFoundError:
            what = "a symlink to a missing file" if file.is_symlink() else "missing"
            raise UnusableResults(
                f"{printable(file, newlines=False)}: {what}, not a result file",
                fix="remove it, or restore the file it stood for",
            ) from None
        except OSError as exc:
            raise UnusableResults(
                f"{printable(file, newlines=False)}: cannot be read: {exc.strerror}"
            ) from None
        if not stat.S_ISREG(mode):
            raise UnusableResults(
                f"{printable(file, newlines=False)} is not a regular file, not a result file",
                fix="remove it from the results folder, or point at the folder's files instead",
            )
    return files


def _read_file(file: Path) -> pd.DataFrame:
    """One stored result file: Parquet holding simnet rows (a `connected` column), each with a
    valid `schema_version`; ±inf in a figure reads as missing (NaN), as a value nobody measured.
    Anything else is an `UnusableResults` naming the file."""
    name = printable(file, newlines=False)
    try:
        frame = pd.read_parquet(file)
    except (OSError, ValueError, ArrowException) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = printable(re.sub(r"^Could not open Parquet input source '.*?': ", "", reason))
        raise UnusableResults(
            f"{name} cannot be read as Parquet ({reason[:200]})",
            fix="remove the file (a run cut short leaves only *.tmp files; this one is damaged "
            "or not simnet's)",
        ) from None
    if "connected" not in frame.columns:
        raise UnusableResults(
            f"{name} holds no simnet result rows (no `connected` column)",
            fix="point at files written by simnet run, matrix, load, population or sweep",
        )
    numbers = frame.select_dtypes("number").columns
    if len(numbers):
        frame[numbers] = frame[numbers].replace([np.inf, -np.inf], np.nan)
    return check_version(frame, name)


def load(*paths: str | Path) -> pd.DataFrame:
    """One tidy DataFrame from result directories and/or Parquet files, every row with its
    `schema_version` (rows stored before the column existed read as version 1). A file that is
    not readable simnet rows is an `UnusableResults` naming it; rows of a newer simnet, or a
    `schema_version` that is not a whole number, a `SchemaError` naming the file (both exit 2).
    ±inf in a figure reads as a missing value."""
    files = [file for path in map(Path, paths) for file in _result_files(path)]
    if not files:
        return pd.DataFrame()
    frames = [_read_file(f) for f in files]
    return check_version(pd.concat(frames, ignore_index=True), ", ".join(map(str, paths)))


def load_results(paths: Sequence[Path | str]) -> pd.DataFrame:
    """The rows under `paths` (`load`), for a command that needs some: a path that does not
    exist, or no row at all, is an `UnusableResults` naming the paths."""
    sources = [Path(p) for p in paths]
    if missing := [str(p) for p in sources if not p.exists()]:
        raise UnusableResults(f"no such results: {printable(', '.join(missing), newlines=False)}")
    rows = load(*sources)
    if rows.empty:
        raise UnusableResults(
            f"no result rows in {printable(', '.join(map(str, sources)), newlines=False)}",
            fix="run `simnet run`, `simnet matrix` or a sweep with --out DIR first",
        )
    return rows
