"""Chromium (libwebrtc) peers: a headless Chromium in a host's namespace, behind simnet's peer
protocol, so the controller drives it exactly like the aiortc agent.

`agent_argv(ns, profile_dir)` is the command the controller hands `PeerAgent.start(run, ns,
argv=...)`; the agent (`simnet.peer.chromium.agent`) enters `ns` itself. `launch_argv` is the
kind's hook in the registry (`simnet.peerkinds`). This module imports nothing else of the
package and no browser code (what it shares with the other browser kinds is
`simnet.peer.browser.kind`, as light): the controller pays for none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simnet.peer.browser import kind as browser_kind
from simnet.peerkinds import Launch, PeerKindSpec, Requirement, kind

PEER_KIND: PeerKindSpec = kind("chromium")
REQUIREMENT: Requirement = browser_kind.requirement(PEER_KIND)
BINARY = Path(REQUIREMENT.binaries[0])  # Debian's `chromium` package
INSTALL_FIX = REQUIREMENT.fix


def find_binary(explicit: str | None = None) -> Path | None:
    """The Chromium executable: `explicit`, else the registry's (`simnet.peerkinds`)."""
    return browser_kind.find_binary(REQUIREMENT, explicit)


def require_chromium(explicit: str | None = None) -> Path:
    """The Chromium executable, or an `EnvironmentProblem` that says how to get one."""
    return browser_kind.require_binary(REQUIREMENT, explicit, "Chromium", "chromium")


def agent_argv(
    ns: str,
    profile_dir: Path,
    *,
    chromium: str | None = None,
    trust: Sequence[Path] = (),
    proxy: str | None = None,
) -> list[str]:
    """The command line of a Chromium peer agent living in namespace `ns`.

    `profile_dir`: the browser's profile, which the agent empties and owns (put it in the run's
    work directory, so teardown and `simnet cleanup` remove it). `chromium`: another executable
    than Debian's. `trust`: PEM files (coturn's certificate) trusted for TURN over TLS from the
    start; a call's `ca_file` the browser does not trust yet costs a browser relaunch before it.
    `proxy`: the HTTP proxy (`http://address:port`) the browser sends everything through.
    """
    options = {"--chromium": chromium, "--proxy": proxy}
    return browser_kind.agent_argv("simnet.peer.chromium", ns, profile_dir, trust, options)


def launch_argv(launch: Launch) -> list[str]:
    """The registry's hook: a Chromium peer with its profile in `launch.scratch`, trusting
    `launch.trust` from its start."""
    return agent_argv(launch.ns, launch.scratch, trust=launch.trust, proxy=launch.proxy)
