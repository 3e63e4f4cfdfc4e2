"""The registry of peer kinds: the one place that names the WebRTC stacks simnet can put in a host.

A host's `peer:` is a kind's name (`aiortc`, `chromium`) or `{command: ...}`, a program of the
user's own (the `external` kind). Everything else asks this registry instead of comparing names:
the scenario model (which names are valid, what a call may ask of a peer), the run (how to start
a peer, which peers can share a process, which ICE servers a peer is given), `simnet doctor`
(what to look for on this machine, and how to install it), the results (the default kind of
rows written before kinds existed, the package versions a row's environment records) and the
CLI (`--peers`).

This module is the declarative half, plain data and the standard library only, so the scenario
layer can import it (the model validates `hosts.NAME.peer` with it) without reaching
`simnet.peer`. A kind's runtime hooks (building its command line) are named by a dotted path,
`"module:function"`, and loaded by the run layer (`simnet.run.peers`) only when a peer of that
kind is started, as entry points are.

Adding a kind is one package under `simnet/peer/` (its agent, speaking the peer protocol, and
an argv hook) plus one entry in `KINDS` (and its name in `PeerKind` when a scenario names it by
a string).
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args


@dataclass(frozen=True)
class Capabilities:
    """What a kind's peer does, as far as simnet relies on it. For the `external` kind: what
    simnet assumes of a program it did not write (nothing it cannot check at run time)."""

    #: sends its ICE candidates as it gathers them (else all of them inside its description)
    trickle: bool
    #: restarts ICE when told to (`{"cmd": "ice-restart"}`); a peer without it answers
    #: `supported: false` and the call goes on
    ice_restart: bool
    #: uses every STUN and TURN URL it is given; one without it is given the first STUN server
    #: and one TURN server's URLs (each transport's, in order), and allocates on one at a time
    several_turn_urls: bool
    #: relays through TURN over TCP (`turn:...?transport=tcp`)
    turn_tcp: bool
    #: relays through TURN over TLS (`turns:`), trusting the call's `ca_file`
    turn_tls: bool
    #: relays over TLS to a `turns:` URL that is an IP address (not a host name)
    turn_tls_to_address: bool
    #: gathers and connects over IPv6, server URLs with IPv6 literals included
    ipv6: bool
    #: reaches TURN and signaling through an HTTP proxy
    http_proxy: bool
    #: many peers can live in one process (`simnet.peer.control.hosting`), each in its own
    #: namespace: a load run's peers share a process per core
    shared_process: bool
    #: plays a recorded RTP capture's packets as its audio (`call.media.coding: replay`)
    replayed_media: bool


@dataclass(frozen=True)
class Requirement:
    """What `simnet doctor` (and a run, before it builds anything) looks for on this machine."""

    #: the doctor's name for the check, e.g. "browser chromium"
    check: str
    #: the executable: the first of these that exists (a path, or a name looked up on PATH)
    binaries: tuple[str, ...]
    #: what it is called in an error ("Chromium browser")
    what: str
    #: how to get it
    fix: str
    #: the flag that makes the executable print its version, which the doctor shows (None:
    #: the doctor shows the path only)
    version_flag: str | None = None


@dataclass(frozen=True)
class Launch:
    """What a kind's argv hook is given to build the command line of one peer."""

    ns: str  # the host's namespace, which the agent enters itself
    scratch: Path  # a directory of the run's work directory this peer may own (e.g. a profile)
    trust: Sequence[Path] = ()  # PEM certificates to trust from the start (TURN over TLS)
    command: Sequence[str] = ()  # the scenario's `{command: ...}`, split (external kind only)
    #: the HTTP proxy the host's network lets out alone (`firewall.proxy_only`), as
    #: `http://address:port`; given only to kinds with `Capabilities.http_proxy`
    proxy: str | None = None


@dataclass(frozen=True)
class PeerKindSpec:
    """One kind of peer: how to start it, what it needs, how its version is found, what it does."""

    name: str  # the scenario's `peer:` value and the row's `offerer_peer` / `answerer_peer`
    title: str  # the stack, for people
    #: "module:function" taking a `Launch` and returning the peer's argv
    argv: str
    #: what the doctor checks (None: nothing beyond simnet's own dependencies)
    requirement: Requirement | None
    #: the Python distribution the peer runs, whose version a row's environment records as
    #: `<name>_version` (None: not a Python package of simnet's environment)
    package: str | None
    #: how the peer finds the version it reports (its ready event's `peer_version`)
    version: str
    capabilities: Capabilities
    #: "module" run with `python -m` to host many of these peers in one process, with one
    #: `--channel NS:IN:OUT` per peer (when `capabilities.shared_process`)
    hosted_module: str | None = None
    #: given in a scenario as `{command: ...}` rather than by name
    by_command: bool = False


#: The kinds a scenario (and `--peers`) names by a string.
PeerKind = Literal["aiortc", "chromium", "pion", "firefox"]
#: The peer kinds of a call's two sides: the offerer's (side A) and the answerer's (side B).
PeerPair = tuple[PeerKind, PeerKind]

CHROMIUM_FIX = "run ./setup.sh (or: apt-get install chromium); simnet never downloads a browser"

KINDS: dict[str, PeerKindSpec] = {
    spec.name: spec
    for spec in (
        PeerKindSpec(
            name="aiortc",
            title="aiortc (Python)",
            argv="simnet.peer.aiortc:agent_argv",
            requirement=None,  # a dependency of simnet itself
            package="aiortc",
            version="the installed aiortc package's version (importlib.metadata)",
            capabilities=Capabilities(
                trickle=False,  # aiortc gathers every candidate in setLocalDescription
                ice_restart=False,  # no RTCPeerConnection.restartIce (simnet.peer.aiortc.agent)
                # one TURN URL at a time: the first its parser accepts, then the next
                # transport's while none gave a relay candidate (aioice_adapter)
                several_turn_urls=False,
                turn_tcp=True,
                turn_tls=True,
                turn_tls_to_address=True,
                ipv6=True,  # gathers IPv6; simnet parses IPv6 URL literals for it (aioice cannot)
                # signaling and TURN over TCP/TLS through CONNECT (simnet.peer.aiortc.http_proxy)
                http_proxy=True,
                shared_process=True,  # simnet.peer.aiortc.host
                replayed_media=True,  # simnet.peer.aiortc.media
            ),
            hosted_module="simnet.peer.aiortc.host",
        ),
        PeerKindSpec(
            name="chromium",
            title="Chromium",  # headless, i.e. libwebrtc
            argv="simnet.peer.chromium:launch_argv",
            requirement=Requirement(
                check="browser chromium",
                # Debian's binary before its /usr/bin/chromium wrapper, which exports Debian's
                # Google API keys and loads system extensions: neither belongs in a measured peer
                binaries=("/usr/lib/chromium/chromium", "chromium"),
                what="Chromium browser",
                fix=CHROMIUM_FIX,
            ),
            package=None,
            version="the browser's own (DevTools Browser.getVersion), e.g. Chromium 131.0...",
            capabilities=Capabilities(
                trickle=True,
                ice_restart=True,  # page.js: simnetIceRestart
                several_turn_urls=True,
                turn_tcp=True,
                turn_tls=True,
                turn_tls_to_address=True,
                ipv6=True,
                http_proxy=True,  # --proxy-server (simnet.peer.chromium.browser.flags)
                shared_process=False,  # a browser per peer
                replayed_media=False,
            ),
        ),
        PeerKindSpec(
            name="external",
            title="a program of the user's own that speaks the peer protocol",
            argv="simnet.peer.external:agent_argv",
            requirement=None,  # the scenario names the program; a run checks it is there
            package=None,
            version="whatever the program reports in its ready event",
            capabilities=Capabilities(
                trickle=False,
                ice_restart=False,  # it may still answer supported: true
                several_turn_urls=True,  # it is given every URL, as a browser is
                turn_tcp=True,
                turn_tls=True,
                turn_tls_to_address=True,
                ipv6=False,
                http_proxy=False,
                shared_process=False,
                replayed_media=False,
            ),
            by_command=True,
        ),
        PeerKindSpec(
            name="pion",
            title="pion (Go)",  # pion/webrtc v3 from Debian's Go packages
            argv="simnet.peer.pion:launch_argv",
            requirement=Requirement(
                check="pion agent",
                # the agent built by setup.sh, else the Go toolchain that builds it on first use
                binaries=(
                    str(Path(__file__).resolve().parent.parent / ".build" / "pion" / "simnet-pion"),
                    "go",
                ),
                what="pion agent (or the Go toolchain to build it)",
                fix="run ./setup.sh (it installs golang-go and golang-github-pion-webrtc.v3-dev "
                "and builds the agent offline)",
            ),
            package=None,
            version="Debian's pion/webrtc package version, built into the agent, e.g. 3.1.56",
            capabilities=Capabilities(
                trickle=True,
                ice_restart=True,  # simnet/peer/pion/agent/restart.go
                several_turn_urls=True,  # pion allocates on every TURN URL it is given
                turn_tcp=True,
                turn_tls=True,  # trusting the call's ca_file through SSL_CERT_FILE (trust.go)
                turn_tls_to_address=True,
                ipv6=True,  # host and srflx over UDP/IPv6; its TURN client speaks IPv4 only
                # TURN over TCP and signaling through CONNECT (agent/proxy.go), not TURN/TLS
                http_proxy=True,
                shared_process=False,  # a process per peer (a Go process is ~10 MB)
                replayed_media=True,  # audio only, always replayed: pion has no Opus encoder
            ),
        ),
        PeerKindSpec(
            name="firefox",
            title="Firefox",  # headless firefox-esr: Firefox's WebRTC, nICEr for ICE
            argv="simnet.peer.firefox:launch_argv",
            requirement=Requirement(
                check="browser firefox",
                binaries=("/usr/bin/firefox-esr", "firefox-esr", "firefox"),
                what="Firefox browser",
                fix="run ./setup.sh (or: apt-get install firefox-esr); simnet never downloads "
                "a browser",
                version_flag="--version",
            ),
            package=None,
            version="the browser's own (WebDriver BiDi session.new's browserVersion), e.g. "
            "Firefox 153.8.0",
            capabilities=Capabilities(
                trickle=True,
                ice_restart=True,  # the shared page's simnetIceRestart; test_firefox_peer.py
                several_turn_urls=True,
                turn_tcp=True,  # tests/integration/test_firefox_peer.py
                # the profile's NSS database trusts the call's CA (simnet.peer.firefox.certs);
                # nICEr tries TLS only to a host name: `call.ice_urls: names` (test_firefox_peer)
                turn_tls=True,
                turn_tls_to_address=False,  # nICEr tries TLS only to a host name (above)
                ipv6=True,  # dual-stack homes: IPv6 candidates, a direct IPv6 pair (tested)
                http_proxy=True,  # its profile's proxy prefs (simnet.peer.firefox.prefs)
                shared_process=False,  # a browser per peer
                replayed_media=False,
            ),
        ),
    )
}

#: The kind of a host that names none, and of rows written before kinds existed.
DEFAULT_KIND: PeerKind = "aiortc"
DEFAULT_PAIR: PeerPair = (DEFAULT_KIND, DEFAULT_KIND)
#: The kinds named by a string (`peer: NAME`, `--peers NAME`), in the registry's order.
NAMED_KINDS: tuple[str, ...] = get_args(PeerKind)
#: The kind of a `{command: ...}` peer.
EXTERNAL_KIND: str = next(spec.name for spec in KINDS.values() if spec.by_command)


def kind(name: str) -> PeerKindSpec:
    """The registry's entry for `name`; KeyError for a name it does not know."""
    return KINDS[name]


def find_program(binaries: Sequence[str]) -> Path | None:
    """The first of `binaries` that is an executable: a path as given, a name on PATH."""
    for binary in binaries:
        if os.sep in binary:
            path = Path(binary)
            if path.is_file() and os.access(path, os.X_OK):
                return path
        else:
            found = shutil.which(binary)
            if found:
                return Path(found)
    return None


def hook(dotted: str) -> Callable[..., Any]:
    """The function a `"module:function"` path names, its module imported now: a kind's runtime
    code is loaded only when a peer of that kind is started."""
    module, _, function = dotted.partition(":")
    loaded: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return loaded


def agent_argv(spec: PeerKindSpec, launch: Launch) -> list[str]:
    """The command line of one peer of kind `spec` (its `argv` hook, loaded now)."""
    argv: list[str] = hook(spec.argv)(launch)
    return argv
