"""Firefox peers: a headless Firefox (Debian's firefox-esr; nICEr for ICE) in a host's namespace,
behind simnet's peer protocol, driven over WebDriver BiDi.

`agent_argv(ns, profile_dir)` is the command the controller hands `PeerAgent.start(run, ns,
argv=...)`; the agent (`simnet.peer.firefox.agent`) enters `ns` itself. `launch_argv` is the
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

PEER_KIND: PeerKindSpec = kind("firefox")
_REQUIRED = PEER_KIND.requirement
if _REQUIRED is None:
    raise ImportError("the registry's firefox kind names no browser to look for")
REQUIREMENT: Requirement = _REQUIRED
BINARY = Path(REQUIREMENT.binaries[0])  # Debian's `firefox-esr` package
INSTALL_FIX = REQUIREMENT.fix


def find_binary(explicit: str | None = None) -> Path | None:
    """The Firefox executable: `explicit`, else the registry's (`simnet.peerkinds`)."""
    if explicit:
        path = Path(explicit)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    return find_program(REQUIREMENT.binaries)


def require_firefox(explicit: str | None = None) -> Path:
    """The Firefox executable, or an `EnvironmentProblem` that says how to get one."""
    found = find_binary(explicit)
    if found is None:
        what = explicit or f"{BINARY} (Debian's firefox-esr package)"
        raise EnvironmentProblem(
            f"Firefox peers need a Firefox browser: no {what}", fix=INSTALL_FIX
        )
    return found


def agent_argv(
    ns: str, profile_dir: Path, *, trust: Sequence[Path] = (), firefox: str | None = None
) -> list[str]:
    """The command line of a Firefox peer agent living in namespace `ns`.

    `profile_dir`: the browser's profile, which the agent empties, fills and removes (put it in
    the run's work directory, so teardown and `simnet cleanup` remove it too). `trust`: PEM
    files (coturn's certificate) the profile trusts for TURN over TLS from the start; a call's
    `ca_file` it does not trust yet costs a browser relaunch before it. `firefox`: another
    executable than Debian's.
    """
    argv = [sys.executable, "-m", "simnet.peer.firefox", "--netns", ns]
    argv += ["--profile", str(profile_dir)]
    for path in trust:
        argv += ["--trust", str(path)]
    if firefox is not None:
        argv += ["--firefox", firefox]
    return argv


def launch_argv(launch: Launch) -> list[str]:
    """The registry's hook: a Firefox peer with its profile in `launch.scratch`, trusting
    `launch.trust` from its start."""
    return agent_argv(launch.ns, launch.scratch, trust=launch.trust)
