"""The results store: a directory of Parquet files, one per run, plus metadata columns.

One file per run (not one growing file) is what makes a crash lose nothing: a run's row is on
disk the moment the run ends, and a half-written file can only be the run that was cut short.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from simnet import __version__
from simnet.results.schema import ResultRow, check_version


@functools.cache
def environment() -> dict[str, str]:
    """Versions and machine facts that make a result reproducible, computed once per process."""
    return {
        "simnet_version": __version__,
        "aiortc_version": _package_version("aiortc"),
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


def scenario_hash(scenario_json: str) -> str:
    return hashlib.sha256(scenario_json.encode()).hexdigest()[:12]


class ResultStore:
    """Writes each run's row to `<out>/<name>-<stamp>-<n>.parquet` as soon as it is known."""

    def __init__(self, out_dir: Path, name: str, formats: Iterable[str] = ()) -> None:
        self.out_dir = out_dir
        self.name = name
        self.stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        self.formats = set(formats)
        self.count = 0

    def write(self, row: ResultRow) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        full = {**environment(), **row.columns()}
        frame = pd.DataFrame([{k: _cell(v) for k, v in full.items()}])
        base = self.out_dir / f"{self.name}-{self.stamp}-{self.count:04d}"
        self.count += 1
        path = base.with_suffix(".parquet")
        tmp = base.with_suffix(".parquet.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)  # readers never see half a file
        if "csv" in self.formats:
            frame.to_csv(base.with_suffix(".csv"), index=False)
        if "json" in self.formats:
            base.with_suffix(".json").write_text(json.dumps(full, default=str) + "\n")
        return path


def _cell(value: Any) -> Any:
    """Nested values (dicts, lists) are stored as JSON text so every row has flat columns."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return value


def load(*paths: str | Path) -> pd.DataFrame:
    """One tidy DataFrame from result directories and/or Parquet files, every row with its
    `schema_version` (rows stored before the column existed read as version 1). Raises
    `simnet.results.schema.SchemaError` (a ValueError) for rows of a newer simnet."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        return pd.DataFrame()
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return check_version(frame, ", ".join(map(str, paths)))
