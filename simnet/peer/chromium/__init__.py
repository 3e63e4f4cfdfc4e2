"""Chromium (libwebrtc) peers: a headless Chromium in a host's namespace, behind simnet's peer
protocol, so the controller drives it exactly like the aiortc agent.

`agent_argv(ns, profile_dir)` is the command the controller hands `PeerAgent.start(run, ns,
argv=...)`; the agent (`simnet.peer.chromium.agent`) enters `ns` itself. `launch_argv` is the
kind's hook in the registry (`simnet.peerkinds`). This module imports nothing else of the
package: the controller pays for no browser code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from simnet.errors import EnvironmentProblem
from simnet.peerkinds import Launch, PeerKindSpec, Requirement, find_program, kind

PEER_KIND: PeerKindSpec = kind("chromium")
_REQUIRED = PEER_KIND.requirement
if _REQUIRED is None:
    raise ImportError("the registry's chromium kind names no browser to look for")
REQUIREMENT: Requirement = _REQUIRED
BINARY = Path(REQUIREMENT.binaries[0])  # Debian's `chromium` package
INSTALL_FIX = REQUIREMENT.fix


def find_binary(explicit: str | None = None) -> Path | None:
    """The Chromium executable: `explicit`, else the registry's (`simnet.peerkinds`): Debian's
    binary, else `chromium` on PATH."""
    if explicit:
        path = Path(explicit)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    return find_program(REQUIREMENT.binaries)


def require_chromium(explicit: str | None = None) -> Path:
    """The Chromium executable, or an `EnvironmentProblem` that says how to get one."""
    found = find_binary(explicit)
    if found is None:
        what = explicit or f"{BINARY} (Debian's chromium package)"
        raise EnvironmentProblem(
            f"Chromium peers need a Chromium browser: no {what}", fix=INSTALL_FIX
        )
    return found


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
    argv = [
        sys.executable,
        "-m",
        "simnet.peer.chromium",
        "--netns",
        ns,
        "--profile",
        str(profile_dir),
    ]
    if chromium is not None:
        argv += ["--chromium", chromium]
    for path in trust:
        argv += ["--trust", str(path)]
    if proxy is not None:
        argv += ["--proxy", proxy]
    return argv


def launch_argv(launch: Launch) -> list[str]:
    """The registry's hook: a Chromium peer with its profile in `launch.scratch`, trusting
    `launch.trust` from its start."""
    return agent_argv(launch.ns, launch.scratch, trust=launch.trust, proxy=launch.proxy)
