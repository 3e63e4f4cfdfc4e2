"""The netem backend: one netem qdisc per impaired direction, tbf as its child for the rate.

Used automatically where `tc qdisc add ... netem` works (typical CI runners). Delay, jitter and
its distribution, both loss models, duplication, the queue limit and the no-reordering rule all
map onto netem's own options (`rules.netem_args`); nothing runs in userspace.
"""

from __future__ import annotations

from collections.abc import Sequence

from simnet.net.impair.kernel import tc_batch
from simnet.net.impair.rules import LinkRecord, LinkTarget, netem_batch
from simnet.net.registry import Run
from simnet.scenario.model import DIRECTIONS


class NetemBackend:
    name = "netem"

    def apply(self, targets: Sequence[LinkTarget], run: Run) -> dict[str, LinkRecord]:
        info: dict[str, LinkRecord] = {}
        for target in targets:
            for direction in DIRECTIONS:
                ns, _ = target.sender(direction)
                tc_batch(ns, netem_batch(target, direction), f"{target.node} ({direction})")
            info[target.node] = {}
        return info
