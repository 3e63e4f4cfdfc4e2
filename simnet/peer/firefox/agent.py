"""The Firefox peer agent: `python -m simnet.peer.firefox --netns NS --profile DIR`.

It speaks simnet's peer protocol (`simnet.peer.protocol`, version 1) as the Chromium agent does,
and runs the same call page (`simnet.peer.browser`): what differs is the browser (Firefox's
WebRTC, nICEr for ICE) and how the agent reaches it (WebDriver BiDi, `simnet.peer.firefox.bidi`).

Start-up, before "ready" (off any call's clock): enter the namespace (so the browser, a child,
lives there too), launch Firefox headless on a fresh profile in `--profile` (its `user.js`:
`simnet.peer.firefox.prefs`; its NSS database trusting each `--trust` PEM file for TURN over
TLS: `simnet.peer.firefox.certs`), open a BiDi session, open the call page and warm it up (one
RTCPeerConnection created, an offer set, closed; the fake devices opened once). Then it
announces `{"event": "ready", "t", "protocol": 1, "peer_kind": "firefox", "peer_version":
"Firefox 153...", "pid", "netns", "browser_pid", "launch_s", "browser_s", "warm_s"}`.

A call whose page hung or whose browser went away ends with the error "browser"
(`simnet.peer.browser.driver`); the agent reloads the page (or relaunches the browser) before
its next call. On exit (the "exit" command, stdin closing, SIGTERM) it closes the browser, reaps
its content processes (the agent is their subreaper) and removes the profile. A call whose
`ca_file` the profile does not trust yet costs a browser relaunch before it (off its clock, as
Chromium's).
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
from simnet.peer.browser import PAGE
from simnet.peer.firefox import certs
from simnet.peer.serve import EventWriter, configure_logging, current_netns, serve, stdin_lines

if TYPE_CHECKING:
    from simnet.peer.firefox.browser import Browser, Page
    from simnet.peer.protocol import CallCommand, Event

log = logging.getLogger("simnet.peer.firefox.agent")

PR_SET_CHILD_SUBREAPER = 36


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simnet.peer.firefox", description=__doc__)
    parser.add_argument("--netns", help="network namespace to live in (omitted: the caller's)")
    parser.add_argument(
        "--profile", required=True, type=Path, help="the browser's profile directory (emptied)"
    )
    parser.add_argument("--firefox", help="the Firefox executable (default: Debian's)")
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        type=Path,
        help="PEM file of certificates to trust for TURN over TLS from the start (repeatable)",
    )
    parser.add_argument("--log-level", default=settings.agent_log_level())
    return parser.parse_args(argv)


class Agent:
    """The browser, its call page, and the commands served."""

    def __init__(self, args: argparse.Namespace, emit: EventWriter) -> None:
        from simnet.peer.firefox import require_firefox

        self.binary = require_firefox(args.firefox)  # its message ends the agent's log
        self.profile: Path = args.profile
        self.trust: list[Path] = _trustable(args.trust)
        self.emit = emit
        self.browser: Browser | None = None
        self.page: Page | None = None
        self.launched_t = 0.0  # when the browser's BiDi session opened
        self.repairing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Launch the browser (its profile trusting `self.trust`), open the call page, and warm
        it."""
        from simnet.peer.firefox.browser import Browser

        self.browser = await Browser.launch(
            self.binary, self.profile, self.trust, while_starting=_import_call_modules
        )
        self.launched_t = time.monotonic()
        self.page = await self.browser.open_page(PAGE.as_uri())
        await self.page.evaluate("simnetWarmUp()", await_promise=True, timeout_s=30.0)

    async def repair(self) -> None:
        """After a hung or broken page: the page reloaded, or a new browser if it is gone."""
        if self.browser is not None and self.browser.alive() and self.browser.page is not None:
            try:
                self.page = await self.browser.reload_page(PAGE.as_uri())
                await self.page.evaluate("simnetWarmUp()", await_promise=True, timeout_s=30.0)
                return
            except Exception:
                log.exception("cannot reload the page; relaunching the browser")
        await self.stop_browser()
        await self.start()

    async def ensure_trusted(self, ca_file: str | None) -> None:
        """Relaunch the browser on a fresh profile if the call trusts a file its profile does
        not: the NSS database is written before the browser starts (`certs`)."""
        if ca_file is None or self.browser is None or Path(ca_file) in self.trust:
            return
        if not _trustable([Path(ca_file)]):
            return
        log.info("relaunching the browser to trust %s", ca_file)
        self.trust.append(Path(ca_file))
        await self.stop_browser()
        await self.start()

    async def stop_browser(self) -> None:
        """Close the browser and reap its processes (the agent is their subreaper)."""
        # loaded with the browser already; deferred like every browser import (start-up cost)
        from simnet.peer.browser.processes import reap_orphans

        if self.browser is not None:
            await self.browser.close()
        self.browser = self.page = None
        reaped = await reap_orphans()
        if reaped:
            log.info("reaped %d browser process(es)", reaped)

    async def call(self, cmd: CallCommand) -> None:
        """Run one call and emit its result; a broken page still ends in a result."""
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
        """Answer `{"cmd": "ice-restart"}` as the Chromium agent does (the page's
        simnetIceRestart)."""
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
            log.exception("cannot replace the broken page")
            self.page = None


def _trustable(pem_files: list[Path]) -> list[Path]:
    """`pem_files`, or none when NSS's certutil is missing: the browser then starts trusting
    nothing extra (a call over TURN/TLS fails, as its TURN attempts say; UDP and TCP work), and
    the log says how to get it (`simnet doctor` checks it too)."""
    if pem_files and certs.certutil() is None:
        log.warning("no %s: not trusting %s (%s)", certs.CERTUTIL, pem_files, certs.CERTUTIL_FIX)
        return []
    return list(pem_files)


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
                "peer_kind": "firefox",
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


def _become_subreaper() -> None:
    """Orphaned descendants (the content processes, once the browser exits) become the agent's
    children, so `stop_browser` reaps them instead of leaving them to init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("cannot become a child subreaper: %s", os.strerror(ctypes.get_errno()))


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = _parse_args(argv)
    if args.netns:
        netns.enter_for_good(args.netns)  # before the browser, a child, is started
    _become_subreaper()
    emit = EventWriter()
    configure_logging(args.log_level)
    try:
        return asyncio.run(_serve(args, emit, started))
    except SimnetError as exc:  # e.g. no browser: one line, how to fix it, in the agent's log
        log.error("%s", exc)
        return exc.exit_code
