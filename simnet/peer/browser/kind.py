"""What a browser kind's package (`simnet.peer.<kind>`, imported by the controller through the
registry's argv hook) shares: its browser found, and its agent's command line.

Light on purpose: the controller imports it to build a peer's argv, so it imports the registry
and the standard library only, no browser code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from simnet.errors import EnvironmentProblem
from simnet.peerkinds import PeerKindSpec, Requirement, find_program


def requirement(spec: PeerKindSpec) -> Requirement:
    """The browser the registry's kind `spec` looks for."""
    if spec.requirement is None:
        raise ImportError(f"the registry's {spec.name} kind names no browser to look for")
    return spec.requirement


def find_binary(requirement: Requirement, explicit: str | None = None) -> Path | None:
    """The browser's executable: `explicit` (if it is one), else the first of the registry's
    (`simnet.peerkinds`) that exists (a path, or a name looked up on PATH)."""
    if explicit:
        path = Path(explicit)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    return find_program(requirement.binaries)


def require_binary(
    requirement: Requirement, explicit: str | None, browser: str, package: str
) -> Path:
    """The browser's executable, or an `EnvironmentProblem` that says how to get one
    (`browser`: its name, `package`: the Debian package of the registry's first binary)."""
    found = find_binary(requirement, explicit)
    if found is None:
        what = explicit or f"{requirement.binaries[0]} (Debian's {package} package)"
        raise EnvironmentProblem(
            f"{browser} peers need a {browser} browser: no {what}", fix=requirement.fix
        )
    return found


def agent_argv(
    module: str,
    ns: str,
    profile_dir: Path,
    trust: Sequence[Path] = (),
    options: Mapping[str, str | None] | None = None,
) -> list[str]:
    """The command line of the browser agent `python -m <module>` living in namespace `ns`, its
    profile in `profile_dir`, trusting `trust` (PEM files) from the start, with the kind's
    `options` (`{"--proxy": ...}`; None: left out)."""
    argv = [sys.executable, "-m", module, "--netns", ns, "--profile", str(profile_dir)]
    for path in trust:
        argv += ["--trust", str(path)]
    for option, value in (options or {}).items():
        if value is not None:
            argv += [option, value]
    return argv
