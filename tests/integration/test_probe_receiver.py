"""The probe receiver counts what arrived in distinct datagrams, not in deliveries.

Why: on a duplicating link more datagrams arrive than were sent. A receiver that stops
waiting once it has seen as many deliveries as probes sent does so while the last originals
are still in flight; closing the socket then counts them lost (2 of 2000 on a 10 % duplicating
link in one suite run).
"""

from __future__ import annotations

import socket
import threading

import pytest
from pyroute2 import IPRoute

from simnet.net import netns
from simnet.net.impair.measure import HEADER, Receiver
from simnet.net.registry import Run
from tests.solo import SOLO

pytestmark = [pytest.mark.integration, *SOLO]


def test_duplicates_do_not_end_the_wait_before_every_probe_arrived() -> None:
    with Run(label="test probe receiver") as run:
        ns = run.ns_name("rx")
        run.register_namespace(ns)
        with netns.created(ns), IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        receiver = Receiver(ns)
        sender = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
        last_sent = threading.Event()
        try:
            count = 10
            for seq in range(count - 1):  # every probe but the last, each delivered twice
                for _ in range(2):
                    sender.sendto(HEADER.pack(seq, 0), ("127.0.0.1", receiver.port))

            def send_last() -> None:
                sender.sendto(HEADER.pack(count - 1, 0), ("127.0.0.1", receiver.port))
                last_sent.set()

            # The last probe arrives well within the quiet period, after the deliveries
            # already outnumber the probes sent.
            timer = threading.Timer(0.2, send_last)
            timer.start()
            receiver.wait_quiet(count, quiet_s=5.0, limit_s=10.0)
            seen = {arrival.seq for arrival in receiver.arrivals}  # when the wait ended
            timer.join()
            assert last_sent.is_set()
            assert seen == set(range(count)), f"the wait ended with {sorted(seen)}"
        finally:
            sender.close()
            receiver.close()
