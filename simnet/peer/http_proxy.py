"""An HTTP proxy as its clients see it: where it is, the basic credentials it asks for, and a
TCP tunnel through its `CONNECT`. One description for both ends of simnet: the orchestrator
tells a peer behind a proxy-only network its URL (`simnet.services.squid.SquidHandle.client`) and
asks squid's cache manager with its credentials; simnet's aiortc agent parses that URL and opens
its tunnels (`simnet.peer.aiortc.http_proxy`). Standard library only: the agent imports it.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from simnet.peer.iceurl import host_port

MAX_HEAD_BYTES = 8192  # a proxy's answer to CONNECT is a status line and a few headers


class ProxyError(OSError):
    """The proxy could not be reached, or it refused the tunnel (`status`: its status line)."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class HttpProxy:
    """An HTTP proxy at `host:port` that tunnels with `CONNECT`, with the basic credentials
    (`user`, `password`) it asks for, if any."""

    host: str
    port: int
    user: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> HttpProxy:
        """`http://[user:password@]address:port` (what the orchestrator gives the agent)."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError("--proxy is not http://[user:password@]address:port")
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, parts.port, user, password)

    @property
    def address(self) -> str:
        """`http://address:port`: the proxy as messages name it (never its password)."""
        return f"http://{host_port(self.host, self.port)}"

    @property
    def url(self) -> str:
        """`address` with the credentials, for clients that read them from the URL."""
        if self.user is None:
            return self.address
        secret = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@"
        return f"http://{secret}{host_port(self.host, self.port)}"

    @property
    def authorization(self) -> str | None:
        """The `Proxy-Authorization` value (basic), or None without credentials."""
        if self.user is None:
            return None
        token = base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()
        return f"Basic {token}"

    async def tunnel(self, host: str, port: int, timeout_s: float) -> socket.socket:
        """A connected socket whose bytes reach `host:port` through the proxy: `CONNECT`, then
        the proxy's `200` status line and headers, read a byte at a time so that nothing the
        far end sends after them is taken from the caller."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        target = host_port(host, port)
        try:
            async with asyncio.timeout(timeout_s):
                await loop.sock_connect(sock, (self.host, self.port))
                await loop.sock_sendall(sock, self._connect_request(target))
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    byte = await loop.sock_recv(sock, 1)
                    if not byte or len(head) > MAX_HEAD_BYTES:
                        raise ProxyError(f"proxy {self.address}: no answer to CONNECT {target}")
                    head += byte
        except TimeoutError:
            sock.close()
            raise ProxyError(
                f"proxy {self.address}: CONNECT {target} not answered within {timeout_s:g} s"
            ) from None
        except OSError as exc:
            sock.close()
            if isinstance(exc, ProxyError):
                raise
            raise ProxyError(f"proxy {self.address}: {exc}") from exc
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        fields = status.split()
        if len(fields) < 2 or fields[1] != "200":
            sock.close()
            raise ProxyError(f"proxy {self.address} refused CONNECT {target}: {status}", status)
        return sock

    def _connect_request(self, target: str) -> bytes:
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if self.authorization is not None:
            lines.append(f"Proxy-Authorization: {self.authorization}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()
