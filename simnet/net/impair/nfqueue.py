"""The userspace backend, for kernels without sch_netem: nftables, NFQUEUE and tbf.

Per impaired link: tbf for the rate and an nftables egress chain for independent loss and
duplication (`rules`), plus, when a direction delays (delay, jitter or bursty loss), one helper
process (`nfqueue_helper`, started in the attached node's namespace) that holds that link's
packets in NFQUEUEs at both ends of the link and releases them on time.

Order of work, so that no packet meets a queue nobody listens to and nothing sleeps: helpers
are started first (Python takes ~70 ms to start), the tc and nftables work is done meanwhile,
then each helper's `ready` line is awaited (bounded), and only then are the rules that feed its
queues installed. The queues fail closed: if a helper dies, its link drops everything.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simnet.errors import SimnetError
from simnet.net.impair.kernel import iptables_restore, mac_of, nft, tc_batch
from simnet.net.impair.rules import (
    LinkTarget,
    egress_chain,
    helper_configs,
    queue_rules,
    tbf_batch,
)
from simnet.net.impair.shaping import encode
from simnet.net.run import Run, spawn
from simnet.scenario.model import DIRECTIONS

READY_DEADLINE_S = 20.0  # a loaded CI machine can take seconds to start a dozen Pythons
HELPER_MODULE = "simnet.net.impair.nfqueue_helper"
RT_PRIORITY_ENV = "SIMNET_LINK_RT_PRIORITY"  # 0: helpers run with normal scheduling
DEFAULT_RT_PRIORITY = 10


@dataclass
class Helper:
    target: LinkTarget
    proc: subprocess.Popen[bytes]
    log: Path
    output: bytes = b""


def helper_argv(target: LinkTarget) -> list[str]:
    config = encode(helper_configs(target))
    try:
        priority = int(os.environ.get(RT_PRIORITY_ENV, DEFAULT_RT_PRIORITY))
    except ValueError:
        priority = DEFAULT_RT_PRIORITY
    return [
        sys.executable,
        "-m",
        HELPER_MODULE,
        "--netns",
        target.a_ns,
        "--rt-priority",
        str(max(0, min(priority, 99))),
        "--config",
        config,
    ]


class NfqueueBackend:
    name = "nfqueue"

    def apply(self, targets: Sequence[LinkTarget], run: Run) -> dict[str, dict[str, Any]]:
        helpers = [self._start(t, run) for t in targets if helper_configs(t)]
        for target in targets:
            for direction in DIRECTIONS:
                ns, _ = target.sender(direction)
                where = f"{target.node} ({direction})"
                tc_batch(ns, tbf_batch(target, direction), where)
                nft(ns, egress_chain(target, direction), where)
        wait_ready(helpers, READY_DEADLINE_S)
        macs = {
            t.node: mac_of(t.a_ns, t.a_if)
            for t in targets
            if t.b_bridge is not None and t.impairment("up").delays
        }
        for ns, rules in queue_rules(targets, macs).items():
            iptables_restore(ns, rules, ns)
        info: dict[str, dict[str, Any]] = {t.node: {} for t in targets}
        for helper in helpers:
            info[helper.target.node] = {"helper_pid": helper.proc.pid, "log": str(helper.log)}
        return info

    def _start(self, target: LinkTarget, run: Run) -> Helper:
        log = run.workdir / f"link-{target.node}.log"
        with log.open("wb") as sink:
            proc = spawn(
                run,
                target.a_ns,
                helper_argv(target),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=sink,
            )
        return Helper(target, proc, log)


def wait_ready(helpers: Sequence[Helper], deadline_s: float) -> None:
    """Wait until every helper has printed `ready`; fail with its log if one exits or stalls."""
    pending = {h.proc.stdout.fileno(): h for h in helpers if h.proc.stdout is not None}
    deadline = time.monotonic() + deadline_s
    with selectors.DefaultSelector() as selector:
        for fd in pending:
            selector.register(fd, selectors.EVENT_READ)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                late = next(iter(pending.values()))
                raise SimnetError(
                    f"the link helper of {late.target.node} was not ready after "
                    f"{deadline_s:g} s{_log_tail(late)}"
                )
            for key, _ in selector.select(left):
                helper = pending[key.fd]
                chunk = os.read(key.fd, 256)
                helper.output += chunk
                if b"ready\n" in helper.output:
                    selector.unregister(key.fd)
                    del pending[key.fd]
                    assert helper.proc.stdout is not None
                    helper.proc.stdout.close()
                elif not chunk:
                    code = helper.proc.wait()
                    raise SimnetError(
                        f"the link helper of {helper.target.node} exited with {code} before it "
                        f"was ready{_log_tail(helper)}",
                        fix="`simnet doctor` checks NFQUEUE support",
                    )


def _log_tail(helper: Helper) -> str:
    try:
        text = helper.log.read_text(errors="replace").strip()
    except OSError:
        return ""
    return f": {text[-500:]}" if text else ""
