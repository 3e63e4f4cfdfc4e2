"""The proxy client (`simnet.peer.http_proxy`, `simnet.peer.aiortc.http_proxy`): its URL with
credentials, the `CONNECT` it sends, how it reads the proxy's answer, and the ICE URLs kept
behind a proxy. The proxy here is a local asyncio server standing in for squid (pure logic);
the agent through real squid is `tests/integration/test_http_proxy.py`."""

from __future__ import annotations

import asyncio
import base64

import pytest

from simnet.peer.aiortc.http_proxy import through_proxy
from simnet.peer.http_proxy import HttpProxy, ProxyError
from simnet.peer.protocol import IceServer


def test_credentials_survive_the_url_and_stay_out_of_its_address() -> None:
    proxy = HttpProxy.from_url("http://alice:s3cr%3At%40%2Fx@192.0.2.30:3128")
    assert (proxy.host, proxy.port, proxy.user, proxy.password) == (
        "192.0.2.30", 3128, "alice", "s3cr:t@/x",
    )  # fmt: skip
    assert proxy.address == "http://192.0.2.30:3128"
    assert HttpProxy.from_url(proxy.url) == proxy
    token = base64.b64encode(b"alice:s3cr:t@/x").decode()
    assert proxy.authorization == f"Basic {token}"
    bare = HttpProxy.from_url("http://[2001:db8::30]:3128")
    assert bare.host == "2001:db8::30" and bare.url == bare.address == "http://[2001:db8::30]:3128"
    assert bare.authorization is None


@pytest.mark.parametrize("url", ["https://192.0.2.30:3128", "http://192.0.2.30", "192.0.2.30:3128"])
def test_a_url_that_is_not_an_http_proxy_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ValueError, match="is not http://") as caught:
        HttpProxy.from_url(url.replace("192.0.2.30", "u:pw@192.0.2.30"))
    assert "pw" not in str(caught.value)


def test_behind_a_proxy_only_turn_over_tcp_and_tls_is_kept() -> None:
    servers = [
        IceServer(urls=["stun:192.0.2.12:3478"]),
        IceServer(
            urls=[
                "turn:192.0.2.12:3478?transport=udp",
                "turn:192.0.2.12:443?transport=tcp",
                "turns:192.0.2.12:443?transport=tcp",
            ],
            username="u",
            credential="p",
        ),
    ]
    (kept,) = through_proxy(servers)
    assert kept.urls == ["turn:192.0.2.12:443?transport=tcp", "turns:192.0.2.12:443?transport=tcp"]
    assert (kept.username, kept.credential) == ("u", "p")


async def _proxy(answer: bytes, then: bytes = b"") -> tuple[asyncio.Server, list[bytes]]:
    """A one-shot stand-in proxy: it records the request head, answers `answer`, then `then`."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer + then)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0), heads


async def test_a_tunnel_sends_connect_with_credentials_and_leaves_the_far_end_bytes() -> None:
    server, heads = await _proxy(b"HTTP/1.1 200 Connection established\r\n\r\n", b"\x01\x02")
    port = server.sockets[0].getsockname()[1]
    async with server:
        proxy = HttpProxy("127.0.0.1", port, "alice", "pw")
        sock = await proxy.tunnel("192.0.2.12", 443, 5.0)
        try:
            loop = asyncio.get_running_loop()
            # what the far end sent after the proxy's answer is still the caller's to read
            assert await loop.sock_recv(sock, 2) == b"\x01\x02"
        finally:
            sock.close()
    (head,) = heads
    assert head.startswith(b"CONNECT 192.0.2.12:443 HTTP/1.1\r\nHost: 192.0.2.12:443\r\n")
    assert f"Proxy-Authorization: {proxy.authorization}\r\n".encode() in head


async def test_a_refused_tunnel_is_a_proxy_error_with_its_status() -> None:
    server, _ = await _proxy(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(ProxyError, match="refused CONNECT") as caught:
            await HttpProxy("127.0.0.1", port).tunnel("192.0.2.12", 443, 5.0)
    assert caught.value.status == "HTTP/1.1 407 Proxy Authentication Required"
