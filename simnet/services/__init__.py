"""Services simnet runs inside the emulated network for a call: STUN/TURN (coturn), later signaling.

Each service is a real process started in a server's namespace and registered with the run, so
the run's teardown kills it whatever happens; `start_*` functions return only once the service
answers on the wire, so callers never race its start-up.
"""

from simnet.services.coturn import (
    CoturnHandle,
    LongTermAuth,
    RestAuth,
    TurnConfig,
    start_coturn,
    turn_credentials,
    turnserver_argv,
)
from simnet.services.turn_client import TurnAllocation, TurnAllocationError, allocate

__all__ = [
    "CoturnHandle",
    "LongTermAuth",
    "RestAuth",
    "TurnAllocation",
    "TurnAllocationError",
    "TurnConfig",
    "allocate",
    "start_coturn",
    "turn_credentials",
    "turnserver_argv",
]
