"""Peers of a call: the warm agent that runs aiortc inside a host's namespace, and its controller.

Importing this package imports nothing heavy: the orchestrator uses `simnet.peer.control` and
`simnet.peer.protocol` without paying for aiortc, which only the agent process imports.
"""
