"""Many peers in one process, each peer's sockets in its own network namespace.

Why: one agent process per peer costs ~100 MB and ~1 s of CPU to start (Python, aiortc), which
caps a load run on 2 cores long before coturn is loaded. One event loop can run many peer
connections; what must stay per peer is the network: every socket a peer makes (host
candidates, STUN, TURN over UDP/TCP/TLS, the signaling WebSocket) must live in that peer's
namespace, and its host candidates must be that namespace's addresses.

How: a socket belongs to the namespace its creating thread was in at `socket()` time, and keeps
it for good (the kernel's rule; `setns` moves only the calling thread). Each hosted peer's task
runs in a `contextvars` context that names its namespace (`bound`); every task and callback the
peer's code starts inherits that context. `install()` replaces `socket.socket` with a subclass
whose constructor, when the current context names a namespace, enters it around the `socket()`
call and comes back (`simnet.net.netns.entered`: no await in between, so no other coroutine can
run in that namespace meanwhile); asyncio's `create_datagram_endpoint` / `create_connection`
and aioice's TURN client all make their sockets through `socket.socket`. aioice enumerates host
addresses with `ifaddr` (getifaddrs of the calling thread's namespace): that call is wrapped the
same way (`simnet.peer.aiortc.aioice_adapter.bind_host_addresses`). Sockets made from a socket
descriptor (accept, dup) are left as they are. `isinstance(x, socket.socket)` still holds for
every socket, the subclass's included (its metaclass asks the original class).
"""

from __future__ import annotations

import contextvars
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from simnet.net import netns

#: the namespace of the hosted peer whose code is running (None: the process's own)
CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "simnet_peer_namespace", default=None
)

_T = TypeVar("_T")
_ORIGINAL = socket.socket


class _SameClass(type):
    """`isinstance(x, socket.socket)` keeps meaning "a socket" once the class is replaced."""

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, _ORIGINAL)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _ORIGINAL)


class NamespacedSocket(_ORIGINAL, metaclass=_SameClass):
    """A socket made inside the current hosted peer's namespace."""

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        name = CURRENT.get()
        if name is None or fileno is not None:
            super().__init__(family, type, proto, fileno)
            return
        with netns.entered(name):
            super().__init__(family, type, proto, fileno)


def in_current(function: Callable[..., _T]) -> Callable[..., _T]:
    """`function`, run inside the current hosted peer's namespace (for calls that read the
    calling thread's namespace, like getifaddrs)."""

    def wrapper(*args: Any, **kwargs: Any) -> _T:
        name = CURRENT.get()
        if name is None:
            return function(*args, **kwargs)
        with netns.entered(name):
            return function(*args, **kwargs)

    return wrapper


def install() -> None:
    """Bind sockets and host addresses to the current peer's namespace, process-wide."""
    from simnet.peer.aiortc.aioice_adapter import bind_host_addresses

    socket.socket = NamespacedSocket  # type: ignore[misc]
    bind_host_addresses(in_current)


def bound(name: str) -> contextvars.Context:
    """A context in which `name` is the current peer's namespace (run a peer's task in it)."""
    context = contextvars.copy_context()
    context.run(CURRENT.set, name)
    return context
