"""The one way simnet computes a quantile (a median, a p95) of measured values.

Method: numpy's default, "linear" (type 7 of Hyndman and Fan, also R's and pandas' default):
the values sorted, the q-quantile lies at rank `q * (n - 1)`, interpolated linearly between the
two values around it. The median of an even count is the mean of the middle two. One method
everywhere means a figure simnet prints agrees with what a user computes from the stored rows
with numpy or pandas.

Only numpy: the module is imported by the call runner and the link probe as well as by the
result statistics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np

#: numpy's name of the method (`np.quantile(..., method=METHOD)`), for vectorised callers
#: (the bootstrap resamples of `simnet.results.stats`) that must agree with `quantile`
METHOD: Final = "linear"


def quantile(values: Iterable[float], q: float) -> float | None:
    """The `q`-quantile (0 <= q <= 1) of `values`; None when there are none.

    None rather than 0 or NaN: no values is no figure (a level where no call connected has no
    set-up time). Missing values must be left out by the caller: a NaN among `values` makes the
    result NaN, as in numpy. Raises ValueError for a `q` outside [0, 1].
    """
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is not in [0, 1]")
    array = np.fromiter(values, dtype=np.float64)
    if array.size == 0:
        return None
    return float(np.quantile(array, q, method=METHOD))
