"""The orchestrator's side of peers: start an agent process in a namespace and drive it over the
peer protocol (`agent`), or start one process that hosts many aiortc peers and drive each of them
the same way (`hosting`). Nothing here imports a WebRTC stack.
"""
