"""Checking calls against their scenario's `call.expect`.

Pure: a row (see `simnet.call.row`) in, the list of unmet expectations out, each phrased so a
CI log says what differed without opening the results.
"""

from __future__ import annotations

from simnet.results.schema import ResultRow
from simnet.scenario.model import Expectation


def unmet(expect: Expectation | None, row: ResultRow) -> list[str]:
    """What `row` shows that `expect` does not allow (empty: the call is as expected).

    Without an expectation a call must connect without any error: a call with an error is a
    failed call unless `expect` expects exactly that error (or a failure, `connected: false`),
    and a timeline event that could not be applied fails it whatever is expected. An
    expectation of one draw (`seed` set) holds only for rows of that seed."""
    if expect is None or (expect.seed is not None and row.seed != expect.seed):
        expect = Expectation()  # one draw's expectation says nothing of another draw
    call = row.call
    wrong: list[str] = []

    def differs(field: str, seen: object, wanted: object) -> None:
        if wanted is not None and seen != wanted:
            wrong.append(f"{field} {seen!r}, expected {wanted!r}")

    differs("connected", call.connected, expect.connected)
    if wrong and call.error is not None:  # a call that failed unexpectedly says how
        line = _first_line(call.error_detail or "")
        wrong[-1] += f" (error {call.error!r}{': ' + line if line else ''})"
    if expect.error is not None:
        differs("error", call.error, expect.error)
    elif expect.connected and call.connected and call.error is not None:
        # connected: true, error: timeout:datachannel is a call whose data never arrived
        wrong.append(f"error {call.error!r}, expected none")
    if row.timeline_error:  # no expectation allows a change that was never made
        wrong.append(f"timeline: {row.timeline_error}")
    if call.connected:
        differs("path", call.path, expect.path)
        differs("relay_protocol", call.relay_protocol, expect.relay_protocol)
        # a row without family columns is a call on a network without IPv6: IPv4, no NAT64
        families = call.families
        differs("ip_family", families.ip_family if families else "ipv4", expect.ip_family)
        differs("via_nat64", families.via_nat64 if families else False, expect.via_nat64)
        if expect.rtt_ms is not None:
            low, high = expect.rtt_ms
            rtt = call.rtt_ms
            if rtt is None or not low <= rtt <= high:
                wrong.append(f"rtt_ms {rtt!r}, expected {low:g}..{high:g}")
    differs("recovered", row.recovered, expect.recovered)
    return wrong


DETAIL_CHARS = 160


def _first_line(detail: str) -> str:
    """A detail's first line, cut to `DETAIL_CHARS`: an agent's detail may end with its log's
    last lines, which belong in the row, not in a one-line verdict."""
    line = next(iter(detail.strip().splitlines()), "")
    return line if len(line) <= DETAIL_CHARS else line[: DETAIL_CHARS - 1] + "…"
