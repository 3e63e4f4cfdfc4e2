"""Bad output paths and bad result files, through the CLI: one clear error, exit 2, nothing built.

Why: as root, `simnet report DIR --out /dev/null` renamed its page over /dev/null (the device
became a plain file, for every program on the machine) and `compare --github-benchmark
/dev/null` wrote `/dev/null-bigger.json`; `run --repeat 2 --out FILE` made a call and then lost
its row to `FileExistsError` (70); `report` exited 70 on a damaged file in the results folder.
Each must be refused before anything is built or written, naming the option (or file) and the
path. /dev/null is checked to still be a character device after every case.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from simnet.results.store import ResultStore
from tests.integration.guarded_cli import assert_one_clear_error, new_namespaces, run_guarded
from tests.unit.bad_result_files import BAD_FILES
from tests.unit.rows import result_row

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).parents[2] / "scenarios" / "direct-lan.yaml"
SWEEP = Path(__file__).parents[2] / "benchmarks" / "sweeps" / "nat-matrix.yaml"
MIX = Path(__file__).parents[2] / "scenarios" / "mixes" / "field.yaml"


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    store = ResultStore(folder, "s")
    for run in range(3):
        store.write(result_row(run=run))
    return folder


@pytest.fixture(autouse=True)
def dev_null_stays_a_device() -> Iterator[None]:
    yield
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null was replaced"
    assert not list(Path("/dev").glob("null?*")), "a file was written beside /dev/null"
    assert not list(Path("/dev").glob("full?*")), "a file was written beside /dev/full"


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo.html")
    return tmp_path / "fifo.html"


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile" / "sub" / "out.json"


BAD_FILE_OUTPUTS: dict[str, Callable[[Path], Path]] = {
    "dev-null": lambda tmp_path: Path("/dev/null"),
    "dev-full": lambda tmp_path: Path("/dev/full"),
    "folder": lambda tmp_path: tmp_path,
    "fifo": _fifo,
    "under-a-file": _under_a_file,
}


@pytest.mark.parametrize("kind", sorted(BAD_FILE_OUTPUTS))
def test_report_out_that_is_not_a_file_is_refused(
    kind: str, results: Path, tmp_path: Path, tools
) -> None:
    out = BAD_FILE_OUTPUTS[kind](tmp_path)
    done = tools.run_cli("report", str(results), "--out", str(out))
    line = assert_one_clear_error(done, ["--out", str(out)])
    assert str(out) in line
    assert not list(out.parent.glob(f"{out.name}?*"))  # no .tmp, no PNG beside it


@pytest.mark.parametrize("kind", sorted(BAD_FILE_OUTPUTS))
def test_compare_github_benchmark_that_is_not_a_file_is_refused(
    kind: str, results: Path, tmp_path: Path, tools
) -> None:
    out = BAD_FILE_OUTPUTS[kind](tmp_path)
    done = tools.run_cli("compare", str(results), str(results), "--github-benchmark", str(out))
    line = assert_one_clear_error(done, ["--github-benchmark", str(out)])
    assert str(out) in line


def test_a_report_beside_a_folder_named_like_its_picture_writes_nothing(
    results: Path, tmp_path: Path, tools
) -> None:
    """The PNGs beside the page are checked with the page, before any file is written."""
    (tmp_path / "r-phases.png").mkdir()
    done = tools.run_cli("report", str(results), "--out", str(tmp_path / "r.html"))
    assert_one_clear_error(done, ["--out", str(tmp_path / "r-phases.png"), "directory"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r-phases.png", "results"]


def test_an_unwritable_folder_is_refused_for_a_user(results: Path, tools) -> None:
    results.parent.chmod(0o755)
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *tools.simnet,
         "report", str(results), "--out", "/root/report.html"],
        capture_output=True, text=True, timeout=60, env={**tools.cli_env, "MPLCONFIGDIR": "/tmp"},
    )  # fmt: skip
    line = assert_one_clear_error(done, ["--out /root/report.html"])
    assert "Permission denied" in line or "not writable" in line


@pytest.mark.parametrize(
    "command",
    [
        ["run", str(SCENARIO), "--repeat", "2"],
        ["load", str(SCENARIO)],
        ["matrix"],
        ["sweep", str(SWEEP)],
        ["population", str(MIX), "--calls", "2"],
    ],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize("kind", ["existing-file", "dev-null", "under-a-file"])
def test_a_results_folder_that_cannot_be_one_is_refused_before_building(
    command: list[str], kind: str, tmp_path: Path, tools
) -> None:
    (tmp_path / "somefile").write_text("x")
    out = {
        "existing-file": tmp_path / "somefile",
        "dev-null": Path("/dev/null"),
        "under-a-file": tmp_path / "somefile" / "results",
    }[kind]
    before = set(tools.namespaces())
    done, started = run_guarded(tools, *command, "--out", str(out))
    assert started == [], f"{command[0]} started run(s) {started} for a bad --out"
    assert new_namespaces(tools, before) == set()
    line = assert_one_clear_error(done, ["--out", str(out)])
    assert str(out) in line
    assert (tmp_path / "somefile").read_text() == "x"


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_report_on_a_bad_result_file_names_it(
    kind: str, results: Path, tmp_path: Path, tools
) -> None:
    bad = results / "zz-bad.parquet"
    BAD_FILES[kind](results, bad)
    done = tools.run_cli("report", str(results), "--out", str(tmp_path / "r.html"))
    line = assert_one_clear_error(done, [str(bad)])
    assert str(bad) in line
    assert not (tmp_path / "r.html").exists()


def test_report_on_schema_version_abc_and_infinite_figures(
    results: Path, tmp_path: Path, tools
) -> None:
    frame = pd.read_parquet(sorted(results.glob("*.parquet"))[0])
    frame.assign(setup_ms=float("inf")).to_parquet(results / "inf.parquet")
    done = tools.run_cli("report", str(results), "--out", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.output  # inf reads as a missing value
    frame.assign(schema_version="abc").to_parquet(results / "abc.parquet")
    done = tools.run_cli("report", str(results), "--out", str(tmp_path / "r.html"))
    assert_one_clear_error(done, [str(results / "abc.parquet"), "schema_version", "'abc'"])


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_report_without_results_exits_2(kind: str, tmp_path: Path, tools) -> None:
    folder = tmp_path / "results"
    if kind == "empty":
        folder.mkdir()
    done = tools.run_cli("report", str(folder), "--out", str(tmp_path / "r.html"))
    assert_one_clear_error(done, [str(folder)])
