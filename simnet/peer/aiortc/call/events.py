"""A call's events: each goes out as it happens, and the first time of each milestone is kept
for the result (`CallResult.phase_t`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from simnet.peer.protocol import Event

#: where a call's events go: the agent's event stream (`simnet.peer.protocol.Event`)
Emit = Callable[[Event], None]


class CallEvents:
    """The call's event stream and its milestones (name -> first time, `time.monotonic()`)."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.phase_t: dict[str, float] = {}

    def event(
        self, name: str, key: str | None = None, *, t: float | None = None, **fields: Any
    ) -> None:
        """Emit an event (at `t`, default now); the first time of each `key` (default `name`)
        goes in `phase_t`."""
        t = time.monotonic() if t is None else t
        self.phase_t.setdefault(key or name, t)
        self.emit({"event": name, "t": t, **fields})
