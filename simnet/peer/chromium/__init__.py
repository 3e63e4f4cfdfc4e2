"""Chromium (libwebrtc) peers: a headless Chromium in a host's namespace, behind simnet's peer
protocol, so the controller drives it exactly like the aiortc agent.

`agent_argv(ns, profile_dir)` is the command the controller hands `PeerAgent.start(run, ns,
argv=...)`; the agent (`simnet.peer.chromium.agent`) enters `ns` itself. This module imports
nothing else of the package: the controller pays for no browser code.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from simnet.errors import EnvironmentProblem

PEER_KIND = "chromium"
BINARY = Path("/usr/lib/chromium/chromium")  # Debian's `chromium` package
LAUNCHER = "chromium"  # a launcher on PATH: Debian's wrapper script, or another installation
INSTALL_FIX = "run ./setup.sh (or: apt-get install chromium); simnet never downloads a browser"


def find_binary(explicit: str | None = None) -> Path | None:
    """The Chromium executable: `explicit`, else Debian's binary, else `chromium` on PATH.

    Debian's binary is preferred to its `/usr/bin/chromium` wrapper, which exports Debian's
    Google API keys and loads system extensions: neither belongs in a measured peer."""
    if explicit:
        path = Path(explicit)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    if BINARY.is_file() and os.access(BINARY, os.X_OK):
        return BINARY
    found = shutil.which(LAUNCHER)
    return Path(found) if found else None


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
) -> list[str]:
    """The command line of a Chromium peer agent living in namespace `ns`.

    `profile_dir`: the browser's profile, which the agent empties and owns (put it in the run's
    work directory, so teardown and `simnet cleanup` remove it). `chromium`: another executable
    than Debian's. `trust`: PEM files (coturn's certificate) trusted for TURN over TLS from the
    start; a call's `ca_file` the browser does not trust yet costs a browser relaunch before it.
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
    return argv
