"""The aiortc (Python) peer: an agent that runs aiortc inside a host's namespace.

- `agent`: the warm agent process, `python -m simnet.peer.aiortc --netns NS`;
- `host`: one process hosting many aiortc peers, each in its own namespace (`namespaced`);
- `call`: one call, offerer or answerer, with its signaling (`signaling_client`,
  `signaling_router`), ICE plumbing (`aioice_adapter`), liveness checks (`liveness`),
  media (`media`) and batched datagram reads (`datagrams`).

This module is the kind's hook in the registry (`simnet.peerkinds`): `agent_argv`. Importing it
imports nothing else: aiortc is imported by the agent process only.
"""

from __future__ import annotations

import sys

from simnet.peerkinds import Launch


def agent_argv(launch: Launch) -> list[str]:
    """The command line of an aiortc peer agent living in namespace `launch.ns` (it enters the
    namespace itself, and says so in its log if it cannot), going out through `launch.proxy`
    when given (`simnet.peer.aiortc.http_proxy`)."""
    argv = [sys.executable, "-m", "simnet.peer.aiortc", "--netns", launch.ns]
    return [*argv, "--proxy", launch.proxy] if launch.proxy is not None else argv
