"""One aiortc call from one peer's side (`run_call`), in small parts named after the spec
object each drives:

- `driver`: `Call`, which runs the phases in order, each bounded by its timeout;
- `signaling`: the offer/answer exchange over the signaling channel, trickled candidates in;
- `transport`: the ICE transport and its DTLS (gathering, remote candidates, states, the
  selected pair, liveness);
- `datachannel`: the data channel and its application protocol (RTT probes, bulk transfer,
  summary, done);
- `tracks`: media (the tracks sent, the frames counted, the measured window), with `stats`
  (one kind's figures from `getStats()`);
- `result`: what the agent reports (`CallResult`);
- `events`, `failure`: the event stream with its milestones, and how a phase fails.
"""

from simnet.peer.aiortc.call.driver import Call, run_call
from simnet.peer.aiortc.call.events import Emit
from simnet.peer.aiortc.call.failure import CallFailed

__all__ = ["Call", "CallFailed", "Emit", "run_call"]
