"""Reading stored results skips nothing in silence: a bad file is one error naming it.

Why: `simnet report` exited 70 (an internal error) on garbage, truncated, empty or renamed
`.parquet` files, a FIFO or a dangling symlink in the results folder, `schema_version: "abc"`
and inf in `setup_ms`, and "no such results" exited 1 like a regression. A FIFO would also
block the reader forever. Each is now an `UnusableResults` / `SchemaError` (exit 2) naming the
file; ±inf in a figure reads as a missing value.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from simnet.errors import SimnetError
from simnet.results.schema import SchemaError
from simnet.results.store import ResultStore, UnusableResults, load, load_results
from tests.unit.bad_result_files import BAD_FILES, first_frame
from tests.unit.rows import result_row


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    store = ResultStore(folder, "s")
    for run in range(2):
        store.write(result_row(run=run))
    return folder


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_bad_file_in_the_folder_is_one_error_naming_it(results: Path, kind: str) -> None:
    bad = results / "zz-bad.parquet"
    BAD_FILES[kind](results, bad)
    for target in (results, bad):  # the folder, and the file named on its own
        with pytest.raises(UnusableResults) as info:
            load(target)
        assert info.value.exit_code == 2
        assert info.value.message.startswith(str(bad)), info.value.message
        assert "\n" not in info.value.message


def test_a_folder_named_like_a_result_file_is_read_as_a_folder(results: Path) -> None:
    inner = results / "more.parquet"
    ResultStore(inner, "s").write(result_row(run=7))
    assert sorted(load(results)["run"]) == [0, 1, 7]


@pytest.mark.parametrize("version", ["abc", 1.5, 0, -3])
def test_a_schema_version_that_is_not_a_whole_number_names_the_file(
    results: Path, version: object
) -> None:
    bad = results / "edited.parquet"
    first_frame(results).assign(schema_version=version).to_parquet(bad)
    with pytest.raises(SchemaError) as info:
        load(results)
    assert info.value.exit_code == 2
    assert info.value.message.startswith(f"{bad}: schema_version {version!r}")


def test_infinite_figures_read_as_missing(results: Path) -> None:
    for name, value in (("inf", math.inf), ("minus-inf", -math.inf), ("nan", math.nan)):
        first_frame(results).assign(setup_ms=value, run=9).to_parquet(results / f"{name}.parquet")
    frame = load(results)
    odd = frame[frame["run"] == 9]
    assert len(odd) == 3 and odd["setup_ms"].isna().all()
    assert frame[frame["run"] != 9]["setup_ms"].notna().all()


def test_no_such_results_and_no_rows_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for paths, expected in (
        ([tmp_path / "missing"], f"no such results: {tmp_path / 'missing'}"),
        ([tmp_path / "empty"], f"no result rows in {tmp_path / 'empty'}"),
    ):
        with pytest.raises(SimnetError) as info:
            load_results(paths)
        assert info.value.exit_code == 2 and info.value.message == expected
