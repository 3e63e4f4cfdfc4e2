"""Per-cell statistics: Wilson intervals, bootstrap quantile intervals, and `summarize`.

Why: every verdict simnet prints about "how fast" and "how often" rests on these numbers, and an
interval that is subtly wrong (a textbook formula at p = 1, an unseeded bootstrap, a relay rate
divided by the wrong count) looks exactly like a right one. Known answers pin the formulas
(hand-computed Wilson bounds, scipy's own bootstrap as reference); properties pin what must hold
for any data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from simnet.results.stats import (
    METRICS,
    bootstrap_quantile,
    cell_columns,
    cell_label,
    group_cells,
    median_ci,
    p95_ci,
    relay_rate,
    success_rate,
    summarize,
    wilson_interval,
)

FAST = {"n_resamples": 499}  # enough for properties; known answers use the default
# Same examples on every run (and no example database): a test run is reproducible.
REPRODUCIBLE = settings(derandomize=True, database=None, deadline=None)


# --- Wilson score interval -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Hand-computed: z = 1.959964, centre = (p + z²/2n) / (1 + z²/n),
        # half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
        (8, 10, 0.490162, 0.943318),
        (10, 10, 0.722467, 1.0),
        (0, 10, 0.0, 0.277533),
        (1, 2, 0.094531, 0.905469),
        (18, 30, 0.423204, 0.754094),
        (30, 30, 0.886487, 1.0),
    ],
)
def test_wilson_known_answers(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(successes, n)
    assert interval.estimate == pytest.approx(successes / n)
    assert interval.low == pytest.approx(low, abs=1e-6)
    assert interval.high == pytest.approx(high, abs=1e-6)
    assert interval.n == n


def test_wilson_matches_the_formula_at_other_confidence() -> None:
    z = sps.norm.ppf(0.995)
    p, n = 0.7, 20
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    interval = wilson_interval(14, 20, confidence=0.99)
    assert (interval.low, interval.high) == pytest.approx((centre - half, centre + half))


def test_wilson_without_runs_and_bad_input() -> None:
    empty = wilson_interval(0, 0)
    assert empty.n == 0 and not empty.defined and not empty.has_interval
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


@REPRODUCIBLE
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_bounds_are_ordered_in_unit_range_and_contain_p(counts: tuple[int, int]) -> None:
    successes, n = counts
    interval = wilson_interval(successes, n)
    assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0
    assert interval.high - interval.low > 0  # never claims certainty


@REPRODUCIBLE
@given(
    st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(2, 50),
)
def test_wilson_width_shrinks_as_n_grows_at_a_fixed_proportion(
    counts: tuple[int, int], factor: int
) -> None:
    successes, n = counts
    small = wilson_interval(successes, n)
    large = wilson_interval(successes * factor, n * factor)
    assert large.estimate == pytest.approx(small.estimate)
    assert large.high - large.low < small.high - small.low


# --- bootstrap quantiles ---------------------------------------------------------------------


def test_median_and_p95_match_numpy_and_scipy_bootstrap() -> None:
    data = np.random.default_rng(7).lognormal(np.log(120), 0.2, 40)
    for q, interval in ((0.5, median_ci(data, seed=3)), (0.95, p95_ci(data, seed=3))):
        reference = sps.bootstrap(
            (data,),
            lambda x, axis=-1, q=q: np.quantile(x, q, axis=axis),
            n_resamples=4999,
            method="percentile",
            rng=np.random.default_rng(3),
        ).confidence_interval
        assert interval.estimate == pytest.approx(float(np.quantile(data, q)))
        assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high))
        assert interval.n == 40


def test_bootstrap_is_deterministic_and_seed_dependent() -> None:
    data = np.random.default_rng(1).normal(100, 10, 24)
    assert median_ci(data, seed=5) == median_ci(data, seed=5)
    # The bounds of an odd-sized median snap to data points; p95 interpolates, so a different
    # stream of resamples shows in its bounds.
    assert p95_ci(data, seed=5, n_resamples=99) != p95_ci(data, seed=6, n_resamples=99)


def test_small_and_degenerate_samples() -> None:
    assert not median_ci([]).defined
    one = median_ci([42.0])
    assert one.estimate == 42.0 and one.n == 1 and not one.has_interval
    same = p95_ci([7.0] * 12)
    assert (same.estimate, same.low, same.high) == (7.0, 7.0, 7.0)
    # Missing and non-finite values are dropped, not propagated.
    mixed = median_ci([None, float("nan"), float("inf"), 1.0, 3.0], **FAST)
    assert mixed.n == 2 and mixed.estimate == 2.0
    with pytest.raises(ValueError):
        bootstrap_quantile([1.0, 2.0], 1.5)


samples = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=2, max_size=40
)


@settings(REPRODUCIBLE, max_examples=60)
@given(samples, st.sampled_from([0.5, 0.95]), st.integers(0, 2**32 - 1))
def test_quantile_interval_contains_the_estimate(values: list[float], q: float, seed: int) -> None:
    interval = bootstrap_quantile(values, q, seed=seed, **FAST)
    assert interval.n == len(values)
    assert min(values) <= interval.low <= interval.estimate <= interval.high <= max(values)


# --- rates and cells -------------------------------------------------------------------------


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scenario": ["run-a"] * 4 + ["nat-matrix"] * 4,
            "nat_a": [None] * 4 + ["symmetric"] * 2 + ["open"] * 2,
            "nat_b": [None] * 4 + ["symmetric"] * 2 + ["open"] * 2,
            "connected": [True, True, True, False, True, True, False, False],
            "path": ["direct", "relay", "direct", None, "relay", "relay", None, None],
            # The failed run's partial timing must not count.
            "setup_ms": [100.0, 110.0, 120.0, 9999.0, 200.0, 220.0, None, None],
            "rtt_ms": [1.0, 2.0, 3.0, None, 5.0, 5.0, None, None],
        }
    )


def test_rates_count_the_right_runs() -> None:
    frame = _rows().iloc[:4]
    assert success_rate(frame).estimate == pytest.approx(3 / 4)
    relay = relay_rate(frame)  # over the 3 connected runs, not all 4
    assert relay.estimate == pytest.approx(1 / 3) and relay.n == 3


def test_cell_columns_default_and_axes() -> None:
    frame = _rows().assign(**{"axis.loss": 0.0, "axis.delay_ms": 10, "other": 1})
    assert cell_columns(frame) == ["scenario", "nat_a", "nat_b", "axis.delay_ms", "axis.loss"]
    assert cell_columns(pd.DataFrame({"scenario": ["x"]}), frame[["axis.loss"]]) == [
        "scenario",
        "axis.loss",
    ]


def test_group_cells_keeps_missing_keys_apart_and_orders_numbers_by_value() -> None:
    frame = pd.DataFrame({"scenario": ["s"] * 4, "axis.rate": [10, 2, None, 2]})
    groups = group_cells(frame, ["scenario", "axis.rate"])
    assert list(groups) == [("s", None), ("s", 2), ("s", 10)]
    assert len(groups[("s", 2)]) == 2
    assert cell_label(("s", 2), ["scenario", "axis.rate"]) == "s axis.rate=2"
    assert cell_label(("m", "open", "full-cone"), ["scenario", "nat_a", "nat_b"]) == (
        "m open->full-cone"
    )


def test_summarize_known_answers() -> None:
    summary = summarize(_rows(), n_resamples=999).set_index("cell")
    assert list(summary.index) == ["nat-matrix open->open", "nat-matrix symmetric->symmetric",
                                   "run-a"]  # fmt: skip
    run_a = summary.loc["run-a"]
    assert (run_a["n"], run_a["succeeded"]) == (4, 3)
    assert run_a["success_rate"] == pytest.approx(0.75)
    assert (run_a["success_low"], run_a["success_high"]) == pytest.approx(
        (wilson_interval(3, 4).low, wilson_interval(3, 4).high)
    )
    assert run_a["relay_rate"] == pytest.approx(1 / 3)
    assert run_a["setup_ms_n"] == 3
    assert run_a["setup_ms_median"] == pytest.approx(110.0)
    assert run_a["setup_ms_p95"] == pytest.approx(np.quantile([100, 110, 120], 0.95))
    assert run_a["setup_ms_median_low"] <= 110.0 <= run_a["setup_ms_median_high"]
    assert run_a["ice_connect_ms_n"] == 0 and math.isnan(run_a["ice_connect_ms_median"])
    failed = summary.loc["nat-matrix open->open"]
    assert failed["success_rate"] == 0.0 and math.isnan(failed["relay_rate"])
    assert math.isnan(failed["setup_ms_median"])
    assert summary.loc["nat-matrix symmetric->symmetric", "relay_rate"] == 1.0
    for metric in METRICS:
        assert f"{metric}_p95_high" in summary.columns


def test_summarize_by_axis_and_empty_frames() -> None:
    frame = _rows().iloc[:3].assign(**{"axis.loss": [0.0, 0.0, 0.05]})
    summary = summarize(frame, n_resamples=199)
    assert list(summary["axis.loss"]) == [0.0, 0.05]
    assert list(summary["n"]) == [2, 1]
    assert summarize(frame, by=[], n_resamples=199)["n"].tolist() == [3]
    assert summarize(pd.DataFrame()).empty
