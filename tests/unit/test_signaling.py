"""The signaling relay and its client, on loopback inside a scratch namespace.

Why a namespace even here: the server must never listen in the root namespace (it would be
reachable from the machine's real network), and binding it with `netns.socket_in` is exactly
how the orchestrator runs it. The clients run as they do in a peer process, with plain
connections from a thread that is inside the namespace: a second event loop in a worker thread
that has entered it (`in_ns`), while the server keeps running on the test's own loop. That
exercises the real code paths on both sides with no test-only parameters.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from ipaddress import IPv4Address
from typing import Any, TypeVar

import aiohttp
import pytest

from simnet.errors import SimnetError
from simnet.net import netns
from simnet.net.registry import Run
from simnet.peer.aiortc.signaling_client import Channel, SignalingError, Transport, open_channel
from simnet.services import signaling
from simnet.services.signaling import MAX_MESSAGE_BYTES, SignalingServer

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace"),
    pytest.mark.timeout(60),
]

LOOPBACK = IPv4Address("127.0.0.1")
KINDS: list[Transport] = ["ws", "http"]
_T = TypeVar("_T")


@pytest.fixture
def scratch_ns() -> Iterator[str]:
    """A fresh namespace with only `lo`, up; removed afterwards whatever happens."""
    from pyroute2 import IPRoute  # netlink, built outside the test's event loop

    # Registered with a run like any simnet namespace: a concurrent test that looks for leaked
    # namespaces (or `simnet cleanup` after a killed test) then knows whose it is.
    with Run(label="test signaling") as run:
        name = run.ns_name("sig")
        run.register_namespace(name)
        with netns.created(name), IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        yield name
    assert not netns.exists(name)


@pytest.fixture
async def server(scratch_ns: str) -> AsyncIterator[SignalingServer]:
    async with SignalingServer(scratch_ns, LOOPBACK, port=0) as started:
        yield started


async def in_ns(ns: str, fn: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run `fn()` on its own event loop in a worker thread that is inside namespace `ns`.

    The whole loop lives in the namespace (that thread runs nothing else), so spanning awaits
    is fine here, unlike `netns.entered` on the orchestrator's loop.
    """

    def run() -> _T:
        with netns.entered(ns):
            return asyncio.run(fn())

    return await asyncio.to_thread(run)


async def test_relay_both_ways(server: SignalingServer) -> None:
    for kind in KINDS:
        room = f"call-{kind}"

        async def call(kind: Transport = kind, room: str = room) -> tuple[Any, Any]:
            alice = await open_channel(kind, server.base_url, room, "alice", 2.0)
            bob = await open_channel(kind, server.base_url, room, "bob", 2.0)
            try:
                await alice.send({"type": "offer", "sdp": "v=0 alice"})
                offer = await bob.receive(2.0)
                await bob.send({"type": "answer", "sdp": "v=0 bob"})
                answer = await alice.receive(2.0)
                return offer, answer
            finally:
                await alice.close()
                await bob.close()

        offer, answer = await in_ns(server.ns, call)
        assert offer == {"type": "offer", "sdp": "v=0 alice"}, kind
        assert answer == {"type": "answer", "sdp": "v=0 bob"}, kind
        events = server.events(room)
        assert [(e.sender, e.type, e.via) for e in events] == [
            ("alice", "offer", kind),
            ("bob", "answer", kind),
        ]
        assert events[0].t < events[1].t <= time.monotonic()
        assert events[0].delivered["bob"] >= events[0].t
        assert events[1].delivered["alice"] >= events[1].t
        assert events[0].source.startswith("127.0.0.1:")


@pytest.mark.parametrize("kind", KINDS)
async def test_messages_sent_before_the_peer_connects_are_buffered(
    server: SignalingServer, kind: Transport
) -> None:
    async def early_sender() -> None:
        async with await open_channel(kind, server.base_url, "r", "alice", 2.0) as alice:
            for i in range(3):
                await alice.send({"type": "candidate", "n": i})

    async def late_receiver() -> list[dict[str, Any]]:
        async with await open_channel(kind, server.base_url, "r", "bob", 2.0) as bob:
            return [await bob.receive(2.0) for _ in range(3)]

    await in_ns(server.ns, early_sender)  # alice has gone before bob arrives
    assert len(server.events("r")) == 3
    received = await in_ns(server.ns, late_receiver)
    assert [m["n"] for m in received] == [0, 1, 2]  # all of them, in order


async def test_transports_mix_within_a_room(server: SignalingServer) -> None:
    async def call() -> tuple[dict[str, Any], dict[str, Any]]:
        async with (
            await open_channel("ws", server.base_url, "mixed", "alice", 2.0) as alice,
            await open_channel("http", server.base_url, "mixed", "bob", 2.0) as bob,
        ):
            await alice.send({"type": "offer"})
            await bob.send({"type": "answer"})
            return await bob.receive(2.0), await alice.receive(2.0)

    assert await in_ns(server.ns, call) == ({"type": "offer"}, {"type": "answer"})


async def test_long_poll_waits_then_answers_empty(server: SignalingServer) -> None:
    url = server.url("http", "quiet", "bob")

    async def poll(wait_s: float) -> tuple[list[Any], float]:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.get(url, params={"timeout": str(wait_s)}) as response:
                assert response.status == 200
                return await response.json(), time.monotonic() - started

    messages, elapsed = await in_ns(server.ns, lambda: poll(0.4))
    assert messages == []
    assert 0.35 <= elapsed < 2.0


async def test_long_poll_wakes_on_a_message(server: SignalingServer) -> None:
    async def scenario() -> tuple[list[Any], float]:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()

            async def post_later() -> None:
                await asyncio.sleep(0.2)
                async with session.post(server.url("http", "r", "alice"), json={"n": 1}) as r:
                    assert r.status == 204

            poster = asyncio.create_task(post_later())
            get = session.get(server.url("http", "r", "bob"), params={"timeout": "10"})
            async with get as response:
                messages = await response.json()
            await poster
            return messages, time.monotonic() - started

    messages, elapsed = await in_ns(server.ns, scenario)
    assert messages == [{"n": 1}]
    assert elapsed < 2.0  # woken by the message, not by the 10 s timeout


@pytest.mark.parametrize("kind", KINDS)
async def test_oversize_message_is_rejected(server: SignalingServer, kind: Transport) -> None:
    big = {"type": "offer", "sdp": "x" * MAX_MESSAGE_BYTES}

    async def scenario() -> tuple[SignalingError, SignalingError]:
        async with (
            await open_channel(kind, server.base_url, "big", "alice", 2.0) as alice,
            await open_channel(kind, server.base_url, "big", "bob", 2.0) as bob,
        ):
            try:
                await alice.send(big)
            except SignalingError as exc:  # HTTP: 413 at once
                sent_error = exc
            else:  # WebSocket: the server closes the connection with 1009
                with pytest.raises(SignalingError) as info:
                    await alice.receive(2.0)
                sent_error = info.value
            with pytest.raises(SignalingError) as nothing:
                await bob.receive(0.3)
            return sent_error, nothing.value

    error, nothing = await in_ns(server.ns, scenario)
    if kind == "http":
        assert error.kind == "rejected" and "413" in error.message
    else:
        assert error.kind == "closed" and "1009" in error.message
    assert nothing.kind == "timeout"  # bob never got it
    assert server.events("big") == []


async def test_receive_timeout(server: SignalingServer) -> None:
    async def scenario(kind: Transport) -> tuple[SignalingError, float]:
        async with await open_channel(kind, server.base_url, "t", "alone", 2.0) as channel:
            started = time.monotonic()
            with pytest.raises(SignalingError) as info:
                await channel.receive(0.3)
            elapsed = time.monotonic() - started
            await channel.send({"still": "usable"})  # a timeout does not end the channel
            return info.value, elapsed

    for kind in KINDS:
        error, elapsed = await in_ns(server.ns, functools.partial(scenario, kind))
        assert error.kind == "timeout", kind
        assert 0.25 <= elapsed < 1.5, kind


async def test_connecting_to_a_closed_port_fails_fast(scratch_ns: str) -> None:
    probe = netns.socket_in(scratch_ns, socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now

    async def attempt(kind: Transport) -> tuple[SignalingError, float]:
        started = time.monotonic()
        with pytest.raises(SignalingError) as info:
            await open_channel(kind, f"http://127.0.0.1:{port}", "r", "p", 5.0)
        return info.value, time.monotonic() - started

    for kind in KINDS:
        error, elapsed = await in_ns(scratch_ns, functools.partial(attempt, kind))
        assert error.kind == "connect", kind
        assert elapsed < 1.0, kind  # refused, not the 5 s timeout


async def test_bad_requests_are_rejected(server: SignalingServer) -> None:
    async def scenario() -> list[Any]:
        outcomes: list[Any] = []
        for kind in KINDS:
            with pytest.raises(SignalingError) as info:
                await open_channel(kind, server.base_url, "bad room!", "p", 2.0)
            outcomes.append(info.value.kind)
        async with aiohttp.ClientSession() as session:
            url = server.url("http", "r", "alice")
            for body in ("not json", "[1, 2]"):
                async with session.post(url, data=body) as response:
                    outcomes.append(response.status)
            async with session.get(url, params={"timeout": "soon"}) as response:
                outcomes.append(response.status)
        return outcomes

    assert await in_ns(server.ns, scenario) == ["rejected", "rejected", 400, 400, 400]


async def test_rooms_are_bounded(server: SignalingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signaling, "MAX_ROOMS", 2)

    async def scenario() -> tuple[str, str]:
        async with (
            await open_channel("ws", server.base_url, "a", "p", 2.0),
            await open_channel("ws", server.base_url, "b", "p", 2.0),
        ):
            with pytest.raises(SignalingError) as full:
                await open_channel("http", server.base_url, "c", "p", 2.0)
        await asyncio.sleep(0.2)  # let the server see both WebSockets go
        # rooms a and b are idle now: the least recently active one makes way
        async with await open_channel("http", server.base_url, "c", "p", 2.0):
            pass
        return full.value.kind, full.value.message

    kind, message = await in_ns(server.ns, scenario)
    assert kind == "rejected" and "503" in message
    assert sorted(server.rooms()) == ["b", "c"]


async def test_close_ends_channels_and_stops_listening(server: SignalingServer) -> None:
    opened: asyncio.Event = asyncio.Event()
    release: asyncio.Event = asyncio.Event()
    main_loop = asyncio.get_running_loop()

    async def peer() -> tuple[SignalingError, SignalingError, SignalingError]:
        ws = await open_channel("ws", server.base_url, "r", "alice", 2.0)
        http = await open_channel("http", server.base_url, "r", "bob", 2.0)
        main_loop.call_soon_threadsafe(opened.set)
        errors: list[SignalingError] = []
        for channel in (ws, http):
            with pytest.raises(SignalingError) as info:
                await channel.receive(5.0)
            errors.append(info.value)
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(release.wait(), main_loop))
        with pytest.raises(SignalingError) as refused:
            await open_channel("ws", server.base_url, "r", "carol", 2.0)
        await ws.close()
        await http.close()
        return errors[0], errors[1], refused.value

    task = asyncio.create_task(in_ns(server.ns, peer))
    await asyncio.wait_for(opened.wait(), 5.0)
    started = time.monotonic()
    server.close()
    await server.wait_closed()
    assert time.monotonic() - started < 3.0
    release.set()
    ws_error, http_error, refused = await task
    assert ws_error.kind == "closed" and "1001" in ws_error.message
    assert http_error.kind == "closed"
    assert refused.kind == "connect"


async def test_channel_after_close(server: SignalingServer) -> None:
    async def scenario() -> list[str]:
        kinds: list[str] = []
        for kind in KINDS:
            channel: Channel = await open_channel(kind, server.base_url, "r", "p", 2.0)
            await channel.close()
            await channel.close()  # idempotent
            for op in (channel.receive(0.1), channel.send({"late": True})):
                with pytest.raises(SignalingError) as info:
                    await op
                kinds.append(info.value.kind)
        return kinds

    assert await in_ns(server.ns, scenario) == ["closed"] * 4


@pytest.mark.parametrize("kind", KINDS)
async def test_a_peer_that_reconnects_gets_what_it_had_not_read(
    server: SignalingServer, kind: Transport
) -> None:
    """Closing a channel (an HTTP long poll in flight, or a WebSocket) takes nothing with it."""

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        bob = await open_channel(kind, server.base_url, "r", "bob", 2.0)
        async with await open_channel(kind, server.base_url, "r", "alice", 2.0) as alice:
            await alice.send({"n": 1})
            first = await bob.receive(2.0)
            await asyncio.sleep(0.1)  # bob's reader is waiting on the server again
            await bob.close()
            await asyncio.sleep(0.1)  # the server notices bob's connection is gone
            await alice.send({"n": 2})
        async with await open_channel(kind, server.base_url, "r", "bob", 2.0) as again:
            return first, await again.receive(2.0)

    first, second = await in_ns(server.ns, scenario)
    assert (first, second) == ({"n": 1}, {"n": 2})  # n=1 is not delivered twice, n=2 not lost


async def test_a_second_websocket_with_the_same_name_replaces_the_first(
    server: SignalingServer,
) -> None:
    async def scenario() -> tuple[SignalingError, dict[str, Any]]:
        old = await open_channel("ws", server.base_url, "r", "bob", 2.0)
        async with (
            await open_channel("ws", server.base_url, "r", "bob", 2.0) as new,
            await open_channel("ws", server.base_url, "r", "alice", 2.0) as alice,
        ):
            with pytest.raises(SignalingError) as info:
                await old.receive(2.0)
            await old.close()
            await alice.send({"to": "bob"})
            return info.value, await new.receive(2.0)

    error, message = await in_ns(server.ns, scenario)
    assert error.kind == "closed" and "replaced" in error.message
    assert message == {"to": "bob"}


async def test_a_reconnect_is_served_at_once_although_the_old_client_never_answers(
    server: SignalingServer,
) -> None:
    """A peer that moved to another network reconnects while its old connection is dead (an
    ICE restart's offer goes through the new one): the server's close of the old one is never
    answered, and the new connection must not wait for that (aiohttp waits up to 10 s for a
    close handshake, except when another task reads the connection, as here). The old client
    is a raw socket that completed the WebSocket handshake and then reads nothing."""

    async def scenario() -> dict[str, Any]:
        reader, writer = await asyncio.open_connection(str(LOOPBACK), server.port)
        writer.write(
            b"GET /ws/r/bob HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")  # and it reads no more
        try:
            async with (
                await open_channel("ws", server.base_url, "r", "bob", 2.0) as new,
                await open_channel("ws", server.base_url, "r", "alice", 2.0) as alice,
            ):
                await alice.send({"to": "bob"})
                return await new.receive(2.0)  # well inside the 10 s close handshake
        finally:
            writer.close()

    assert await in_ns(server.ns, scenario) == {"to": "bob"}


async def test_a_port_in_use_is_a_user_error(server: SignalingServer) -> None:
    with pytest.raises(SimnetError, match=r"cannot listen on 127\.0\.0\.1:"):
        await SignalingServer(server.ns, LOOPBACK, server.port).start()
    with pytest.raises(SimnetError, match=r"cannot listen on 192\.0\.2\.1:"):
        await SignalingServer(server.ns, IPv4Address("192.0.2.1"), 0).start()
