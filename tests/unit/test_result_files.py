"""Results files get safe names of their own, and no row is lost to a naming problem.

Why: the scenario name was used raw as the file name: `a/b/c` and a 300-character name crashed
after the call (the row lost), `../../escaped` wrote outside `--out`, and a dot (`v1.2`, also the
default name of a file `v1.2.yaml`) was taken for a suffix, so `--repeat 3` kept one row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simnet.errors import SimnetError
from simnet.results.schema import ResultRow
from simnet.results.store import FILE_STEM_MAX, ResultStore, file_stem, load
from tests.unit.rows import result_row


def row(name: str, run: int = 0, seed: int = 0) -> ResultRow:
    return result_row(scenario=name, run=run, seed=seed)


@pytest.mark.parametrize(
    "name", ["v1.2", "a/b/c", "../../escaped", "x" * 300, "[/]", "", ".", "..", "\x1b]0;x"]
)
def test_every_row_gets_its_own_file_inside_out(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    store = ResultStore(out, name)
    paths = [store.write(row(name, i)) for i in range(3)]
    assert len(set(paths)) == 3
    for path in paths:
        assert path.parent == out and path.suffix == ".parquet"
        assert len(path.name) < FILE_STEM_MAX + 40
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)
    assert sorted(load(out)["run"]) == [0, 1, 2]


def test_file_stem_keeps_a_valid_name_as_it_is() -> None:
    assert file_stem("home-vs-carrier") == "home-vs-carrier"
    assert file_stem("v1.2") == "v1.2"
    assert file_stem("../../escaped") == "escaped"
    assert file_stem("a/b/c") == "a-b-c"
    assert file_stem("...") == "results"


def test_a_row_parquet_cannot_hold_is_kept_as_json(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, "x")
    with pytest.raises(SimnetError, match="kept as JSON") as info:
        store.write(row("x", seed=10**30))  # beyond int64
    kept = [p for p in tmp_path.iterdir()]
    assert [p.suffix for p in kept] == [".json"] and str(kept[0]) in info.value.message
    assert '"seed": 1000000000000000000000000000000' in kept[0].read_text()
