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
Chromium's). All of that is every browser agent's (`simnet.peer.browser.agent`); here is what is
Firefox's: its launch (on a profile trusting the PEM files), its one page, its trust check.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from simnet.peer.browser import PAGE
from simnet.peer.browser.agent import BrowserAgent, parser
from simnet.peer.browser.agent import main as agent_main
from simnet.peer.firefox import certs
from simnet.peer.serve import EventWriter

if TYPE_CHECKING:
    from simnet.peer.firefox.browser import Browser, Page

log = logging.getLogger("simnet.peer.firefox.agent")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    found = parser("python -m simnet.peer.firefox", __doc__)
    found.add_argument("--firefox", help="the Firefox executable (default: Debian's)")
    return found.parse_args(argv)


class Agent(BrowserAgent["Browser", "Page"]):
    """A Firefox, its call page, and the commands served."""

    peer_kind = "firefox"
    log = log
    warm_timeout_s = 30.0
    replacing = "reload the page"

    def __init__(self, args: argparse.Namespace, emit: EventWriter) -> None:
        from simnet.peer.firefox import require_firefox

        self.binary = require_firefox(args.firefox)  # its message ends the agent's log
        super().__init__(args, emit)
        self.trust = _trustable(self.trust)

    async def launch(self, while_starting: Callable[[], object]) -> Browser:
        """Firefox on a fresh profile trusting `self.trust`, its proxy `self.proxy` if any."""
        # the browser's modules load here, not at the agent's start (start-up cost)
        from simnet.peer.firefox.browser import Browser

        return await Browser.launch(
            self.binary, self.profile, self.trust, while_starting=while_starting, proxy=self.proxy
        )

    async def first_page(self, browser: Browser) -> Page:
        return await browser.open_page(PAGE.as_uri())

    def can_replace_page(self, browser: Browser) -> bool:
        return browser.page is not None

    async def replace_page(self, browser: Browser) -> Page:
        """The page reloaded."""
        return await browser.reload_page(PAGE.as_uri())

    def needs_relaunch(self, ca_file: Path, browser: Browser) -> bool:
        """The NSS database is written before the browser starts (`certs`): a file the profile
        does not trust yet takes a fresh profile, unless nothing can be trusted."""
        return ca_file not in self.trust and bool(_trustable([ca_file]))


def _trustable(pem_files: list[Path]) -> list[Path]:
    """`pem_files`, or none when NSS's certutil is missing: the browser then starts trusting
    nothing extra (a call over TURN/TLS fails, as its TURN attempts say; UDP and TCP work), and
    the log says how to get it (`simnet doctor` checks it too)."""
    if pem_files and certs.certutil() is None:
        log.warning("no %s: not trusting %s (%s)", certs.CERTUTIL, pem_files, certs.CERTUTIL_FIX)
        return []
    return list(pem_files)


def main(argv: list[str] | None = None) -> int:
    return agent_main(argv, _parse_args, Agent, log)
