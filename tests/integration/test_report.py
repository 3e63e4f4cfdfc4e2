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
import itertools
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg
from matplotlib.colors import to_hex

from simnet.callspec import ROW_MILESTONES
from simnet.errors import SimnetError
from simnet.present.report.figures import COLORS, variant_colors
from simnet.present.report.page import report
from simnet.present.report.phases import turn_vs_direct
from simnet.present.report.rows import group_labels, prepare, series_labels
from simnet.present.report.waterfall import MAX_WATERFALLS, _milestones, phases
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


def _screenshot(page: Path, shot: Path, width: int, height: int) -> np.ndarray[Any, Any]:
    """What a user sees of `page` in a `width` x `height` window: headless Chromium's
    screenshot, read back as pixels. The browser's profile lives in a folder removed after."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="simnet-report-chromium-") as profile:
        done = subprocess.run(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={shot}",
                f"--window-size={width},{height}", page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image: np.ndarray[Any, Any] = mpimg.imread(shot)
    return image


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
    # each (cell, data size) is a variant of its own: 24 matrix cells connected, 3 sizes each:
    # the first MAX_WATERFALLS get a picture, every one is in the folded table
    assert text.count('<img class="waterfall"') == MAX_WATERFALLS
    assert f"{72 - MAX_WATERFALLS} more variant(s) only in the table" in text
    assert text.count("data:image/png;base64,") == 3 + MAX_WATERFALLS
    pngs = sorted(p.name for p in page.parent.glob("*.png"))
    assert pngs[:2] == ["report-axis-call-data-bytes.png", "report-matrix-nat-matrix.png"]
    assert pngs[-1] == "report-turn-vs-direct.png"
    assert len(pngs) == 3 + MAX_WATERFALLS
    assert pngs[2] == "report-phases-01-nat-matrix-nat-open-open-data-bytes-1000.png"
    numbers = re.search(r"<details><summary>[^<]*</summary>(.*?)</details>", text, re.S)
    assert numbers and numbers[1].count("<tr>") == 1 + 72 * len(ROW_MILESTONES)


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
    image = _screenshot(page, tmp_path / "shot.png", 1200, 1600)
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


# --- phases as a picture: a waterfall per variant, as a user sees the page --------------------


@pytest.mark.integration
@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (setup.sh adds it)"
)
def test_a_user_sees_a_waterfall_per_variant_in_chromium(tmp_path: Path) -> None:
    """Real rows (two `simnet run`s into one folder: direct-lan, which connects directly, and
    relay-only, which goes through TURN) make two variants. The page holds one waterfall per
    variant in that variant's colour, the numbers folded below them, and headless Chromium shows
    both pictures on the first screen: not blank, in the two colours, relay-only's bars (its
    set-up is hundreds of ms) on its own time axis."""
    scenarios = Path(__file__).resolve().parents[2] / "scenarios"
    out = tmp_path / "results"
    for name in ("direct-lan", "relay-only"):
        done = subprocess.run(
            [sys.executable, "-m", "simnet.cli", "run", str(scenarios / f"{name}.yaml"),
             "--repeat", "2", "--set", "call.data_bytes=0", "--out", str(out), "--json"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    page = report([out], tmp_path / "page" / "report.html")
    text = page.read_text()
    variants = ["direct-lan [call.data_bytes=0]", "relay-only [call.data_bytes=0]"]
    colors = variant_colors(variants)
    assert len(set(colors.values())) == 2
    alts = re.findall(r'<img class="waterfall" alt="([^"]*)"', text)
    assert [html.unescape(a) for a in alts] == variants
    phases = text[text.index('<section id="phases">') :]
    phases = phases[: phases.index("</section>")]
    # the numbers stay available, folded: one row per milestone each side reached
    folded = re.search(r"<details>.*?</details>", phases, re.S)
    assert folded and phases.count("<table") == folded[0].count("<table") == 1
    rows = re.findall(r"<tr>(.*?)</tr>", folded[0])[1:]
    for variant in variants:
        reached = [r for r in rows if html.escape(variant) in r]
        assert len(reached) == len(ROW_MILESTONES) + 5, reached  # the answerer has 5 of them
    for k, variant in enumerate(variants, start=1):
        (png,) = page.parent.glob(f"report-phases-{k:02d}-*.png")
        image = mpimg.imread(png)
        mine, other = colors[variant], colors[variants[2 - k]]
        assert _pixels_of(image, mine) > 300, (png, "no bar in the variant's colour")
        assert _pixels_of(image, other) == 0, (png, "another variant's colour")
    shot = _screenshot(page, tmp_path / "shot.png", 1200, 1400)
    assert shot.shape[:2] == (1400, 1200)
    assert float(shot[..., :3].std()) > 0.05, "the screenshot is blank"
    for variant in variants:
        assert _pixels_of(shot, colors[variant]) > 300, f"{variant}'s waterfall is not on screen"


def _frame(rows: list[ResultRow]) -> pd.DataFrame:
    return prepare(pd.DataFrame([row.columns() for row in rows]))


def _phase_row(scenario: str, offset: float, stack: str = "aiortc") -> ResultRow:
    milestones = {f"offerer_{p}_ms": offset + 10.0 * i for i, p in enumerate(ROW_MILESTONES)}
    answerer = ("gathering_done", "ice_checking", "ice_connected", "dtls_connected", "dc_open")
    milestones.update(
        {f"answerer_{p}_ms": offset + 10.0 * ROW_MILESTONES.index(p) + 25 for p in answerer}
    )
    call = CallOutcome(connected=True, path="direct", setup_ms=80.0 + offset,
                       milestones=milestones, offerer_peer=stack, answerer_peer=stack)  # fmt: skip
    return ResultRow(call=call, scenario=scenario, scenario_hash="", seed=0, run=0,
                     run_id="phases", wall_ms=0.0)  # fmt: skip


def test_each_stack_gets_its_own_waterfall_never_a_pooled_one() -> None:
    """The same scenario called with two stacks is two variants: two pictures, each the median
    of its own calls (0 and 100 ms offsets here, never 50)."""
    rows = [_phase_row("s", 0.0), _phase_row("s", 0.0, "chromium")]
    rows += [_phase_row("s", 100.0, "chromium")] * 2
    section = phases(_frame(rows))
    assert section is not None
    assert [g.title for g in section.gallery] == ["s · aiortc", "s · chromium"]
    table = section.after
    assert (
        "<td>s · aiortc</td><td>direct</td><td>offerer dc open</td><td>1</td><td>70.0 ms" in table
    )
    assert (
        "<td>s · chromium</td><td>direct</td><td>offerer dc open</td><td>3</td><td>170.0 ms"
        in table
    )


def test_the_answerer_bars_start_when_the_offer_left() -> None:
    """Both sides on one clock: a side's bar runs from its previous milestone; the answerer's
    first from the offerer's `offer_sent` (it records no "offer received")."""
    section = phases(_frame([_phase_row("s", 0.0)]))
    assert section is not None
    bars = {(b.side, b.phase): b for b in _milestones(_frame([_phase_row("s", 0.0)]))}
    sent = bars[("offerer", "offer_sent")].median
    assert bars[("answerer", "gathering_done")].start == sent == 20.0
    assert bars[("answerer", "ice_checking")].start == bars[("answerer", "gathering_done")].median
    assert bars[("offerer", "offer_created")].start == 0.0
    medians = [b.median for b in _milestones(_frame([_phase_row("s", 0.0)]))]
    assert medians == sorted(medians)  # drawn in the order they happened


def test_turn_vs_direct_labels_do_not_overlap_and_colours_follow_variants() -> None:
    """Many variants with long names: the tick labels under the boxes are the paths only (the
    variant is the box's colour, named in the legend) and no two labels overlap once drawn."""
    rows = []
    for k in range(6):
        for path in ("direct", "relay"):
            call = CallOutcome(connected=True, path=path, setup_ms=100.0 + k,
                               relay_protocol="udp" if path == "relay" else None,
                               rtt_ms=1.0, dc_goodput_mbps=10.0)  # fmt: skip
            rows.append(ResultRow(call=call, scenario=f"a-rather-long-scenario-name-{k}",
                                  scenario_hash="", seed=0, run=0, run_id="t", wall_ms=0.0,
                                  overrides=("hosts.alice.link.delay_ms=100",)))  # fmt: skip
    frame = _frame(rows)
    section = turn_vs_direct(frame)
    assert section is not None and section.figure is not None
    figure = section.figure
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    figure.draw(renderer)
    colors = variant_colors(series_labels(frame))
    assert len(set(colors.values())) == 6
    for ax in figure.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        assert {t.get_text() for t in labels} == {"direct", "relay/udp"}
        boxes = [t.get_window_extent(renderer) for t in labels]
        for first, second in itertools.pairwise(boxes):
            assert not first.overlaps(second), "tick labels overlap"
        faces = {to_hex(p.get_facecolor()) for p in ax.patches}
        assert set(colors.values()) <= faces
