"""`no_hang`: fails a test whose body blocks (on a FIFO, a device) instead of hanging the suite."""

from __future__ import annotations

import contextlib
import signal
from typing import Any


@contextlib.contextmanager
def no_hang(seconds: int = 10) -> Any:
    """Fail (instead of blocking the suite) if the body does not return within `seconds`."""

    def expired(signum: int, frame: object) -> None:
        raise AssertionError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
