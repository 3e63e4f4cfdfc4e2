"""The aiortc (Python) peer: an agent that runs aiortc inside a host's namespace.

- `agent`: the warm agent process, `python -m simnet.peer.aiortc --netns NS`;
- `host`: one process hosting many aiortc peers, each in its own namespace (`namespaced`);
- `call`: one call, offerer or answerer, with its signaling (`signaling_client`,
  `signaling_router`), ICE plumbing (`aioice_adapter`), liveness checks (`liveness`),
  media (`media`) and batched datagram reads (`datagrams`).

Importing this package imports nothing: aiortc is imported by the agent process only.
"""
