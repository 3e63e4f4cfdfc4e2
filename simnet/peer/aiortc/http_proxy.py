"""How simnet's aiortc agent leaves a network whose only way out is an HTTP proxy
(`firewall.proxy_only`), as a Python bot behind a corporate proxy must. aiortc and aioice know no
proxy; the agent gets one with `--proxy http://[user:password@]address:port` (credentials when
the proxy asks for them), held in `PROXY` for every call of the process.

What goes through it, each as a browser's network stack sends it (docs/guides/proxy.md):

- TURN over TCP and TLS: `simnet.peer.aiortc.aioice_adapter` allocates over a socket the proxy
  tunnelled (`simnet.peer.http_proxy.HttpProxy.tunnel`; TLS is started inside the tunnel, to the
  TURN server, as `turns:` asks);
- the signaling WebSocket: through a `CONNECT` tunnel too (`signaling_client`, the `websockets`
  client's proxy support); aiohttp would send a `ws://` request to the proxy as a plain `GET`
  with `Upgrade`, which squid does not upgrade unless told to (`http_upgrade_request_protocols`),
  while browsers tunnel it;
- HTTP (long-poll) signaling: aiohttp's own proxy support (absolute-form requests).

UDP never goes through a proxy: behind one the agent drops STUN and TURN-over-UDP URLs
(`through_proxy`); its host candidates' checks still go onto the LAN, where the firewall drops
them, as it drops Firefox's and pion's.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

from simnet.peer.http_proxy import HttpProxy
from simnet.peer.iceurl import IceUrl

if TYPE_CHECKING:  # the call protocol's models: not for `simnet.services.turn_client`, which
    # imports the aioice adapter (and so this module) without them
    from simnet.peer.protocol import IceServer

#: The proxy this agent's calls go out through (set once from `--proxy`); None: no proxy.
PROXY: contextvars.ContextVar[HttpProxy | None] = contextvars.ContextVar(
    "simnet_http_proxy", default=None
)


def through_proxy(servers: list[IceServer]) -> list[IceServer]:
    """The ICE servers' URLs a call behind a proxy can use: TURN over TCP and TLS. STUN and
    TURN over UDP are UDP, which no HTTP proxy carries: aioice would wait its whole 5 s STUN
    window for an answer the firewall drops, and allocate on a UDP URL first (aiortc takes one
    TURN URL). Browsers drop them too (Chromium's `disable_non_proxied_udp`)."""
    kept = []
    for server in servers:
        urls = [u for u in server.urls if _tunnels(u)]
        if urls:
            kept.append(server.model_copy(update={"urls": urls}))
    return kept


def _tunnels(url: str) -> bool:
    try:
        parsed = IceUrl.parse(url)
    except ValueError:
        return False
    return parsed.scheme in ("turn", "turns") and parsed.transport == "tcp"
