"""One call on a browser peer, from the agent's side: start it in the page, relay its events,
watch the browser, build the result. Browser-neutral: the page is reached through `CallPage`,
which each browser's agent implements over its own protocol (Chromium's CDP, Firefox's
WebDriver BiDi).

The page runs the call by itself (page.js); the agent

1. measures the page's clock against the shared one (`simnet.peer.browser.clock`: a few
   evaluations round trip, the smallest one kept) and hands the page the offset, which the
   data-channel protocol needs for its shared-clock timestamps;
2. starts the call (`simnetCall(spec)`) and turns each event the page sends (`simnetEvent`)
   into a protocol event stamped on the shared clock;
3. watches the page meanwhile: the page crashing or going away and the browser exiting
   (`CallPage.gone`), and the page not answering a trivial evaluation within `unresponsive_s`
   (the watchdog, bounded by the shortest phase timeout) all end the call at once with the error
   "browser"; so does a page that has not finished within the call's whole bound
   (`Timeouts.total_s`), which a page that enforces its own timeouts never reaches;
4. builds the `CallResult` from the page's "report" (`simnet.peer.browser.results`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from simnet.callspec import CLOSE_TIMEOUT_S, DONE_WAIT_S
from simnet.peer.browser.clock import ClockMapping, Sample, mapping_from
from simnet.peer.browser.results import build_result
from simnet.peer.protocol import CallCommand, CallResult, Event

log = logging.getLogger("simnet.peer.browser.driver")

Emit = Callable[[Event], None]

CLOCK_SAMPLES = 5  # evaluation round trips per calibration (0.7-1 ms each here)
CLOCK_MAX_SAMPLES = 20  # ...and more, up to this many, while the bound is above the target
# The target: five round trips give +-0.35-0.55 ms here; a loaded machine's slow round trips
# once gave +-4 ms, which more samples bring back under it
CLOCK_TARGET_ERROR_S = 0.001
PING_INTERVAL_S = 0.5  # the watchdog's trivial evaluate
UNRESPONSIVE_S = 3.0  # a page that has not answered for this long has hung (or its phase bound)
#: page events that are not protocol events: the page's own bookkeeping
PRIVATE_EVENTS = frozenset({"report", "closed", "log", "page_error"})


class CallPage(Protocol):
    """What the driver needs of a browser's page, whatever protocol reaches it."""

    #: where the page's `simnetEvent(payload)` strings go (None: nowhere)
    sink: Callable[[str], None] | None
    #: the exceptions the page's protocol raises when the page or the browser is gone
    failures: tuple[type[Exception], ...]

    async def evaluate(
        self, expression: str, *, await_promise: bool = False, timeout_s: float = 10.0
    ) -> Any:
        """The value of `expression` in the page (JSON-serialisable)."""
        ...

    async def gone(self) -> str:
        """Returns (a reason) when the page crashes or closes, or the browser goes away."""
        ...


class BrowserFailed(Exception):
    """The page crashed, hung or went away during a call."""


async def measure_clock(page: CallPage) -> ClockMapping:
    """The page clock -> shared clock mapping: CLOCK_SAMPLES round trips, and more (up to
    CLOCK_MAX_SAMPLES) while the tightest one still bounds the error above the target."""
    taken: list[Sample] = []
    while len(taken) < CLOCK_MAX_SAMPLES:
        sent = time.monotonic()
        page_ms = await page.evaluate("simnetNow()")
        received = time.monotonic()
        taken.append(Sample(sent, received, float(page_ms)))
        if len(taken) >= CLOCK_SAMPLES and mapping_from(taken).error_s <= CLOCK_TARGET_ERROR_S:
            break
    return mapping_from(taken)


def unresponsive_after(cmd: CallCommand) -> float:
    """How long the page may leave a ping unanswered: UNRESPONSIVE_S, and never longer than the
    shortest phase timeout, so a hung page is reported within any phase's bound."""
    timeouts = cmd.timeouts
    shortest = min(
        timeouts.gathering_s,
        timeouts.signaling_s,
        timeouts.ice_s,
        timeouts.dtls_s,
        timeouts.datachannel_s,
        timeouts.media_s,
    )
    return min(UNRESPONSIVE_S, shortest)


async def _watchdog(page: CallPage, limit_s: float) -> str:
    """Returns (a reason) only when the page stops answering; runs until cancelled otherwise."""
    while True:
        await asyncio.sleep(PING_INTERVAL_S)
        try:
            await page.evaluate("0", timeout_s=limit_s)
        except TimeoutError:
            return f"the page did not answer for {limit_s:g} s (hung renderer)"
        except page.failures as exc:
            return f"the page is gone: {exc}"


async def run_call(page: CallPage, cmd: CallCommand, emit: Emit) -> CallResult:
    """Run one call in `page`; emits its events, returns its result (a page that fails is a
    result with error "browser", not an exception)."""
    mapping = await measure_clock(page)
    inbox: asyncio.Queue[str] = asyncio.Queue()
    page.sink = inbox.put_nowait
    phase_t: dict[str, float] = {}
    report: dict[str, Any] | None = None
    close_s: float | None = None
    failure: str | None = None
    spec = {
        "cmd": cmd.model_dump(mode="json"),
        "clock_offset_ms": mapping.offset_ms,
        "done_wait_s": DONE_WAIT_S,
        "close_timeout_s": CLOSE_TIMEOUT_S,
    }
    deadline = time.monotonic() + cmd.timeouts.total_s(cmd.duration_s)
    watchdog = asyncio.ensure_future(_watchdog(page, unresponsive_after(cmd)))
    gone = asyncio.ensure_future(page.gone())
    try:
        await page.evaluate(f"simnetCall({json.dumps(spec)})")
        while close_s is None:
            payload = await _next(inbox, watchdog, gone, deadline)
            event = json.loads(payload)
            name = str(event.pop("event"))
            t = mapping.to_shared(float(event.pop("pt")))
            key = event.pop("key", None)
            if name == "report":
                report = event
            elif name == "closed":
                close_s = float(event["close_ms"]) / 1000
            elif name in ("log", "page_error"):
                log.warning("page %s: %s", name, event.get("message"))
                if name == "page_error":
                    raise BrowserFailed(f"the page's call failed: {event.get('message')}")
            else:
                if key is not None:
                    phase_t.setdefault(str(key), t)
                emit({"event": name, "t": t, **event})
    except BrowserFailed as exc:
        failure = str(exc)
    except page.failures as exc:
        failure = f"the page is gone: {exc}"
    finally:
        page.sink = None
        for task in (watchdog, gone):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if report is not None and failure is None:
        return build_result(cmd, report, mapping, close_s)
    assert failure is not None
    if report is not None:  # the page measured and then died while closing
        result = build_result(cmd, report, mapping, None)
        return result.model_copy(update={"error": "browser", "error_detail": failure})
    return CallResult(
        role=cmd.role,
        connected=False,
        error="browser",
        error_detail=failure,
        phase_t=phase_t,
        clock_error_ms=mapping.error_s * 1000,
    )


async def _next(
    inbox: asyncio.Queue[str],
    watchdog: asyncio.Future[str],
    gone: asyncio.Future[str],
    deadline: float,
) -> str:
    """The page's next event, or BrowserFailed when the page dies, hangs or overruns."""
    if not inbox.empty():
        return inbox.get_nowait()
    getter = asyncio.ensure_future(inbox.get())
    try:
        remaining = max(deadline - time.monotonic(), 0.0)
        done, _ = await asyncio.wait(
            {getter, watchdog, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        if not getter.done():
            getter.cancel()
    if getter in done:
        return getter.result()
    if gone in done:
        raise BrowserFailed(gone.result())
    if watchdog in done:
        raise BrowserFailed(watchdog.result())
    raise BrowserFailed("the page did not finish the call within the call's bound")
