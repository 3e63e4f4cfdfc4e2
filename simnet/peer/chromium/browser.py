"""The headless Chromium one agent drives: launched, watched, given pages, closed.

Launch: Debian's binary (`/usr/lib/chromium/chromium`; `/usr/bin/chromium` is a shell wrapper
that exports Debian's Google API keys and loads system extensions, neither wanted here), headless,
with the profile directory it is given (fresh: the agent wipes it first), and flags for a quiet,
deterministic browser that talks to nobody but the call: no first run, no component updates,
sync, safe browsing, metrics or background networking; fake media devices and no permission
prompt; real host candidates instead of mDNS names. `--remote-debugging-port=0` lets the kernel
pick the DevTools port; the browser announces it on stderr ("DevTools listening on ws://..."), and
that line is the readiness event (no sleep, no polling). The rest of its stderr is copied to the
agent's log.

The browser is a child of the agent in the agent's process group (so killing the group, as a
run's teardown does, kills it), carries the run's environment tag (so `simnet cleanup` finds it
and its children), and gets SIGKILL from the kernel if the agent dies first
(`PR_SET_PDEATHSIG`): an agent killed with -9 never leaves a browser behind.

The browser's own helpers (zygotes, renderers, the GPU and utility processes) outlive it by a
moment when it exits, and would be handed to init, which may reap them late or never: they
stayed `<defunct>` after every call. So the agent is a child subreaper
(`PR_SET_CHILD_SUBREAPER`, set in `agent.main`): they are handed to the agent instead, and
`reap_orphans` (`simnet.peer.browser.processes`) waits for each of them (a pidfd says when
it exits: no polling), killing what has not exited within CLOSE_TIMEOUT_S, whenever a browser
is closed.

TURN over TLS: coturn's certificate is signed by the run's own CA, which coturn sends after it.
Chromium has no per-connection trust setting; it is told to accept exactly the chains that carry
a public key the call trusts (`--ignore-certificate-errors-spki-list`, honoured because a
`--user-data-dir` is given; the CA's key, in the chain coturn sends): every other certificate is
still verified. The list is fixed at launch, so the agent relaunches
the browser (before a call starts, off its clock) when a call trusts a key the browser does not.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simnet.aio import within
from simnet.peer.browser.launch import BrowserError as BrowserError
from simnet.peer.browser.launch import BrowserProcess
from simnet.peer.browser.processes import CLOSE_TIMEOUT_S, fresh_profile
from simnet.peer.chromium.cdp import CdpClosed, CdpConnection, CdpError, Result
from simnet.peer.chromium.cdp_types import (
    AttachedTarget,
    BindingCalled,
    BrowserVersion,
    ConsoleCalled,
    CreatedTarget,
    Evaluated,
    ExceptionThrown,
    JsonObject,
    Navigated,
    TargetEvent,
    Targets,
)

log = logging.getLogger("simnet.peer.chromium.browser")

PAGE_TIMEOUT_S = 15.0  # a new page loaded from file://
DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")
BINDING = "simnetEvent"
# The fake camera's rate (Chromium's default is 20): a call asks for at most this many frames
# per second of video; VideoSpec allows 60, which a Chromium peer sends at 30.
FAKE_CAMERA_FPS = 30
# Browser log lines that say only that this machine has no desktop (no D-Bus, no UPower)
LOG_NOISE = ("ERROR:dbus/",)

# Off: everything that would make the browser talk to a server of its own, or change what it
# does between runs. (WebRtcHideLocalIpsWithMdns: host candidates carry real addresses.)
DISABLED_FEATURES = (
    "WebRtcHideLocalIpsWithMdns",
    "Translate",
    "MediaRouter",
    "DialMediaRouteProvider",
    "OptimizationHints",
    "AutofillServerCommunication",
    "CertificateTransparencyComponentUpdater",
    "InterestFeedContentSuggestions",
    "PrivacySandboxSettings4",
)


# Even with all the flags below, Chromium 156 looks up clients2.google.com,
# update.googleapis.com and accounts.google.com at start (measured: 15 DNS queries in its first
# 3 s). So no host name resolves but the emulated internet's, and not one packet leaves the host
# but the call's. The rule applies to address literals too, so those are excluded: a literal
# starts with a digit (IPv4) or holds a colon (IPv6), a name of these services with a letter.
# Names in the emulated internet's zone (`<server>.simnet.test`, `call.ice_urls: names`) are
# resolved as the host resolves them: the agent runs under `ip netns exec`, which puts the
# namespace's resolv.conf (its network's resolver, DNS64 on a NAT64 carrier) in its place.
# Both spellings are excluded: Chromium's P2P resolver, which looks up the servers of UDP
# STUN/TURN URLs, asks for the fully-qualified name with a trailing dot (`turn.simnet.test.`),
# which `*.simnet.test` does not match (measured: every UDP TURN URL by name failed with 701
# "TURN host lookup received error" while TCP and TLS ones, looked up without the dot, worked).
EMULATED_ZONE = "simnet.test"  # simnet.services.dns.ZONE (not imported: agent start-up cost)
HOST_RESOLVER_RULES = ", ".join(
    [
        "MAP * ~NOTFOUND",
        *(f"EXCLUDE {digit}*" for digit in "0123456789"),
        "EXCLUDE *:*",
        f"EXCLUDE *.{EMULATED_ZONE}",
        f"EXCLUDE *.{EMULATED_ZONE}.",
    ]
)


def spki_hashes(pem_files: Sequence[str | Path]) -> list[str]:
    """base64(SHA-256(SubjectPublicKeyInfo)) of every certificate in the PEM files: the form
    `--ignore-certificate-errors-spki-list` takes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    hashes = []
    for path in pem_files:
        for cert in x509.load_pem_x509_certificates(Path(path).read_bytes()):
            spki = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            hashes.append(base64.b64encode(hashlib.sha256(spki).digest()).decode())
    return sorted(set(hashes))


def policy_preference(profile: Path) -> None:
    """The WebRTC IP handling policy `disable_non_proxied_udp` as the profile's own preference
    (`webrtc.ip_handling_policy`, what the WebRtcIPHandling enterprise policy and privacy
    extensions set): the command-line switch alone left UDP on (a capture showed STUN and
    connectivity checks over UDP leaving the host)."""
    default = profile / "Default"
    default.mkdir(parents=True, exist_ok=True)
    preferences = {"webrtc": {"ip_handling_policy": "disable_non_proxied_udp"}}
    (default / "Preferences").write_text(json.dumps(preferences))


def flags(
    profile: Path, spki: Sequence[str] = (), url: str = "about:blank", proxy: str | None = None
) -> list[str]:
    """The command-line flags of an agent's browser (see the module docstring)."""
    argv = [
        "--headless",
        "--no-sandbox",  # root in a namespace: the sandbox needs user namespaces of its own
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        f"--use-fake-device-for-media-stream=fps={FAKE_CAMERA_FPS}",
        "--use-fake-ui-for-media-stream",
        f"--disable-features={','.join(DISABLED_FEATURES)}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-pings",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-breakpad",
        "--metrics-recording-only",
        "--password-store=basic",
        "--disable-gpu",
        # a hidden page must not be throttled: it is the only page, and it runs a call
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
        "--log-level=2",
        f"--host-resolver-rules={HOST_RESOLVER_RULES}",
    ]
    if spki:
        argv.append(f"--ignore-certificate-errors-spki-list={','.join(spki)}")
    if proxy is not None:
        # Everything through the proxy, WebRTC's TCP (TURN over TCP/TLS) included; UDP is kept
        # off by the profile's policy preference (`policy_preference`). The address alone:
        # headless, Chromium answers no 407 with credentials (docs/guides/proxy.md#peers).
        parts = urlsplit(proxy)
        argv.append(f"--proxy-server={parts.scheme}://{parts.netloc.rpartition('@')[2]}")
    argv.append(url)  # the first page: the call page itself, loading while DevTools connects
    return argv


def browser_env(profile: Path) -> dict[str, str]:
    """The agent's environment (the run's tag included), with the browser's per-user
    directories inside its profile: its crash handler's database (`Crash Reports`, which a
    crashed page writes to) and caches then go where the profile goes, not to $HOME."""
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(profile / "xdg-config"),
        "XDG_CACHE_HOME": str(profile / "xdg-cache"),
    }


class Page:
    """One page target, attached through a flat session; events of its binding go to `sink`.
    A `simnet.peer.browser.driver.CallPage`."""

    #: what a command raises when the page or the browser is gone
    failures: tuple[type[Exception], ...] = (CdpClosed, CdpError)

    def __init__(self, browser: Browser, target_id: str, session_id: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id
        loop = asyncio.get_running_loop()
        self.crashed: asyncio.Future[str] = loop.create_future()
        self.loaded = asyncio.Event()
        self.sink: Callable[[str], None] | None = None

    def on_event(self, method: str, params: JsonObject, session_id: str | None) -> None:
        if method == "Target.targetCrashed":
            crashed = TargetEvent.model_validate(params)
            if crashed.target_id == self.target_id:
                self._crash(f"the page's renderer crashed ({crashed.status})")
        elif (
            method == "Target.detachedFromTarget"
            and TargetEvent.model_validate(params).session_id == self.session_id
        ):
            self._crash("the page's DevTools session ended")
        if session_id != self.session_id:
            return
        if method == "Runtime.bindingCalled":
            called = BindingCalled.model_validate(params)
            if called.name == BINDING and self.sink is not None:
                self.sink(called.payload)
        elif method == "Inspector.targetCrashed":
            self._crash("the page's renderer crashed")
        elif method == "Page.loadEventFired":
            self.loaded.set()
        elif method == "Runtime.exceptionThrown":
            thrown = ExceptionThrown.model_validate(params)
            log.warning("page exception: %s", thrown.exception_details.shown)
        elif method == "Runtime.consoleAPICalled":
            console = ConsoleCalled.model_validate(params)
            args = " ".join(
                str(a.value if a.value is not None else a.description or "") for a in console.args
            )
            log.info("page console.%s: %s", console.type, args)

    def _crash(self, reason: str) -> None:
        if not self.crashed.done():
            self.crashed.set_result(reason)

    async def send(
        self, method: str, params: JsonObject | None = None, timeout_s: float = 10.0
    ) -> JsonObject:
        return await self.browser.cdp.send(
            method, params, session_id=self.session_id, timeout_s=timeout_s
        )

    async def call(
        self, method: str, result: type[Result], params: JsonObject | None = None
    ) -> Result:
        """`send`, its answer read as `result`."""
        return await self.browser.cdp.call(method, result, params, session_id=self.session_id)

    async def evaluate(
        self, expression: str, *, await_promise: bool = False, timeout_s: float = 10.0
    ) -> Any:
        """The value of `expression` in the page (JSON-serialisable); a thrown exception is a
        `BrowserError`."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
            timeout_s,
        )
        evaluated = Evaluated.model_validate(answer)
        if evaluated.exception_details is not None:
            raise BrowserError(f"page script failed: {evaluated.exception_details.shown}")
        return evaluated.result.value

    async def gone(self) -> str:
        """Returns (a reason) when the page's renderer crashes or the browser goes away."""
        return await self.browser.gone(self.crashed)

    async def close(self) -> None:
        with contextlib.suppress(CdpError, CdpClosed, TimeoutError):
            await self.browser.cdp.send(
                "Target.closeTarget", {"targetId": self.target_id}, timeout_s=CLOSE_TIMEOUT_S
            )


class Browser(BrowserProcess):
    """A running headless Chromium and the DevTools connection to it."""

    ready_line = DEVTOOLS_LINE
    address_name = "DevTools address"
    exited_early = "the browser exited before it opened DevTools"
    log_prefix = "chromium"
    log_noise = LOG_NOISE
    log = log
    close_method = "Browser.close"

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        cdp: CdpConnection,
        version: str,
        spki: Sequence[str],
        stderr_task: asyncio.Task[None],
    ) -> None:
        super().__init__(process, cdp, version, stderr_task)  # "Chromium 156.0.8078.108"
        self.cdp = cdp
        self.spki = frozenset(spki)
        self._pages: list[Page] = []
        cdp.listen(self._dispatch)

    @classmethod
    async def launch(
        cls,
        binary: Path,
        profile: Path,
        spki: Sequence[str] = (),
        url: str = "about:blank",
        while_starting: Callable[[], object] | None = None,
        proxy: str | None = None,
    ) -> Browser:
        """Start the browser with one page at `url` and connect to it; returns once DevTools
        answers. `while_starting` runs right after the spawn, while the browser starts (the
        agent's own imports: two cores do both at once)."""
        fresh_profile(profile)
        if proxy is not None:
            policy_preference(profile)
        spawned = await cls.spawn(
            binary, flags(profile, spki, url, proxy), browser_env(profile), while_starting
        )
        try:
            cdp = await CdpConnection.connect(spawned.address)
            version = await cdp.call("Browser.getVersion", BrowserVersion)
            await cdp.send("Target.setDiscoverTargets", {"discover": True})
        except BaseException:
            await spawned.abandon()
            raise
        # "Chrome/156.0.8078.108" even for Chromium: the binary says which it is
        number = version.product.rpartition("/")[2]
        name = "Chromium" if "chromium" in binary.name.lower() else "Chrome"
        browser = cls(spawned.process, cdp, f"{name} {number}", spki, spawned.stderr_task)
        browser.start_s = time.monotonic() - spawned.spawned
        return browser

    def _dispatch(self, method: str, params: JsonObject, session_id: str | None) -> None:
        for page in list(self._pages):
            page.on_event(method, params, session_id)

    async def first_page(self, url: str) -> Page:
        """The page the browser was started with (at `url`), once it has loaded; a new page if
        the browser shows no such page."""
        targets = await self.cdp.call("Target.getTargets", Targets)
        for info in targets.target_infos:
            if info.type == "page" and info.url == url:
                page = await self._attach(info.target_id)
                try:
                    await within(_loaded(page, url), PAGE_TIMEOUT_S)
                except BaseException:
                    await self._drop(page)
                    raise
                return page
        return await self.new_page(url)

    async def new_page(self, url: str) -> Page:
        """A new page at `url`, with the event binding installed before its scripts run."""
        created = await self.cdp.call("Target.createTarget", CreatedTarget, {"url": "about:blank"})
        page = await self._attach(created.target_id)
        try:
            page.loaded.clear()
            navigated = await page.call("Page.navigate", Navigated, {"url": url})
            if navigated.error_text:
                raise BrowserError(f"cannot load {url}: {navigated.error_text}")
            await within(page.loaded.wait(), PAGE_TIMEOUT_S)
        except BaseException:
            await self._drop(page)
            raise
        return page

    async def _attach(self, target_id: str) -> Page:
        """A flat session on target `target_id`, its domains on and the event binding in."""
        attached = await self.cdp.call(
            "Target.attachToTarget", AttachedTarget, {"targetId": target_id, "flatten": True}
        )
        page = Page(self, target_id, attached.session_id)
        self._pages.append(page)
        try:
            for method in ("Runtime.enable", "Page.enable", "Inspector.enable"):
                await page.send(method)
            await page.send("Runtime.addBinding", {"name": BINDING})
        except BaseException:
            await self._drop(page)
            raise
        return page

    async def _drop(self, page: Page) -> None:
        self.forget(page)
        await page.close()

    def forget(self, page: Page) -> None:
        if page in self._pages:
            self._pages.remove(page)

    async def close_other_pages(self, keep: Page) -> None:
        """Close every other page (one renderer less each)."""
        targets = await self.cdp.call("Target.getTargets", Targets)
        for info in targets.target_infos:
            if info.type == "page" and info.target_id != keep.target_id:
                with contextlib.suppress(CdpError):
                    await self.cdp.send("Target.closeTarget", {"targetId": info.target_id})


async def _loaded(page: Page, url: str) -> None:
    """Until `page` shows `url` fully loaded. The target may still hold its first, empty
    document when it is attached; the binding reaches every later context of the page too."""
    check = (
        f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        " && typeof simnetCall === 'function'"
    )
    while True:
        page.loaded.clear()  # a load after this line sets it again: no event is lost
        if await page.evaluate(check):
            return
        await page.loaded.wait()
