"""Peers of a call: the agents that run a WebRTC stack in a host's namespace, and their controller.

- `simnet.peer.protocol`: the contract between the two sides (commands, events, the result);
- `simnet.peer.control`: the orchestrator's side, which starts an agent process and drives it
  (`agent`), or one process hosting many agents (`hosting`);
- `simnet.peer.serve`: the command loop and event stream every agent shares;
- one package per peer kind, each an agent: `simnet.peer.aiortc`, `simnet.peer.chromium`.
  Which kinds exist, how each starts and what each can do is `simnet.peerkinds`.

Importing this package imports nothing heavy: the orchestrator uses `simnet.peer.control` and
`simnet.peer.protocol` without paying for aiortc or a browser, which only agent processes import.
"""
