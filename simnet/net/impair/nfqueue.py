"""The userspace backend, for kernels without sch_netem: nftables, NFQUEUE and tbf.

Per impaired link: tbf for the rate and an nftables egress chain for independent loss and
duplication (`rules`), plus, when a direction delays (delay, jitter or bursty loss), one helper
process (`nfqueue_helper`, started in the attached node's namespace) that holds that link's
packets in NFQUEUEs at both ends of the link and releases them on time.

Order of work, so that no packet meets a queue nobody listens to and nothing sleeps: helpers
are started first (Python takes ~70 ms to start), the tc and nftables work is done meanwhile,
then each helper's `ready` line is awaited (bounded), and only then are the rules that feed its
queues installed. The queues fail closed: if a helper dies, its link drops everything.

Changes during a call (`relink`, which `live.set_link` calls from a call's timeline): each
helper keeps a pipe pair to its owner; a new configuration is one line on its stdin, in the
format of its `--config`, and the helper answers `ok` once it is in force (`error ...` if
nothing changed), so the caller waits on that answer, never on a guessed time. The helper
swaps a direction's configuration between two packets; what that does to packets it already
holds is `nfqueue_helper`'s to say (they keep their release times, and without `reorder` no
later packet overtakes them). Per direction of the link:

* it had a delay line and still delays: the running line gets the new configuration;
* it starts to delay: the same ordered path as at build, helper ready before rules. The link's
  helper is started now if it had none (registered with the run as the build's are, so
  teardown and `simnet cleanup` find it), else the running one binds the new queue before it
  answers; then the rules that feed the queue are installed;
* it stops delaying: the line, its queue and its rules stay, with a configuration that holds
  nothing (no delay, no jitter; the independent loss, if any, stays the line's rather than
  moving to the egress chain). Removing the rules and stopping the helper instead would
  reorder: packets the line still holds (up to the old delay's worth) would leave after later
  packets that no longer pass through it, and a timeline's `restore` would have to start a
  process again. The price is a userspace hop per packet until the run ends (measured here on
  an idle link: a median one-way delay of ~0.25-0.3 ms instead of ~0.1 ms without a line;
  `tests/integration/test_live_link_changes.py` prints it).

The rules of a namespace are rewritten whole in one `iptables-restore` commit (chains flushed
and refilled in one transaction), so no packet meets a half-made chain. Where a run came from:
`chooser.apply_links` calls `adopt` for every network it builds, so `relink` finds the run
(and the helpers it already has) from a namespace name alone.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from simnet import settings
from simnet.addresses import IPV4, IPV6, Family
from simnet.errors import SimnetError
from simnet.net.impair.kernel import clear_egress, iptables_restore, mac_of, nft, tc_batch
from simnet.net.impair.rules import (
    NFT_TABLE,
    LinkRecord,
    LinkTarget,
    egress_chain,
    helper_configs,
    line_config,
    queue_rules,
    tbf_batch,
)
from simnet.net.impair.shaping import (
    STATS_REQUEST,
    DirectionConfig,
    Lateness,
    decode_stats,
    encode,
)
from simnet.net.process import start
from simnet.net.registry import Run
from simnet.scenario.model import DIRECTIONS, Direction

READY_DEADLINE_S = 20.0  # a loaded CI machine can take seconds to start a dozen Pythons
CHANGE_DEADLINE_S = 10.0  # a running helper answers within milliseconds; this is for a stall
HELPER_MODULE = "simnet.net.impair.nfqueue_helper"
RT_PRIORITY_ENV = settings.RT_PRIORITY_ENV  # 0: helpers run with normal scheduling
DEFAULT_RT_PRIORITY = settings.DEFAULT_RT_PRIORITY


@dataclass
class Helper:
    """A link's helper process: the link as it is now, and the directions fed to its queues."""

    target: LinkTarget
    proc: subprocess.Popen[bytes]  # a `process.start` process: the run's teardown stops it
    log: Path
    output: bytes = b""  # read from its stdout, not yet taken as a line
    fed: frozenset[Direction] = frozenset()


def helper_argv(target: LinkTarget, configs: Sequence[DirectionConfig] | None = None) -> list[str]:
    config = encode(list(helper_configs(target) if configs is None else configs))
    priority = settings.rt_priority()
    return [
        sys.executable,
        "-m",
        HELPER_MODULE,
        "--netns",
        target.a_ns,
        "--rt-priority",
        str(priority),
        "--config",
        config,
    ]


FAMILIES: tuple[Family, ...] = (IPV4, IPV6)  # queue rules per family (iptables, ip6tables)


@dataclass
class DelayLines:
    """A run's delay lines, kept so that a call's timeline can change its links."""

    helpers: dict[str, Helper] = field(default_factory=dict)  # node -> its link's helper
    macs: dict[str, str] = field(default_factory=dict)  # node on a LAN -> its `a_if` MAC
    #: family -> namespace -> its queue rules (ip6tables' for the links that carry IPv6)
    rules: dict[Family, dict[str, str]] = field(default_factory=dict)
    next_index: int = 0  # for the queue numbers of a helper started during the call
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        """Close the pipes to the helpers (the run stops the processes themselves)."""
        for helper in self.helpers.values():
            for pipe in (helper.proc.stdin, helper.proc.stdout):
                if pipe is not None:
                    pipe.close()
            helper.proc.poll()  # notes a process the run reaped, so Popen does not warn
        self.helpers.clear()

    def fed(self) -> dict[str, frozenset[Direction]]:
        return {node: helper.fed for node, helper in self.helpers.items()}

    def wanted_rules(self, family: Family) -> dict[str, str]:
        targets = [helper.target for helper in self.helpers.values()]
        return queue_rules(targets, self.macs, self.fed(), flush=True, family=family)


# A run is found from any of its namespaces; both maps forget a run once it is gone.
_owners: weakref.WeakValueDictionary[str, Run] = weakref.WeakValueDictionary()
_lines: weakref.WeakKeyDictionary[Run, DelayLines] = weakref.WeakKeyDictionary()


def adopt(run: Run, namespaces: Iterable[str]) -> None:
    """Remember that `run` owns `namespaces`, so `relink` can find it by a link's namespace."""
    for name in namespaces:
        _owners[name] = run
    delay_lines(run)


def delay_lines(run: Run) -> DelayLines:
    lines = _lines.get(run)
    if lines is None:
        lines = _lines[run] = DelayLines()
        weakref.finalize(run, lines.close)
    return lines


class NfqueueBackend:
    name = "nfqueue"

    def apply(self, targets: Sequence[LinkTarget], run: Run) -> dict[str, LinkRecord]:
        helpers = [_start(t, run, helper_configs(t)) for t in targets if helper_configs(t)]
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
        for family in FAMILIES:
            for ns, rules in queue_rules(targets, macs, family=family).items():
                iptables_restore(ns, rules, ns, family)
        lines = delay_lines(run)
        lines.next_index = max([lines.next_index, *(t.index + 1 for t in targets)])
        lines.macs.update(macs)
        for helper in helpers:
            helper.fed = frozenset(d for d in DIRECTIONS if helper.target.impairment(d).delays)
            lines.helpers[helper.target.node] = helper
        for family in FAMILIES:
            lines.rules.setdefault(family, {}).update(lines.wanted_rules(family))
        info: dict[str, LinkRecord] = {t.node: {} for t in targets}
        for helper in helpers:
            info[helper.target.node] = {"helper_pid": helper.proc.pid, "log": str(helper.log)}
        return info


def relink(target: LinkTarget) -> None:
    """Make `target` (a link of a built network, any `index`) the link's impairment, while it
    carries traffic; see the module's docstring for what happens to each direction."""
    run = _owners.get(target.a_ns)
    if run is None:
        raise SimnetError(
            f"{target.node}: no network of this process owns namespace {target.a_ns}, so its "
            "link cannot be changed from here"
        )
    lines = delay_lines(run)
    with lines.lock:
        _relink(run, lines, target)


def _relink(run: Run, lines: DelayLines, target: LinkTarget) -> None:
    node = target.node
    helper = lines.helpers.get(node)
    fed = helper.fed if helper is not None else frozenset()
    delaying = frozenset(d for d in DIRECTIONS if target.impairment(d).delays)
    if helper is not None:
        target = replace(target, index=helper.target.index)
    elif delaying:
        target = replace(target, index=lines.next_index)
        lines.next_index += 1
    lined = fed | delaying
    configs = [line_config(target, d) for d in DIRECTIONS if d in lined]
    started = _start(target, run, configs) if helper is None and configs else None
    for direction in DIRECTIONS:
        _reshape(target, direction, lined=direction in lined)
    if started is not None:
        wait_ready([started], READY_DEADLINE_S)
        helper = lines.helpers[node] = started
        links = run.info.setdefault("links", {"backend": NfqueueBackend.name, "nodes": {}})
        links["nodes"].setdefault(node, {}).update(
            {"helper_pid": started.proc.pid, "log": str(started.log)}
        )
        run.save()
    elif helper is not None:
        reconfigure(helper, configs)
    if helper is None:
        return  # no delay line before or after: the rate and loss were all there was to change
    helper.target = target
    if lined != fed:
        helper.fed = lined
        if target.b_bridge is not None and "up" in lined and node not in lines.macs:
            lines.macs[node] = mac_of(target.a_ns, target.a_if)
        for family in FAMILIES:
            kept = lines.rules.setdefault(family, {})
            for ns, rules in lines.wanted_rules(family).items():
                if kept.get(ns) != rules:
                    iptables_restore(ns, rules, ns, family)
                    kept[ns] = rules


def _reshape(target: LinkTarget, direction: Direction, lined: bool) -> None:
    """Replace one direction's rate (tbf) and loss/duplication (nftables egress chain)."""
    ns, dev = target.sender(direction)
    where = f"{target.node} ({direction})"
    clear_egress(ns, dev, NFT_TABLE)
    tc_batch(ns, tbf_batch(target, direction), where)
    nft(ns, egress_chain(target, direction, lined=lined), where)


def _start(target: LinkTarget, run: Run, configs: Sequence[DirectionConfig]) -> Helper:
    log = run.workdir / f"link-{target.node}.log"
    with log.open("wb") as sink:
        proc = start(
            run,
            f"link-{target.node}",
            helper_argv(target, configs),
            ns=target.a_ns,
            log=log,
            stdin=subprocess.PIPE,  # its control channel, kept open for the run
            stdout=subprocess.PIPE,
            stderr=sink,
        )
    return Helper(target, proc.popen, log)


def reconfigure(helper: Helper, configs: Sequence[DirectionConfig]) -> None:
    """Send `configs` to a running helper and wait for its answer."""
    stdin = helper.proc.stdin
    if stdin is None:
        raise SimnetError(f"the link helper of {helper.target.node} has no control channel")
    try:
        stdin.write(encode(list(configs)).encode() + b"\n")
        stdin.flush()
    except OSError as exc:
        raise SimnetError(
            f"the link helper of {helper.target.node} is gone ({exc}){_log_tail(helper)}"
        ) from None
    answer = _next_lines([helper], CHANGE_DEADLINE_S, "reconfigured")[0]
    if answer != "ok":
        raise SimnetError(
            f"the link helper of {helper.target.node} refused the new link: "
            f"{answer.removeprefix('error ')}"
        )


def lateness(run: Run) -> list[Lateness]:
    """Every delay line direction of `run` (named `<node>.<direction>`): its releases since the
    previous call of this function, or since the helper started (each helper answers a `stats`
    line and resets its counters; see `nfqueue_helper`). Empty for a run without delay lines.
    A helper that does not answer raises SimnetError, as a change would."""
    lines = delay_lines(run)
    with lines.lock:
        helpers = list(lines.helpers.values())
        for helper in helpers:
            stdin = helper.proc.stdin
            if stdin is None:
                raise SimnetError(f"the link helper of {helper.target.node} has no control channel")
            try:
                stdin.write(STATS_REQUEST.encode() + b"\n")
                stdin.flush()
            except OSError as exc:
                raise SimnetError(
                    f"the link helper of {helper.target.node} is gone ({exc}){_log_tail(helper)}"
                ) from None
        found: list[Lateness] = []
        for helper, answer in zip(
            helpers, _next_lines(helpers, CHANGE_DEADLINE_S, "counted"), strict=True
        ):
            try:
                found.extend(decode_stats(answer))
            except ValueError as exc:
                raise SimnetError(f"the link helper of {helper.target.node}: {exc}") from None
    return found


def wait_ready(helpers: Sequence[Helper], deadline_s: float) -> None:
    """Wait until every helper has printed `ready`; fail with its log if one exits or stalls."""
    for helper, line in zip(helpers, _next_lines(helpers, deadline_s, "ready"), strict=True):
        if line != "ready":
            raise SimnetError(
                f"the link helper of {helper.target.node} said {line!r} instead of ready"
                f"{_log_tail(helper)}"
            )


def _next_lines(helpers: Sequence[Helper], deadline_s: float, state: str) -> list[str]:
    """The next line each helper writes on its stdout (read as it comes, never blocking on one
    helper while another has answered); fail with its log if one exits or stalls first."""
    got: dict[int, str] = {}
    for i, helper in enumerate(helpers):
        if b"\n" in helper.output:
            line, helper.output = helper.output.split(b"\n", 1)
            got[i] = line.decode(errors="replace").strip()
    pending = {
        h.proc.stdout.fileno(): (i, h)
        for i, h in enumerate(helpers)
        if i not in got and h.proc.stdout is not None
    }
    deadline = time.monotonic() + deadline_s
    with selectors.DefaultSelector() as selector:
        for fd in pending:
            selector.register(fd, selectors.EVENT_READ)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                _, late = next(iter(pending.values()))
                raise SimnetError(
                    f"the link helper of {late.target.node} was not {state} after "
                    f"{deadline_s:g} s{_log_tail(late)}"
                )
            for key, _ in selector.select(left):
                i, helper = pending[key.fd]
                chunk = os.read(key.fd, 256)
                helper.output += chunk
                if b"\n" in helper.output:
                    line, helper.output = helper.output.split(b"\n", 1)
                    got[i] = line.decode(errors="replace").strip()
                    selector.unregister(key.fd)
                    del pending[key.fd]
                elif not chunk:
                    code = helper.proc.wait()
                    raise SimnetError(
                        f"the link helper of {helper.target.node} exited with {code} before it "
                        f"was {state}{_log_tail(helper)}",
                        fix="`simnet doctor` checks NFQUEUE support",
                    )
    return [got[i] for i in range(len(helpers))]


def _log_tail(helper: Helper) -> str:
    try:
        text = helper.log.read_text(errors="replace").strip()
    except OSError:
        return ""
    return f": {text[-500:]}" if text else ""
