"""`--cluster ADDR` at something that is not a Dask scheduler: one clear error, never a hang.

Why: a typo in a port, or an address that points at a web server, used to hang forever (a port
that accepts and never answers), or crash inside Dask's reader with "Unable to allocate 3.07 EiB"
(an HTTP answer read as a frame length) or a struct error (a flood). Each listener here is a
real socket on 127.0.0.1, so the check meets what a user would meet.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from simnet.errors import EnvironmentProblem
from simnet.run.cluster import check_address, probe_scheduler
from tests.unit.not_schedulers import flood, http, listener, silent

DEADLINE_S = 1.5  # the probe's deadline in these tests: each must end by then, plus start-up


def _probe_fails(address: str) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(EnvironmentProblem) as caught:
        probe_scheduler(address, deadline_s=DEADLINE_S)
    return str(caught.value), time.monotonic() - started


@pytest.mark.timeout(30)
@pytest.mark.parametrize("serve", [silent, http, flood], ids=["silent", "http", "flood"])
def test_a_listener_that_is_not_a_scheduler_is_one_clear_error(serve: Callable) -> None:
    with listener(serve) as address:
        message, took = _probe_fails(address)
    assert f"--cluster {address}: not a Dask scheduler (" in message
    assert "fix:" in message and "dask scheduler" in message
    assert len(message.splitlines()[0]) < 300  # an answer is quoted in part, not dumped
    # the whole handshake is bounded: the deadline plus Dask's import and a thread's start
    assert took < DEADLINE_S + 10


def test_a_closed_port_says_nothing_answers() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    message, _ = _probe_fails(f"tcp://127.0.0.1:{port}")
    assert "no Dask scheduler answers there" in message


@pytest.mark.parametrize(
    "address", ["ucx://127.0.0.1:8786", "tls://127.0.0.1:8786", "ws://127.0.0.1:8786", "inproc://x"]
)
def test_schemes_simnet_does_not_support_are_refused(address: str) -> None:
    with pytest.raises(EnvironmentProblem) as caught:
        check_address(address)
    assert "is not supported" in str(caught.value) and "tcp://" in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("address", "want"),
    [
        ("tcp://10.1.2.3:8786", "tcp://10.1.2.3:8786"),
        ("10.1.2.3:8786", "tcp://10.1.2.3:8786"),
        ("TCP://sched:8786", "tcp://sched:8786"),
        ("tcp://[::1]:8786", "tcp://[::1]:8786"),
    ],
)
def test_tcp_and_bare_host_port_are_accepted(address: str, want: str) -> None:
    assert check_address(address) == want


@pytest.mark.parametrize(
    "address", ["tcp://", "tcp://:8786", "tcp://h:port", "tcp://h:99999", "tcp://h:٣", "a b:1"]
)
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(EnvironmentProblem):
        check_address(address)


def test_a_long_address_is_shown_in_part() -> None:
    with pytest.raises(EnvironmentProblem) as caught:
        check_address("ucx://" + "h" * 100_000)
    assert len(str(caught.value)) < 500 and "…" in str(caught.value)
