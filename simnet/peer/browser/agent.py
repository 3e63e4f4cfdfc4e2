"""What every browser peer's agent does, whichever browser it drives: `BrowserAgent` and `main`.

A browser peer's agent speaks simnet's peer protocol (`simnet.peer.protocol`, version 1) as the
aiortc agent does: JSON commands on stdin, JSON events on stdout, each stamped with `"t"` =
`time.monotonic()`, the clock every namespace shares. Behind the protocol a browser runs the
shared call page (`simnet.peer.browser.PAGE`), driven by `simnet.peer.browser.driver`.

The same for every browser, and so here: enter the namespace before the browser (a child) starts;
become the child subreaper of the browser's helpers; launch the browser with the call's modules
imported while it starts; open and warm the call page; announce `{"event": "ready", "t",
"protocol": 1, "peer_kind", "peer_version", "pid", "netns", "browser_pid", "launch_s",
"browser_s", "warm_s"}` (`launch_s`: agent start to the browser answering its protocol, of which
`browser_s` from the browser's spawn; `warm_s`: the page and its warm-up); run each call and emit
its result (a crash still ends in one); relaunch the browser before a call whose CA it does not
trust (off the call's clock); replace a page that a call broke (error "browser") before that
call's result goes out; answer "ice-restart" through the page; and on exit close the browser,
reap its helpers and remove the profile.

What differs is a browser's kind (`BrowserAgent`'s hooks): how it is launched, how its first
page is opened and a broken one replaced, and whether a call's CA needs a relaunch.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from simnet import settings
from simnet.errors import SimnetError
from simnet.net import netns
from simnet.peer.serve import EventWriter, configure_logging, current_netns, serve, stdin_lines

if TYPE_CHECKING:
    from simnet.peer.browser.driver import CallPage
    from simnet.peer.browser.launch import BrowserProcess
    from simnet.peer.protocol import CallCommand, Event

PR_SET_CHILD_SUBREAPER = 36
#: how long the page's warm-up (`simnetWarmUp()`) may take unless a kind says otherwise
WARM_TIMEOUT_S = 10.0
REPLACE_TIMEOUT_S = 3.0  # a new page answers within ~0.5 s; a hung one's close never does


BrowserT = TypeVar("BrowserT", bound="BrowserProcess")
PageT = TypeVar("PageT", bound="CallPage")


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The options every browser agent takes; a kind adds its own (its executable...)."""
    found = argparse.ArgumentParser(prog=prog, description=description)
    found.add_argument("--netns", help="network namespace to live in (omitted: the caller's)")
    found.add_argument(
        "--profile", required=True, type=Path, help="the browser's profile directory (emptied)"
    )
    found.add_argument(
        "--trust",
        action="append",
        default=[],
        type=Path,
        help="PEM file of certificates to trust for TURN over TLS from the start (repeatable)",
    )
    found.add_argument(
        "--proxy", help="HTTP proxy (http://address:port) for everything, UDP kept off"
    )
    found.add_argument("--log-level", default=settings.agent_log_level())
    return found


class BrowserAgent(Generic[BrowserT, PageT]):
    """The browser, its call page, and the commands served (`simnet.peer.serve.serve`)."""

    #: the kind's name in the registry (`simnet.peerkinds`), for "ready"
    peer_kind: ClassVar[str]
    #: the kind's agent logger: its log lines say which agent wrote them
    log: ClassVar[logging.Logger]
    #: how long the page's warm-up may take
    warm_timeout_s: ClassVar[float] = WARM_TIMEOUT_S
    #: what replacing a page is, in the log ("cannot <it>; relaunching the browser")
    replacing: ClassVar[str] = "replace the page"
    #: what a page a call broke is, in the log ("cannot replace the <it> page")
    broken: ClassVar[str] = "broken"
    #: what the reaped processes are, in the log ("reaped 3 <them>")
    helpers: ClassVar[str] = "browser process(es)"

    def __init__(self, args: argparse.Namespace, emit: EventWriter) -> None:
        self.profile: Path = args.profile
        self.trust: list[Path] = list(args.trust)
        self.proxy: str | None = args.proxy
        self.emit = emit
        self.browser: BrowserT | None = None
        self.page: PageT | None = None
        self.launched_t = 0.0  # when the browser last answered its protocol

    # --- the kind's hooks ---------------------------------------------------------------------

    async def launch(self, while_starting: Callable[[], object]) -> BrowserT:
        """The browser started (trusting `self.trust`) and answering; `while_starting` run
        while it starts."""
        raise NotImplementedError

    async def first_page(self, browser: BrowserT) -> PageT:
        """The call page, loaded, in a browser just launched."""
        raise NotImplementedError

    def can_replace_page(self, browser: BrowserT) -> bool:
        """Whether `replace_page` may be tried in this (running) browser."""
        return True

    async def replace_page(self, browser: BrowserT) -> PageT:
        """A fresh call page instead of the one a call broke."""
        raise NotImplementedError

    def needs_relaunch(self, ca_file: Path, browser: BrowserT) -> bool:
        """Whether trusting `ca_file` takes a new browser (it does not trust it, and can)."""
        raise NotImplementedError

    async def warm(self, browser: BrowserT, page: PageT) -> None:
        """Warm the page up (one RTCPeerConnection created, an offer set, closed)."""
        await page.evaluate("simnetWarmUp()", await_promise=True, timeout_s=self.warm_timeout_s)

    # --- the same for every kind --------------------------------------------------------------

    async def start(self) -> None:
        """Launch the browser (trusting `self.trust`) on the call page, and warm the page."""
        self.browser = await self.launch(while_starting=_import_call_modules)
        self.launched_t = time.monotonic()
        self.page = await self.first_page(self.browser)
        await self.warm(self.browser, self.page)

    async def repair(self) -> None:
        """After a page crash or hang: a new page, or a new browser if the old one is gone or
        the page cannot be replaced within `REPLACE_TIMEOUT_S` (a hung page's close waits on
        its stopped process: Chromium's for 21 s, Firefox's for 34 s, where a relaunch takes a
        few)."""
        browser = self.browser
        if browser is not None and browser.alive() and self.can_replace_page(browser):
            try:
                async with asyncio.timeout(REPLACE_TIMEOUT_S):
                    self.page = await self.replace_page(browser)
                await self.warm(browser, self.page)
                return
            except TimeoutError:
                self.log.warning(
                    "could not %s within %g s; relaunching the browser",
                    self.replacing,
                    REPLACE_TIMEOUT_S,
                )
            except Exception:
                self.log.exception("cannot %s; relaunching the browser", self.replacing)
        await self.stop_browser(polite=False)  # it is broken: no need to wait for its exit
        await self.start()

    async def ensure_trusted(self, ca_file: str | None) -> None:
        """Relaunch the browser if the call trusts a certificate it does not."""
        if ca_file is None or self.browser is None:
            return
        if not self.needs_relaunch(Path(ca_file), self.browser):
            return
        self.log.info("relaunching the browser to trust %s", ca_file)
        self.trust.append(Path(ca_file))
        await self.stop_browser()
        await self.start()

    async def stop_browser(self, polite: bool = True) -> None:
        """Close the browser and reap its helpers (the agent is their subreaper); not
        `polite`: kill both at once (a stopped helper would never exit by itself)."""
        # loaded with the browser already; deferred like every browser import (start-up cost)
        from simnet.peer.browser.processes import CLOSE_TIMEOUT_S, reap_orphans

        if self.browser is not None:
            await self.browser.close(polite)
        self.browser = self.page = None
        reaped = await reap_orphans(timeout_s=CLOSE_TIMEOUT_S if polite else 0.0)
        if reaped:
            self.log.info("reaped %d %s", reaped, self.helpers)

    async def call(self, cmd: CallCommand) -> None:
        """Run one call and emit its result; a crash still ends in a result."""
        # loaded while the browser started (`_import_call_modules`)
        from simnet.peer.browser.driver import run_call
        from simnet.peer.protocol import CallResult

        try:
            if self.page is None or self.browser is None or not self.browser.alive():
                await self.repair()
            await self.ensure_trusted(cmd.ca_file)
            assert self.page is not None
            result = await run_call(self.page, cmd, self.emit)
        except Exception as exc:
            self.log.exception("call crashed")
            result = CallResult(
                role=cmd.role, connected=False, error="agent", error_detail=f"{exc!r}"
            )
        ended = time.monotonic()
        if result.error == "browser":
            # Replace the page before the result goes out, not when the next call comes: the
            # controller starts a call on both peers at once, once both results are in, so a
            # repair then ran on the other peer's clock. A hung page's repair took over the
            # 5 s the answerer waits for an offer on a loaded machine (the next call failed
            # `timeout:signaling`, "no answer from bob"). The result keeps its own time.
            await self._repair_quietly()
        self.emit({"event": "result", "t": ended, **result.model_dump(mode="json")})

    async def ice_restart(self, in_call: bool) -> None:
        """Answer `{"cmd": "ice-restart"}`: the page restarts ICE if it can (simnetIceRestart)
        and reports the restart's events itself; the answer says whether it does."""
        t = time.monotonic()
        answer: Event = {"supported": False, "reason": "no call in progress"}
        if in_call and self.page is not None:
            try:
                value = await self.page.evaluate("simnetIceRestart()")
            except Exception as exc:  # the page is gone: the call's watchdog reports it
                value = {"supported": False, "reason": f"the page did not take it: {exc}"}
            if isinstance(value, dict):
                answer = value
        self.emit({"event": "ice_restart", "t": t, **answer})

    def background(self) -> list[asyncio.Task[Any] | None]:
        return []

    async def _repair_quietly(self) -> None:
        try:
            await self.repair()
        except Exception:  # the next call tries again, and reports what fails
            self.log.exception("cannot replace the %s page", self.broken)
            self.page = None


def _import_call_modules() -> None:
    """What a call needs (pydantic models, ~0.3 s of imports), while the browser starts."""
    import simnet.peer.browser.driver
    import simnet.peer.protocol  # noqa: F401


AgentFactory = Callable[[argparse.Namespace, EventWriter], BrowserAgent[Any, Any]]


async def _serve(
    make: AgentFactory, args: argparse.Namespace, emit: EventWriter, started: float
) -> int:
    agent = make(args, emit)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await agent.start()  # imports the call's modules while the browser starts
        from simnet.peer.protocol import PROTOCOL_VERSION  # loaded meanwhile: start-up cost

        launched = agent.launched_t
        assert agent.browser is not None
        reader = await stdin_lines()
        emit(
            {
                "event": "ready",
                "t": time.monotonic(),
                "protocol": PROTOCOL_VERSION,
                "peer_kind": agent.peer_kind,
                "peer_version": agent.browser.version,
                "pid": os.getpid(),
                "netns": current_netns(),
                "browser_pid": agent.browser.pid,
                "launch_s": launched - started,
                "browser_s": agent.browser.start_s,
                "warm_s": time.monotonic() - launched,
            }
        )
        await serve(reader, emit, agent, stop)
    finally:
        await agent.stop_browser()
        shutil.rmtree(agent.profile, ignore_errors=True)
    return 0


def become_subreaper(log: logging.Logger) -> None:
    """Orphaned descendants (the browser's helpers, once it exits) become the agent's children,
    so `stop_browser` reaps them instead of leaving them to init, which may reap them late or
    never (`simnet.peer.browser.processes`). Before the browser starts, and not in the browser
    modules, whose imports are paid while it starts."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("cannot become a child subreaper: %s", os.strerror(ctypes.get_errno()))


def main(
    argv: list[str] | None,
    parse: Callable[[list[str] | None], argparse.Namespace],
    make: AgentFactory,
    log: logging.Logger,
) -> int:
    """A browser agent's whole life: `parse` its options, enter its namespace, serve the agent
    `make` builds; returns its exit code."""
    started = time.monotonic()
    args = parse(argv)
    if args.netns:
        netns.enter_for_good(args.netns)  # before the browser, a child, is started
    become_subreaper(log)  # the browser's helpers come back here to be reaped, not to init
    emit = EventWriter()
    configure_logging(args.log_level)
    try:
        return asyncio.run(_serve(make, args, emit, started))
    except SimnetError as exc:  # e.g. no browser: one line, how to fix it, in the agent's log
        log.error("%s", exc)
        return exc.exit_code
