"""Firefox peers: a headless Firefox (Debian's firefox-esr; nICEr for ICE) in a host's namespace,
behind simnet's peer protocol, driven over WebDriver BiDi.

`agent_argv(ns, profile_dir)` is the command the controller hands `PeerAgent.start(run, ns,
argv=...)`; the agent (`simnet.peer.firefox.agent`) enters `ns` itself. `launch_argv` is the
kind's hook in the registry (`simnet.peerkinds`). This module imports nothing else of the
package and no browser code (what it shares with the other browser kinds is
`simnet.peer.browser.kind`, as light): the controller pays for none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simnet.peer.browser import kind as browser_kind
from simnet.peerkinds import Launch, PeerKindSpec, Requirement, kind

PEER_KIND: PeerKindSpec = kind("firefox")
REQUIREMENT: Requirement = browser_kind.requirement(PEER_KIND)
BINARY = Path(REQUIREMENT.binaries[0])  # Debian's `firefox-esr` package
INSTALL_FIX = REQUIREMENT.fix


def find_binary(explicit: str | None = None) -> Path | None:
    """The Firefox executable: `explicit`, else the registry's (`simnet.peerkinds`)."""
    return browser_kind.find_binary(REQUIREMENT, explicit)


def require_firefox(explicit: str | None = None) -> Path:
    """The Firefox executable, or an `EnvironmentProblem` that says how to get one."""
    return browser_kind.require_binary(REQUIREMENT, explicit, "Firefox", "firefox-esr")


def agent_argv(
    ns: str,
    profile_dir: Path,
    *,
    trust: Sequence[Path] = (),
    firefox: str | None = None,
    proxy: str | None = None,
) -> list[str]:
    """The command line of a Firefox peer agent living in namespace `ns`.

    `profile_dir`: the browser's profile, which the agent empties, fills and removes (put it in
    the run's work directory, so teardown and `simnet cleanup` remove it too). `trust`: PEM
    files (coturn's certificate) the profile trusts for TURN over TLS from the start; a call's
    `ca_file` it does not trust yet costs a browser relaunch before it. `firefox`: another
    executable than Debian's. `proxy`: the HTTP proxy (`http://[user:password@]address:port`)
    the browser sends its HTTP, WebSocket and TURN-over-TCP/TLS through, its address alone
    (`simnet.peer.firefox.prefs.proxy_prefs`; ICE's UDP is not kept to it).
    """
    options = {"--firefox": firefox, "--proxy": proxy}
    return browser_kind.agent_argv("simnet.peer.firefox", ns, profile_dir, trust, options)


def launch_argv(launch: Launch) -> list[str]:
    """The registry's hook: a Firefox peer with its profile in `launch.scratch`, trusting
    `launch.trust` from its start, going out through `launch.proxy` when given."""
    return agent_argv(launch.ns, launch.scratch, trust=launch.trust, proxy=launch.proxy)
