"""The headless Firefox one agent drives: launched, watched, given its page, closed.

Launch: Debian's `firefox-esr`, headless, on a fresh profile directory (the agent's: emptied,
then given the `user.js` of `simnet.peer.firefox.prefs`), with `--remote-debugging-port=0`: the
kernel picks the port of the Remote Agent, which says "WebDriver BiDi listening on ws://..." on
stderr; that line is the readiness event (no sleep, no polling). `--no-remote` keeps it from
handing its work to another Firefox. The rest of its stderr goes to the agent's log.

Its per-user directories ($HOME, caches) are inside the profile, so nothing of a run is written
elsewhere. The browser is the agent's child in its process group, carries the run's environment
tag, and gets SIGKILL if the agent dies (`PR_SET_PDEATHSIG`); its content processes, orphaned
when it exits, come back to the agent (its subreaper) to be reaped
(`simnet.peer.browser.processes`).

The page's events: a preload script, installed before the page loads, gives the page
`window.simnetEvent(payload)` as a BiDi channel; each call is a `script.message` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simnet.peer.browser.launch import BrowserError as BrowserError
from simnet.peer.browser.launch import BrowserProcess
from simnet.peer.browser.processes import fresh_profile
from simnet.peer.firefox.bidi import (
    BidiClosed,
    BidiConnection,
    BidiError,
    JsonObject,
    evaluated,
    plain,
    session_url,
)
from simnet.peer.firefox.certs import TrustError, trust_in_profile
from simnet.peer.firefox.prefs import PREFS, proxy_prefs, user_js

log = logging.getLogger("simnet.peer.firefox.browser")

PAGE_TIMEOUT_S = 15.0  # the call page loaded from file://
LISTENING_LINE = re.compile(r"WebDriver BiDi listening on (ws://\S+)")
CHANNEL = "simnetEvent"
#: the preload script: the page's `simnetEvent(payload)` is a BiDi channel to the agent
PRELOAD = "(channel) => { window.simnetEvent = (payload) => channel(String(payload)); }"
#: the BiDi events the agent reads
EVENTS = ("script.message", "log.entryAdded", "browsingContext.contextDestroyed")
# Lines of the browser's stderr that say only that this machine has no desktop or GPU
LOG_NOISE = ("[GFX1-]", "RenderCompositorSWGL", "Sandbox: ")


def flags(profile: Path) -> list[str]:
    """The command-line flags of an agent's browser (see the module docstring)."""
    return [
        "--headless",
        "--no-remote",
        "--profile",
        str(profile),
        "--remote-debugging-port=0",
        "about:blank",
    ]


def write_profile(profile: Path, trust: Sequence[Path] = (), proxy: str | None = None) -> None:
    """A fresh profile at `profile`: emptied, with its `user.js` (the HTTP proxy `proxy`, when
    given, for everything: `prefs.proxy_prefs`), per-user directories, and an NSS database
    trusting `trust` (PEM files) for TLS servers (`simnet.peer.firefox.certs`)."""
    fresh_profile(profile)
    prefs = PREFS if proxy is None else {**PREFS, **proxy_prefs(proxy)}
    (profile / "user.js").write_text(user_js(prefs))
    for sub in ("home", "xdg-cache", "xdg-config"):
        (profile / sub).mkdir()
    try:
        trust_in_profile(profile, trust)
    except (TrustError, OSError, subprocess.SubprocessError) as exc:
        raise BrowserError(f"cannot trust the call's certificates in {profile}: {exc}") from exc


def browser_env(profile: Path) -> dict[str, str]:
    """The agent's environment (the run's tag included), its per-user directories inside the
    profile, headless, no crash reporter (a crashed page is the agent's to report), and the
    profile's remote-settings server honoured."""
    return {
        **os.environ,
        "HOME": str(profile / "home"),
        "XDG_CACHE_HOME": str(profile / "xdg-cache"),
        "XDG_CONFIG_HOME": str(profile / "xdg-config"),
        "MOZ_HEADLESS": "1",
        "MOZ_CRASHREPORTER_DISABLE": "1",
        "MOZ_CRASHREPORTER": "0",
        # a release build honours `services.settings.server` (prefs.py: no remote settings)
        # only with this set; without it, it looked up firefox.settings.services.mozilla.com
        "MOZ_REMOTE_SETTINGS_DEVTOOLS": "1",
    }


class Page:
    """The browser's one page (a top-level browsing context): a
    `simnet.peer.browser.driver.CallPage`."""

    #: what a command raises when the page or the browser is gone
    failures: tuple[type[Exception], ...] = (BidiClosed, BidiError)

    def __init__(self, browser: Browser, context: str) -> None:
        self.browser = browser
        self.context = context
        self.sink: Callable[[str], None] | None = None
        loop = asyncio.get_running_loop()
        self.destroyed: asyncio.Future[str] = loop.create_future()

    def on_event(self, method: str, params: JsonObject) -> None:
        source = params.get("source") or {}
        if method == "script.message" and params.get("channel") == CHANNEL:
            if source.get("context") == self.context and self.sink is not None:
                self.sink(str(plain(params.get("data") or {})))
        elif method == "log.entryAdded":
            text = params.get("text")
            level = params.get("level")
            if params.get("type") == "javascript":
                log.warning("page exception: %s", text)
            else:
                log.info("page console.%s: %s", level, text)
        elif (
            method == "browsingContext.contextDestroyed"
            and params.get("context") == self.context
            and not self.destroyed.done()
        ):
            self.destroyed.set_result("the page was closed")

    async def evaluate(
        self, expression: str, *, await_promise: bool = False, timeout_s: float = 10.0
    ) -> Any:
        """The value of `expression` in the page; a thrown exception is a `ScriptError`."""
        params = {
            "expression": expression,
            "target": {"context": self.context},
            "awaitPromise": await_promise,
            "resultOwnership": "none",
        }
        result = await self.browser.bidi.send("script.evaluate", params, timeout_s=timeout_s)
        return evaluated("script.evaluate", result)

    async def gone(self) -> str:
        """Returns (a reason) when the page closes, the connection ends or the browser exits."""
        return await self.browser.gone(self.destroyed)


class Browser(BrowserProcess):
    """A running headless Firefox and the BiDi session to it."""

    ready_line = LISTENING_LINE
    address_name = "WebDriver BiDi address"
    exited_early = "the browser exited before its Remote Agent listened"
    log_prefix = "firefox"
    log_noise = LOG_NOISE
    log = log
    close_method = "browser.close"

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        bidi: BidiConnection,
        version: str,
        stderr_task: asyncio.Task[None],
    ) -> None:
        super().__init__(process, bidi, version, stderr_task)  # "Firefox 153.8.0esr"
        self.bidi = bidi
        self.page: Page | None = None
        bidi.listen(self._dispatch)

    @classmethod
    async def launch(
        cls,
        binary: Path,
        profile: Path,
        trust: Sequence[Path] = (),
        while_starting: Callable[[], object] | None = None,
        proxy: str | None = None,
    ) -> Browser:
        """Start the browser on a fresh profile (trusting `trust`, going out through `proxy`
        when given) and open a BiDi session to it. `while_starting` runs right after the spawn,
        while the browser starts (the agent's own imports)."""
        write_profile(profile, trust, proxy)
        spawned = await cls.spawn(binary, flags(profile), browser_env(profile), while_starting)
        try:
            bidi = await BidiConnection.connect(session_url(spawned.address))
            session = await bidi.send("session.new", {"capabilities": {}})
            await bidi.send("session.subscribe", {"events": list(EVENTS)})
        except BaseException:
            await spawned.abandon()
            raise
        capabilities = session.get("capabilities") or {}
        version = f"Firefox {capabilities.get('browserVersion', '?')}"
        browser = cls(spawned.process, bidi, version, spawned.stderr_task)
        browser.start_s = time.monotonic() - spawned.spawned
        return browser

    def _dispatch(self, method: str, params: JsonObject, _session_id: str | None) -> None:
        if self.page is not None:
            self.page.on_event(method, params)

    async def open_page(self, url: str) -> Page:
        """The browser's first tab, at `url` (loaded), with `simnetEvent` installed before any
        of its scripts runs; every other tab is closed."""
        await self.bidi.send(
            "script.addPreloadScript",
            {
                "functionDeclaration": PRELOAD,
                "arguments": [{"type": "channel", "value": {"channel": CHANNEL}}],
            },
        )
        tree = await self.bidi.send("browsingContext.getTree", {"maxDepth": 0})
        contexts = [str(c["context"]) for c in tree.get("contexts") or [] if "context" in c]
        if not contexts:
            created = await self.bidi.send("browsingContext.create", {"type": "tab"})
            contexts = [str(created["context"])]
        for other in contexts[1:]:
            with contextlib.suppress(BidiError):
                await self.bidi.send("browsingContext.close", {"context": other})
        page = self.page = Page(self, contexts[0])
        await self.bidi.send(
            "browsingContext.navigate",
            {"context": page.context, "url": url, "wait": "complete"},
            timeout_s=PAGE_TIMEOUT_S,
        )
        if not await page.evaluate("typeof simnetCall === 'function' && !!window.simnetEvent"):
            raise BrowserError(f"the call page {url} did not load its script")
        return page

    async def reload_page(self, url: str) -> Page:
        """The page loaded anew (after a call that broke it)."""
        assert self.page is not None
        await self.bidi.send(
            "browsingContext.navigate",
            {"context": self.page.context, "url": url, "wait": "complete"},
            timeout_s=PAGE_TIMEOUT_S,
        )
        return self.page
