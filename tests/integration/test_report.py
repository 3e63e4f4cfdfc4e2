"""The HTML report renders in a real browser and shows the NAT matrix in its colours.

Why: the report is what people look at and forward, so "the file was written" proves little. The
page must be self-contained (it is opened from disk, no network, no simnet), must render in a
browser without scripts, and its NAT matrix must show each cell's outcome in the agreed colours
(green direct, amber relay, red failed), both as the HTML grid and as the PNG. Rows are
synthesised (a matrix with its expected outcomes, one failed cell, a numeric sweep axis) and
stored with `ResultStore`, so no network is needed; headless Chromium takes the screenshot.
"""

from __future__ import annotations

import html
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from simnet.callspec import ROW_MILESTONES
from simnet.errors import SimnetError
from simnet.present.report.figures import COLORS
from simnet.present.report.page import report
from simnet.present.report.rows import group_labels
from simnet.results import ResultStore
from simnet.results.schema import CallOutcome, ResultRow
from simnet.results.store import load
from simnet.run.matrix import NEEDS_RELAY, PRESETS

# Not marked `integration` (but the one test of real runs): nothing else needs root or a network.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FAILED_CELL = ("symmetric", "symmetric")


def _matrix_rows(repeat: int = 3, seed: int = 7) -> list[ResultRow]:
    """Rows shaped like `simnet matrix` rows: relay where ICE theory says, one cell failed."""
    rnd = random.Random(seed)
    rows: list[ResultRow] = []
    for nat_a in PRESETS:
        for nat_b in PRESETS:
            for rep in range(repeat):
                relay = (nat_a, nat_b) in NEEDS_RELAY
                failed = (nat_a, nat_b) == FAILED_CELL
                setup = rnd.uniform(450, 650) if relay else rnd.uniform(30, 120)
                milestones = {
                    f"offerer_{phase}_ms": setup * i / len(ROW_MILESTONES)
                    for i, phase in enumerate(ROW_MILESTONES)
                }
                call = CallOutcome(
                    connected=not failed,
                    error="timeout:ice" if failed else None,
                    path=None if failed else ("relay" if relay else "direct"),
                    relay_protocol="udp" if relay and not failed else None,
                    setup_ms=None if failed else setup,
                    dc_goodput_mbps=None if failed else rnd.uniform(20, 90),
                    rtt_ms=None if failed else rnd.uniform(0.3, 3),
                    milestones={} if failed else milestones,
                )
                cell = {
                    "nat_a": nat_a,
                    "nat_b": nat_b,
                    "axis.call.data_bytes": [10_000, 100_000, 1_000_000][rep % 3],
                }
                rows.append(
                    ResultRow(call=call, scenario="nat-matrix", scenario_hash="", seed=0,
                              run=rep, run_id="report", wall_ms=0.0, cell=cell)
                )  # fmt: skip
    return rows


def _store(rows: list[ResultRow], out: Path) -> Path:
    store = ResultStore(out, "nat-matrix")
    for row in rows:
        store.write(row)
    return out


def _rgb(color: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    value = int(color.lstrip("#"), 16)
    return np.array([(value >> 16) & 255, (value >> 8) & 255, value & 255], dtype=float)


def _pixels_of(image: np.ndarray[Any, Any], color: str, tolerance: float = 6) -> int:
    """How many pixels of `image` (floats 0-1 or bytes 0-255) are `color`."""
    rgb = image[..., :3].astype(float)
    if rgb.max() <= 1.0:
        rgb = rgb * 255
    return int((np.abs(rgb - _rgb(color)).max(axis=-1) <= tolerance).sum())


@pytest.fixture
def page(tmp_path: Path) -> Path:
    return report([_store(_matrix_rows(), tmp_path / "results")], tmp_path / "out" / "report.html")


def test_the_page_is_self_contained_and_holds_the_matrix_grid(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", text), "the page loads something"
    grid = re.search(r'<table class="nat-matrix">.*?</table>', text, re.S)
    assert grid, "no NAT matrix grid in the page"
    cells = re.findall(r'<td class="cell-([a-z-]+)" style="background:(#[0-9a-f]{6})"', grid[0])
    assert len(cells) == len(PRESETS) ** 2
    kinds = [kind for kind, _ in cells]
    assert kinds.count("relay") == len(NEEDS_RELAY) - 1  # one relay cell failed instead
    assert kinds.count("failed") == 1
    assert kinds.count("direct") == len(PRESETS) ** 2 - len(NEEDS_RELAY)
    assert all(color == COLORS[kind] for kind, color in cells)
    for section in ("overview", "phases", "turn-vs-direct", "axis-call-data-bytes"):
        assert f'<section id="{section}">' in text
    assert text.count("data:image/png;base64,") == 4
    pngs = sorted(p.name for p in page.parent.glob("*.png"))
    assert pngs == [
        "report-axis-call-data-bytes.png",
        "report-matrix-nat-matrix.png",
        "report-phases.png",
        "report-turn-vs-direct.png",
    ]


def test_the_matrix_png_shows_each_outcome_in_its_colour(page: Path) -> None:
    image = mpimg.imread(page.with_name("report-matrix-nat-matrix.png"))
    direct = _pixels_of(image, COLORS["direct"])
    relay = _pixels_of(image, COLORS["relay"])
    failed = _pixels_of(image, COLORS["failed"])
    assert direct > 0 and relay > 0 and failed > 0
    # cell areas follow the cell counts: 22 direct, 2 relay, 1 failed
    assert 5 < direct / relay < 20 and 1 < relay / failed < 3


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (setup.sh adds it)"
)
def test_chromium_renders_the_page_with_the_matrix_visible(page: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
            f"--screenshot={shot}", "--window-size=1200,1600", page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = mpimg.imread(shot)
    assert image.shape[:2] == (1600, 1200)
    assert float(image[..., :3].std()) > 0.05, "the screenshot is blank"
    # the matrix (the HTML grid, and its PNG below it) is on the first screen, in its colours
    assert _pixels_of(image, COLORS["direct"]) > 50_000
    assert _pixels_of(image, COLORS["relay"]) > 2_000
    assert _pixels_of(image, COLORS["failed"]) > 1_000


def test_a_sweep_with_preset_axes_gets_a_matrix_too(tmp_path: Path) -> None:
    rows = [
        ResultRow(
            call=CallOutcome(
                connected=True, path="relay" if (a, b) in NEEDS_RELAY else "direct", setup_ms=100.0
            ),
            scenario="home-vs-carrier",
            scenario_hash="",
            seed=0,
            run=0,
            run_id="report",
            wall_ms=0.0,
            cell={"sweep": "nat-matrix", "axis.nats.home.preset": a, "axis.nats.carrier.preset": b},
        )
        for a in PRESETS
        for b in PRESETS
    ]
    page = report([_store(rows, tmp_path / "results")], tmp_path / "sweep.html")
    text = page.read_text()
    assert "home (NAT preset)" in text and "carrier (NAT preset)" in text
    assert text.count('<td class="cell-relay"') == len(NEEDS_RELAY)


def test_no_rows_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SimnetError, match="no result rows"):
        report([tmp_path / "empty"], tmp_path / "r.html")
    with pytest.raises(SimnetError, match="no such results"):
        report([tmp_path / "missing"], tmp_path / "r.html")
    done = subprocess.run(
        [sys.executable, "-c", "from simnet.cli import main; main()", "report",
         str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "no such results" in done.stderr, done.stderr
    assert not (tmp_path / "r.html").exists()


# --- variants: the same scenario with different overrides is never pooled -------------------


def _overview(page: Path) -> dict[str, list[str]]:
    """The overview table's rows by their first cell (the group label)."""
    text = page.read_text()
    table = text.split('<table class="overview">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1])
    cells = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)] for row in rows]
    return {row[0]: row[1:] for row in cells}


@pytest.mark.integration
def test_a_baseline_and_its_override_are_two_groups(tmp_path: Path) -> None:
    """Two real `simnet run`s into one results directory: direct-lan as shipped, and with 100 ms
    on alice's link. The report shows two labelled groups; the delayed one's RTT is at least
    the 200 ms its link adds per round trip (a physical floor on any machine) and the
    baseline's stays far below it (a LAN: well under 50 ms even on a slow machine). The delayed
    runs send no bulk data: 1 MB through a 200 ms round trip would take seconds and is not what
    is checked."""
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "direct-lan.yaml"
    out = tmp_path / "results"
    cli = [sys.executable, "-m", "simnet.cli", "run", str(scenario), "--repeat", "2"]
    delayed = ["--set", "hosts.alice.link.delay_ms=100", "--set", "call.data_bytes=0"]
    for extra in ([], delayed):
        done = subprocess.run(
            [*cli, "--out", str(out), "--json", *extra], capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    stored = load(out)
    label = "direct-lan [call.data_bytes=0, hosts.alice.link.delay_ms=100]"
    assert (
        sorted(stored["overrides"])
        == ['["hosts.alice.link.delay_ms=100", "call.data_bytes=0"]'] * 2 + ["[]"] * 2
    )

    overview = _overview(report([out], tmp_path / "report.html"))
    assert set(overview) == {"direct-lan", label}
    assert overview["direct-lan"][0] == overview[label][0] == "2"  # runs
    rtt = {name: float(row[4].removesuffix(" ms")) for name, row in overview.items()}
    assert rtt[label] >= 200
    assert rtt["direct-lan"] < 50


def test_variants_are_labelled_from_overrides_and_older_rows_by_hash() -> None:
    """The label is the sorted `--set`s; rows without `overrides` (older results) fall back to
    `scenario_hash` where one scenario has several, and to the bare name where it has one."""
    frame = pd.DataFrame(
        [
            {"scenario": "s", "overrides": '["b=2", "a=1"]', "scenario_hash": "h1"},
            {"scenario": "s", "overrides": "[]", "scenario_hash": "h0"},
            {"scenario": "old", "scenario_hash": "aaaaaaaaaaaa"},
            {"scenario": "old", "scenario_hash": "bbbbbbbbbbbb"},
            {"scenario": "one", "scenario_hash": "cccccccccccc"},
        ]
    )
    assert list(group_labels(frame)) == [
        "s [a=1, b=2]",
        "s",
        "old #aaaaaaaa",
        "old #bbbbbbbb",
        "one",
    ]


def test_two_stacks_get_their_own_grids_and_a_side_by_side(tmp_path: Path) -> None:
    """Matrix rows of aiortc and of Chromium are never pooled into one grid: each stack gets its
    grid, and one table puts the two side by side per cell, marking where their paths differ."""
    aiortc = _matrix_rows(repeat=1)
    chromium = []
    for row in _matrix_rows(repeat=1, seed=8):
        direct = dict(row.cell)["nat_a"] == "symmetric" and row["path"] == "relay"
        update: dict[str, Any] = {"offerer_peer": "chromium", "answerer_peer": "chromium"}
        if direct:  # this stack punched through where the other relayed
            update["path"] = "direct"
        chromium.append(
            ResultRow(
                call=row.call.model_copy(update=update), scenario="nat-matrix",
                scenario_hash="", seed=0, run=0, run_id="report-chromium", wall_ms=0.0,
                cell=row.cell,
            )
        )  # fmt: skip
    page = report([_store(aiortc + chromium, tmp_path / "results")], tmp_path / "r.html")
    text = page.read_text()
    assert "NAT matrix: nat-matrix, aiortc</h2>" in text
    assert "NAT matrix: nat-matrix, chromium</h2>" in text
    assert "NAT matrix by WebRTC stack" in text
    start = text.index("NAT matrix by WebRTC stack")
    side = text[start : text.index("</section>", start)]
    rows = re.findall(r"<tr>(.*?)</tr>", side)
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in rows if "<td>" in r]
    differ = {(c[0], c[1]) for c in cells if c[-1] == "yes"}
    # symmetric -> port-restricted-cone relays with aiortc, "punched through" with this Chromium
    assert ("symmetric", "port-restricted-cone") in differ
    assert ("open", "open") not in differ
    assert len(cells) == len(PRESETS) ** 2


def test_load_rows_get_a_curve_of_setup_and_connected_share(tmp_path: Path) -> None:
    """Rows of `simnet load` (a `concurrency` column): one table row per level with its
    connected share and set-up quantiles, and a plot."""
    rows = []
    for level, failed in ((1, 0), (10, 1), (25, 5)):
        for k in range(level):
            ok = k >= failed
            call = CallOutcome(
                connected=ok,
                error=None if ok else "timeout:ice",
                path="relay" if ok else None,
                relay_protocol="udp" if ok else None,
                setup_ms=100.0 + level * 10 + k if ok else None,
            )
            cell = {"concurrency": level, "call_index": k, "start_offset_ms": 0.0}
            rows.append(ResultRow(call=call, scenario="turn-load", scenario_hash="", seed=0,
                                  run=k, run_id="load", wall_ms=0.0, cell=cell))  # fmt: skip
    out = report([_store(rows, tmp_path / "results")], tmp_path / "out" / "report.html")
    text = out.read_text()
    assert 'id="load"' in text and (tmp_path / "out" / "report-load.png").exists()
    table = re.search(r'<table class="load-curve">(.*?)</table>', text, re.S)
    assert table is not None
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table[1])]
    by_level = {c[1]: c for c in cells if c}
    assert by_level["1"][3] == "100 %" and by_level["10"][3] == "90 %"
    assert by_level["25"][3] == "80 %" and by_level["25"][2] == "25"


def test_population_rows_get_the_estimate_and_a_sensitivity_plot(tmp_path: Path) -> None:
    """Rows of `simnet population` (class columns): the relayed share with its Wilson interval,
    each class's part of the TURN share, and the tornado plot."""
    rows = []
    for k, (a, b, relayed) in enumerate([("cone", "cone", False)] * 6 + [("sym", "sym", True)] * 2
                                        + [("cone", "sym", False)] * 2):  # fmt: skip
        call = CallOutcome(connected=True, path="relay" if relayed else "direct",
                           relay_protocol="udp" if relayed else None, setup_ms=100.0)  # fmt: skip
        cell = {"population": "m", "offerer_class": a, "answerer_class": b}
        rows.append(ResultRow(call=call, scenario="m", scenario_hash="", seed=0, run=k,
                              run_id="pop", wall_ms=0.0, cell=cell))  # fmt: skip
    out = report([_store(rows, tmp_path / "results")], tmp_path / "out" / "report.html")
    text = out.read_text()
    assert 'id="population"' in text and (tmp_path / "out" / "report-population.png").exists()
    table = re.search(r'<table class="population">(.*?)</table>', text, re.S)
    assert table is not None and "<td>relay</td><td>20.0 %</td>" in table[1]
    assert '<table class="population-classes">' in text
