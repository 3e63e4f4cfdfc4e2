"""The ways a file in a results folder can be unusable, each made from a good result file."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def first_file(folder: Path) -> Path:
    return sorted(folder.glob("*.parquet"))[0]


def first_frame(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(first_file(folder))


# kind -> a function that makes `path` (in `folder`, which holds good result files) that kind
BAD_FILES = {
    "garbage": lambda folder, path: path.write_text("not parquet at all\n"),
    "empty": lambda folder, path: path.write_bytes(b""),
    "truncated": lambda folder, path: path.write_bytes(first_file(folder).read_bytes()[:300]),
    "renamed-csv": lambda folder, path: first_frame(folder).to_csv(path),
    "fifo": lambda folder, path: os.mkfifo(path),
    "dangling-symlink": lambda folder, path: path.symlink_to(folder / "nowhere.parquet"),
    "device-symlink": lambda folder, path: path.symlink_to("/dev/zero"),
    "not-simnet-rows": lambda folder, path: pd.DataFrame({"a": [1]}).to_parquet(path),
}
