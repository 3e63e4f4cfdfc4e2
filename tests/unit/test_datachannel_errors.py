"""A data channel that closes under a call is the call's `datachannel` error, not `agent`.

Why: at 60 relayed calls at once (`benchmarks/turn_load.py`), calls whose other side had given
up (its own data-channel timeout) closed their channel; the next send raised aiortc's
`InvalidStateError`, which the agent reported as `agent`, the kind that means a bug in the
harness. The channel here is a stand-in that behaves as aiortc's does once closed (its `send`
raises that exception); the real thing is in the load benchmark's rows.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.exceptions import InvalidStateError

from simnet.peer.aiortc.call import CallFailed
from simnet.peer.aiortc.call.datachannel import DataChannelProtocol
from simnet.peer.aiortc.call.events import CallEvents
from simnet.peer.protocol import CallCommand


class ClosedChannel:
    """What aiortc's RTCDataChannel does after its peer closed it: refuses to send."""

    readyState = "closed"
    bufferedAmount = 0
    bufferedAmountLowThreshold = 0

    def send(self, data: Any) -> None:
        raise InvalidStateError

    def on(self, event: str, handler: Any) -> None:
        pass


@pytest.mark.parametrize("rtt_probes", [3, 0])  # the first send: a ping, or the transfer's start
def test_a_send_on_a_closed_channel_fails_the_call_as_datachannel(rtt_probes: int) -> None:
    async def exchange() -> CallFailed:
        cmd = CallCommand(
            role="offer",
            signaling_url_base="http://192.0.2.1:443",
            room="r",
            peer="alice",
            remote_peer="bob",
            rtt_probes=rtt_probes,
            data_bytes=1000,
        )
        protocol = DataChannelProtocol(cmd, CallEvents(lambda event: None))
        protocol.dc_open.set_result(ClosedChannel())  # type: ignore[arg-type]
        protocol.dc = protocol.dc_open.result()
        with pytest.raises(CallFailed) as failed:
            await protocol.exchange()
        return failed.value

    failure = asyncio.run(exchange())
    assert failure.kind == "datachannel" and "closed" in failure.detail
