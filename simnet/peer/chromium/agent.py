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
profile. All of that is every browser agent's (`simnet.peer.browser.agent`); here is what is
Chromium's: its launch (trusted keys and proxy as flags), its pages, its trust check.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from simnet.peer.browser import PAGE as BROWSER_PAGE
from simnet.peer.browser.agent import BrowserAgent, parser
from simnet.peer.browser.agent import main as agent_main
from simnet.peer.serve import EventWriter

if TYPE_CHECKING:
    from simnet.peer.chromium.browser import Browser, Page

log = logging.getLogger("simnet.peer.chromium.agent")

PAGE = BROWSER_PAGE  # the call page the browser peers share


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    found = parser("python -m simnet.peer.chromium", __doc__)
    found.add_argument("--chromium", help="the Chromium executable (default: Debian's)")
    return found.parse_args(argv)


class Agent(BrowserAgent["Browser", "Page"]):
    """A Chromium, its call page, and the commands served."""

    peer_kind = "chromium"
    log = log
    replacing = "open a new page"
    broken = "crashed"
    helpers = "browser helper(s)"

    def __init__(self, args: argparse.Namespace, emit: EventWriter) -> None:
        from simnet.peer.chromium import require_chromium

        self.binary = require_chromium(args.chromium)  # its message ends the agent's log
        super().__init__(args, emit)

    async def launch(self, while_starting: Callable[[], object]) -> Browser:
        """Chromium accepting the chains of `self.trust`'s keys, on the call page."""
        # the browser's modules load here, not at the agent's start (start-up cost)
        from simnet.peer.chromium.browser import Browser, spki_hashes

        spki = spki_hashes(self.trust) if self.trust else []
        return await Browser.launch(
            self.binary,
            self.profile,
            spki,
            PAGE.as_uri(),
            while_starting=while_starting,
            proxy=self.proxy,
        )

    async def first_page(self, browser: Browser) -> Page:
        return await browser.first_page(PAGE.as_uri())

    async def replace_page(self, browser: Browser) -> Page:
        """A new page; the broken one closed."""
        if self.page is not None:
            browser.forget(self.page)
            await self.page.close()
        return await browser.new_page(PAGE.as_uri())

    async def warm(self, browser: Browser, page: Page) -> None:
        await browser.close_other_pages(page)
        await super().warm(browser, page)

    def needs_relaunch(self, ca_file: Path, browser: Browser) -> bool:
        """The browser's list of trusted keys is fixed at launch (see browser.py)."""
        from simnet.peer.chromium.browser import spki_hashes  # loaded with the browser already

        return not set(spki_hashes([ca_file])) <= browser.spki


def main(argv: list[str] | None = None) -> int:
    return agent_main(argv, _parse_args, Agent, log)
