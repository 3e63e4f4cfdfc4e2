"""The Chromium peer agent: `python -m simnet.peer.chromium --netns NS --profile DIR`.

It speaks simnet's peer protocol (`simnet.peer.protocol`, version 1) exactly like the aiortc
agent (`simnet.peer.aiortc.agent`), so the controller drives it the same way: JSON commands on
stdin, JSON events on stdout, each stamped with `"t"` = `time.monotonic()`, the clock every
namespace shares. What differs is behind the protocol: the call runs in a headless Chromium page
(libwebrtc), driven over the DevTools protocol.

Start-up, before "ready" (off any call's clock): enter the namespace (so the browser, a child,
lives there too), launch Chromium with a fresh profile in `--profile` and wait for its DevTools
line, open the call page (simnet/peer/browser/page.html, from file://) and warm it up (one
RTCPeerConnection created, an offer set, closed). Then it announces `{"event": "ready", "t",
"protocol": 1, "peer_kind": "chromium", "peer_version": "Chromium 156...", "pid", "netns",
"browser_pid", "launch_s", "browser_s", "warm_s"}` (`launch_s`: agent start to the browser's
DevTools answering, of which `browser_s` from the browser's spawn; `warm_s`: the page and its
warm-up).

A call whose page crashed or hung ends with the error "browser" (`simnet.peer.browser.driver`);
the agent then replaces the page (or relaunches the browser) before its next call. On exit (the
"exit" command, stdin closing, SIGTERM) it closes the browser, reaps the browser's helper
processes (the agent is their subreaper: none is left `<defunct>` for init) and removes the
profile.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simnet import settings
from simnet.errors import SimnetError
from simnet.net import netns
from simnet.peer.browser import PAGE as BROWSER_PAGE
from simnet.peer.serve import EventWriter, configure_logging, current_netns, serve, stdin_lines

if TYPE_CHECKING:
    from simnet.peer.protocol import CallCommand, Event

log = logging.getLogger("simnet.peer.chromium.agent")

PAGE = BROWSER_PAGE  # the call page the browser peers share


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simnet.peer.chromium", description=__doc__)
    parser.add_argument("--netns", help="network namespace to live in (omitted: the caller's)")
    parser.add_argument(
        "--profile", required=True, type=Path, help="the browser's profile directory (emptied)"
    )
    parser.add_argument("--chromium", help="the Chromium executable (default: Debian's)")
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        help="PEM file of certificates to trust for TURN over TLS from the start (repeatable)",
    )
    parser.add_argument(
        "--proxy", help="HTTP proxy (http://address:port) for everything, UDP kept off"
    )
    parser.add_argument("--log-level", default=settings.agent_log_level())
    return parser.parse_args(argv)


class Agent:
    """The browser, its call page, and the commands served."""

    def __init__(self, args: argparse.Namespace, emit: EventWriter) -> None:
        from simnet.peer.chromium import require_chromium
        from simnet.peer.chromium.browser import Browser, Page

        self.binary = require_chromium(args.chromium)  # its message ends the agent's log
        self.profile: Path = args.profile
        self.trust: list[str] = list(args.trust)
        self.proxy: str | None = args.proxy
        self.emit = emit
        self.browser: Browser | None = None
        self.page: Page | None = None
        self.launched_t = 0.0  # when the browser last answered DevTools
        self.repairing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Launch the browser (trusting `self.trust`) on the call page, and warm the page."""
        from simnet.peer.chromium.browser import Browser, spki_hashes

        spki = spki_hashes(self.trust) if self.trust else []
        self.browser = await Browser.launch(
            self.binary,
            self.profile,
            spki,
            PAGE.as_uri(),
            while_starting=_import_call_modules,
            proxy=self.proxy,
        )
        self.launched_t = time.monotonic()
        self.page = await self.browser.first_page(PAGE.as_uri())
        await self._warm()

    async def _open_page(self) -> None:
        assert self.browser is not None
        self.page = await self.browser.new_page(PAGE.as_uri())
        await self._warm()

    async def _warm(self) -> None:
        assert self.browser is not None and self.page is not None
        await self.browser.close_other_pages(self.page)
        await self.page.evaluate("simnetWarmUp()", await_promise=True)

    async def repair(self) -> None:
        """After a page crash or hang: a new page, or a new browser if the old one is gone."""
        browser, page = self.browser, self.page
        if browser is not None and browser.alive():
            if page is not None:
                browser.forget(page)
                await page.close()
            try:
                await self._open_page()
                return
            except Exception:
                log.exception("cannot open a new page; relaunching the browser")
        await self.stop_browser()
        await self.start()

    async def ensure_trusted(self, ca_file: str | None) -> None:
        """Relaunch the browser if the call trusts a certificate it does not (see browser.py)."""
        from simnet.peer.chromium.browser import spki_hashes

        if ca_file is None or self.browser is None:
            return
        needed = set(spki_hashes([ca_file]))
        if needed <= self.browser.spki:
            return
        log.info("relaunching the browser to trust %s", ca_file)
        self.trust.append(ca_file)
        await self.stop_browser()
        await self.start()

    async def stop_browser(self) -> None:
        """Close the browser and reap its helpers (the agent is their subreaper)."""
        # loaded with the browser already; deferred like every browser import (start-up cost)
        from simnet.peer.browser.processes import reap_orphans

        if self.browser is not None:
            await self.browser.close()
        self.browser = self.page = None
        reaped = await reap_orphans()
        if reaped:
            log.info("reaped %d browser helper(s)", reaped)

    async def call(self, cmd: CallCommand) -> None:
        """Run one call and emit its result; a crash still ends in a result."""
        from simnet.peer.browser.driver import run_call
        from simnet.peer.protocol import CallResult

        try:
            if self.repairing is not None:  # the last call's page is being replaced
                await self.repairing
                self.repairing = None
            if self.page is None or self.browser is None or not self.browser.alive():
                await self.repair()
            await self.ensure_trusted(cmd.ca_file)
            assert self.page is not None
            result = await run_call(self.page, cmd, self.emit)
        except Exception as exc:
            log.exception("call crashed")
            result = CallResult(
                role=cmd.role, connected=False, error="agent", error_detail=f"{exc!r}"
            )
        self.emit({"event": "result", "t": time.monotonic(), **result.model_dump(mode="json")})
        if result.error == "browser":  # replace the page now, off the next call's clock
            self.repairing = asyncio.ensure_future(self._repair_quietly())

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
        return [self.repairing]

    async def _repair_quietly(self) -> None:
        try:
            await self.repair()
        except Exception:  # the next call tries again, and reports what fails
            log.exception("cannot replace the crashed page")
            self.page = None


def _import_call_modules() -> None:
    """What a call needs (pydantic models, ~0.3 s of imports), while the browser starts."""
    import simnet.peer.browser.driver
    import simnet.peer.protocol  # noqa: F401


async def _serve(args: argparse.Namespace, emit: EventWriter, started: float) -> int:
    agent = Agent(args, emit)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await agent.start()  # imports the call's modules while the browser starts
        from simnet.peer.protocol import PROTOCOL_VERSION

        launched = agent.launched_t
        assert agent.browser is not None
        reader = await stdin_lines()
        emit(
            {
                "event": "ready",
                "t": time.monotonic(),
                "protocol": PROTOCOL_VERSION,
                "peer_kind": "chromium",
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


PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Orphaned descendants (the browser's helpers, once it exits) become the agent's children,
    so `stop_browser` reaps them instead of leaving them to init (`simnet.peer.chromium.browser`
    says why). Here, not in `browser`: it must happen before the browser starts, and that
    module's imports are paid while it starts."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("cannot become a child subreaper: %s", os.strerror(ctypes.get_errno()))


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = _parse_args(argv)
    if args.netns:
        netns.enter_for_good(args.netns)  # before the browser, a child, is started
    _become_subreaper()  # the browser's helpers come back here to be reaped, not to init
    emit = EventWriter()
    configure_logging(args.log_level)
    try:
        return asyncio.run(_serve(args, emit, started))
    except SimnetError as exc:  # e.g. no browser: one line, how to fix it, in the agent's log
        log.error("%s", exc)
        return exc.exit_code
