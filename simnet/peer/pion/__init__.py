"""pion peers: simnet's Go agent (`agent/*.go`, pion/webrtc v3 from Debian's Go packages) behind
the peer protocol, one process per peer, started inside its host's namespace.

The agent is built from source on this machine, offline: `./setup.sh` builds it
(`python -m simnet.peer.pion.build`), and a run builds it on first use when its source changed
since (`launch_argv`, the kind's hook in the registry, `simnet.peerkinds`); `stamp` says
whether a build is current. The binary, the tone's Opus packets and Go's caches live in the
registry's build directory (`.build/pion/` next to the `simnet` package, ignored by git).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simnet.errors import EnvironmentProblem
from simnet.peer.pion.stamp import BINARY, REQUIREMENT, SOURCE_DIR, TONE, find_go, is_current
from simnet.peerkinds import Launch


def ensure_built() -> Path:
    """The agent, built now if its sources changed since its last build (seconds, once);
    `EnvironmentProblem` naming the fix when it cannot be built."""
    if is_current():
        return BINARY
    if find_go() is None:
        raise EnvironmentProblem(
            "pion peers need their Go agent built, and there is no Go toolchain (go) to build "
            f"it: {BINARY} is missing or older than {SOURCE_DIR}",
            fix=REQUIREMENT.fix,
        )
    # function-level import: the build recipe (and aiortc's encoder, for the tone) is paid for
    # only when a build is needed
    from simnet.peer.pion.build import build

    build()
    return BINARY


def agent_argv(scratch: Path, trust: Sequence[Path] = (), proxy: str | None = None) -> list[str]:
    """The command line of a pion peer: it owns `scratch` (its CA bundle for TURN over TLS)
    and trusts `trust` from its start. `proxy`: the HTTP proxy
    (`http://[user:password@]address:port`) its signaling and TURN over TCP go through
    (`CONNECT`, with the credentials; `agent/proxy.go`)."""
    argv = [str(ensure_built()), "--scratch", str(scratch), "--tone", str(TONE)]
    for path in trust:
        argv += ["--trust", str(path)]
    if proxy is not None:
        argv += ["--proxy", proxy]
    return argv


def launch_argv(launch: Launch) -> list[str]:
    """The registry's hook: a pion peer owning `launch.scratch`, trusting `launch.trust`,
    going out through `launch.proxy` when given."""
    return agent_argv(launch.scratch, launch.trust, launch.proxy)
