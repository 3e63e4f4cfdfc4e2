"""`simnet.quantile`: the one quantile every figure simnet prints comes from.

Why: a median or p95 simnet prints must be the one a user gets from the stored rows with numpy
or pandas (their default, "linear"), whatever module printed it; and no values must give no
figure, not 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simnet.quantile import METHOD, quantile

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=200)


@given(samples, st.floats(min_value=0, max_value=1))
def test_quantile_is_numpys_and_pandas_default(values: list[float], q: float) -> None:
    assert quantile(values, q) == float(np.quantile(values, q))
    assert quantile(values, q) == pytest.approx(float(pd.Series(values).quantile(q)), abs=1e-9)
    assert METHOD == "linear"


def test_known_answers() -> None:
    assert quantile([3.0], 0.95) == 3.0
    assert quantile([1, 2, 3, 4], 0.5) == 2.5  # an even count: the mean of the middle two
    assert quantile(range(1, 101), 0.95) == pytest.approx(95.05)  # rank 94.05
    assert quantile([5, 1, 4, 2, 3], 0) == 1
    assert quantile([5, 1, 4, 2, 3], 1) == 5
    assert quantile(iter([10.0, 30.0]), 0.25) == 15.0  # any iterable, read once


def test_no_values_is_no_figure() -> None:
    assert quantile([], 0.5) is None


@pytest.mark.parametrize("q", [-0.01, 1.5, 95])
def test_q_outside_zero_to_one_is_refused(q: float) -> None:
    with pytest.raises(ValueError):
        quantile([1.0], q)
