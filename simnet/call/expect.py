"""Checking calls against their scenario's `call.expect`.

Pure: a row (see `simnet.call.row`) in, the list of unmet expectations out, each phrased so a
CI log says what differed without opening the results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simnet.scenario.model import Expectation


def unmet(expect: Expectation, row: Mapping[str, Any]) -> list[str]:
    """What `row` shows that `expect` does not allow (empty: the call is as expected)."""
    wrong: list[str] = []

    def differs(field: str, wanted: object) -> None:
        if wanted is not None and row.get(field) != wanted:
            wrong.append(f"{field} {row.get(field)!r}, expected {wanted!r}")

    differs("connected", expect.connected)
    differs("error", expect.error)
    if row.get("connected"):
        differs("path", expect.path)
        differs("relay_protocol", expect.relay_protocol)
        if expect.rtt_ms is not None:
            low, high = expect.rtt_ms
            rtt = row.get("rtt_ms")
            if rtt is None or not low <= rtt <= high:
                wrong.append(f"rtt_ms {rtt!r}, expected {low:g}..{high:g}")
    differs("recovered", expect.recovered)
    return wrong
