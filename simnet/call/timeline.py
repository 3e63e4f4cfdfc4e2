"""A call's timeline: network changes made while the call runs, and how the call took them.

The orchestrator watches both agents' events as they arrive. When the offerer's data channel
opens, each event is applied `at_s` later (the kernel work in a thread: `netns.entered` must not
span an await), and its completion time recorded. Both agents report every ICE and connection
state change ("ice_state" events, one shared monotonic clock), so afterwards each event gets:

* `at_ms`: when the change was in place, after the offerer's data channel opened;
* `noticed_ms`: the first state change of either peer away from connected (ICE not
  completed/connected, or the connection not connected) after the event and before the next
  disruptive event (`link`, `cut`, `nat-flush`, `move`; a `restore` or an `ice-restart` does
  not end a disruption's window);
* `recovered_ms`: after that, the first moment both peers are connected again;
* `failed_ms`: the first ICE "failed" or "closed" in the event's window;
* for a cut, `recovery_ms`: `recovered_ms` counted from the start of the cut's `restore`;

both relative to the event (a `restore` or an `ice-restart` has neither: the disruption's
`recovered_ms` says it), and `recovered` overall: both peers connected when the call ended.
`timeline_states` lists every state change (ms after the data channel opened,
peer:kind:state) until a peer closes.

A `move` also gets `address` (the host's new address) and `forgotten` (the conntrack entries of
the old address its old NAT deleted). An `ice-restart` is a command to the offerer's agent
(`{"cmd": "ice-restart"}`, docs/peer-protocol.md), not kernel work; its `at_ms` is when the
command was sent, and from what the peers report it gets `restart_supported` (the offerer's
answer; false with `error` saying why, e.g. aiortc has none), `restart_started_ms` (the
offerer's new offer with new ICE credentials exists), `restart_connected_ms` (the offerer's ICE
connected again after it), `media_flowing_ms` (the later of the two peers' first media packet
received after ICE came back: media flows both ways again) and `restart_failed` (the reason,
when the offerer reports the restart failed), all relative to the command.

Besides aiortc's own states, each agent reports ICE "disconnected"/"connected" as a browser
would (`simnet.peer.aiortc.liveness`: 2.5 s without a packet from the peer by default), so a cut is
noticed within seconds and a restore shows as "recovered". aioice's consent freshness still
closes the ICE connection after ~30 s of a dead path ("failed"/"closed", `failed_ms`), and
aiortc has no ICE restart: a call whose ICE failed never recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from simnet.errors import SimnetError
from simnet.net.builder import Network
from simnet.net.impair import live
from simnet.net.plan import Attachment, Veth
from simnet.quantile import quantile
from simnet.results.schema import Scalar
from simnet.scenario.model import DISRUPTIVE_ACTIONS, CallSpec, Scenario, TimelineEvent

CONNECTED = {"ice": frozenset({"completed", "connected"}), "connection": frozenset({"connected"})}
#: events that repair rather than disrupt: neither noticed nor failed is theirs
CALM_ACTIONS = frozenset({"restore", "ice-restart"})


@dataclass(frozen=True)
class Check:
    """A liveness check (`simnet.peer.aiortc.liveness`): when it was sent, its round trip or
    None."""

    t: float
    peer: str
    rtt_ms: float | None


@dataclass(frozen=True)
class StateChange:
    t: float
    peer: str
    kind: str  # "ice" (iceConnectionState) or "connection" (connectionState)
    state: str


@dataclass(frozen=True)
class Note:
    """Something a peer reported about an ICE restart: its answer to the command
    ("ice_restart": `supported`, `reason`), a milestone ("ice_restart_started",
    "ice_restart_connected", "ice_restart_failed" with `reason`), or the first media received
    after ICE came back ("media_resumed")."""

    t: float
    peer: str
    name: str
    supported: bool | None = None
    reason: str | None = None


#: the events of a restart a Timeline keeps (`Note.name`)
RESTART_EVENTS = frozenset(
    {"ice_restart", "ice_restart_started", "ice_restart_connected", "ice_restart_failed",
     "media_resumed"}
)  # fmt: skip

#: sends a mid-call command (name) to a peer's agent (host name); set by the call's runner
Commander = Callable[[str, str], Awaitable[None]]


@dataclass
class Timeline:
    """Applies a call's timeline to `network` and collects what the agents report."""

    network: Network
    scenario: Scenario
    call: CallSpec
    events: list[TimelineEvent] = field(init=False)
    applied: list[float | None] = field(init=False)
    begun: list[float | None] = field(init=False)
    errors: list[str | None] = field(init=False)
    states: list[StateChange] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    closing: dict[str, float] = field(default_factory=dict)
    dc_t: float | None = None
    send: Commander | None = None  # how an ice-restart reaches the offerer's agent
    moved: list[tuple[str, int] | None] = field(init=False)  # a move's (address, forgotten)
    _opened: asyncio.Event = field(default_factory=asyncio.Event)
    _cut: set[Veth] = field(default_factory=set)  # restored at the end
    _relinked: set[str] = field(default_factory=set)
    _where: dict[str, str] = field(default_factory=dict)  # a moved host's network now
    _stopping: bool = False

    def __post_init__(self) -> None:
        # an ice-restart without a target is the offerer's, and its row says so
        self.events = [
            e if e.target is not None else e.model_copy(update={"target": self.call.offerer})
            for e in self.call.ordered_timeline
        ]
        self.applied = [None] * len(self.events)
        self.begun = [None] * len(self.events)
        self.errors = [None] * len(self.events)
        self.moved = [None] * len(self.events)

    def observer(self, peer: str) -> Callable[[Mapping[str, object]], None]:
        """An `on_event` for `peer`'s agent: it gets each event as the agent sent it (JSON)."""

        def seen(event: Mapping[str, object]) -> None:
            name, stamp = event.get("event"), event.get("t")
            t = float(stamp) if isinstance(stamp, int | float | str) else time.monotonic()
            if name == "ice_state":
                self.states.append(StateChange(t, peer, str(event["kind"]), str(event["state"])))
            elif name == "ice_check":
                rtt = event.get("rtt_ms")
                self.checks.append(
                    Check(t, peer, float(rtt) if isinstance(rtt, int | float | str) else None)
                )
            elif name == "closing":
                self.closing.setdefault(peer, t)
            elif name == "dc_open" and peer == self.call.offerer and self.dc_t is None:
                self.dc_t = t
                self._opened.set()
            elif name in RESTART_EVENTS:
                supported = event.get("supported")
                reason = event.get("reason")
                self.notes.append(
                    Note(
                        t,
                        peer,
                        str(name),
                        None if supported is None else bool(supported),
                        None if reason is None else str(reason),
                    )
                )
            elif name == "error" and event.get("cmd") == "ice-restart":
                # a peer that does not know the command (`PeerAgent.command` marks its answer)
                reason = f"the peer refused the command: {event.get('error')}"
                self.notes.append(Note(t, peer, "ice_restart", False, reason))

        return seen

    async def run(self) -> None:
        """Apply each event on time (returns early if the data channel never opens)."""
        await self._opened.wait()
        assert self.dc_t is not None
        for i, event in enumerate(self.events):
            delay = self.dc_t + event.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                self.begun[i] = time.monotonic()
                if event.action == "ice-restart":
                    await self._restart(event)
                else:
                    self.moved[i] = await asyncio.shield(asyncio.to_thread(self._apply, event))
                self.applied[i] = time.monotonic()
            except SimnetError as exc:
                self.errors[i] = str(exc)

    async def _restart(self, event: TimelineEvent) -> None:
        if self.send is None:
            raise SimnetError("no peer agent to send the ice-restart command to")
        assert event.target is not None
        await self.send(event.target, "ice-restart")

    def _apply(self, event: TimelineEvent) -> tuple[str, int] | None:
        """The kernel work of one event; a move returns (new address, conntrack entries its old
        NAT forgot)."""
        plan, ns_of = self.network.plan, self._namespaces()
        target = event.target
        assert target is not None
        if event.action == "nat-flush":
            live.nat_flush(ns_of[target], target)
        elif event.action == "move":
            assert event.to is not None
            new = self._attachments(target)[event.to]
            forgotten = self._move(target, event.to)
            return str(new.address.ip), forgotten
        elif event.action == "cut":
            veth = self._veth(target)
            self._cut.add(veth)
            live.cut(plan, ns_of, target, veth)
        elif event.action == "link":
            self._relinked.add(target)
            live.set_link(plan, ns_of, target, event.link)
        else:
            self._restore(target)
        return None

    def _attachments(self, host: str) -> dict[str, Attachment]:
        found = self.network.plan.attachments.get(host)
        if not found:
            raise SimnetError(f"'{host}' has no other network planned to move to")
        return found

    def _home(self, host: str) -> str:
        """The network `host` was built on."""
        behind = self.network.plan.nodes[host].behind
        assert behind is not None
        return behind

    def _veth(self, node: str) -> Veth:
        """The cable `node` is attached by now (a moved host's current one)."""
        where = self._where.get(node)
        if where is not None:
            return self.network.plan.attachments[node][where].veth
        return live.attachment(self.network.plan, node)

    def _move(self, host: str, to: str) -> int:
        attachments = self._attachments(host)
        now = self._where.get(host, self._home(host))
        if to not in attachments:
            raise SimnetError(f"'{host}' has no interface planned on '{to}'")
        forgotten = live.move(self._namespaces(), host, attachments[now], attachments[to])
        self._where[host] = to
        return forgotten

    def _restore(self, node: str) -> None:
        plan, ns_of = self.network.plan, self._namespaces()
        for veth in [v for v in self._cut if v.a == node]:
            live.uncut(plan, ns_of, node, veth)
            self._cut.discard(veth)
        if node in self._relinked:
            live.set_link(plan, ns_of, node, live.attachment(plan, node).link)
            self._relinked.discard(node)

    def _put_back(self) -> None:
        """After the call: every cut and changed link as the scenario has it, every moved host
        on the network it was built on."""
        for node in sorted({v.a for v in self._cut} | self._relinked):
            self._restore(node)
        for host in sorted(self._where):
            if self._where[host] != self._home(host):
                self._move(host, self._home(host))
        self._where.clear()

    def _namespaces(self) -> dict[str, str]:
        return {name: self.network.ns(name) for name in self.network.plan.nodes}

    async def stop(self, task: asyncio.Task[None]) -> None:
        """End the timeline task, then put the network back as the scenario has it."""
        self._stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(self._put_back)

    def columns(self) -> dict[str, Scalar]:
        peers = (self.call.offerer, self.call.answerer)
        restarts = restart_columns(self.events, self.applied, self.notes, peers)
        # an ice-restart the offerer could not make has its error among the restart's columns
        refused = [restarts.pop(f"event{i}_error", None) for i in range(len(self.events))]
        errors = [
            mine if mine is not None else None if theirs is None else str(theirs)
            for mine, theirs in zip(self.errors, refused, strict=True)
        ]
        moves: dict[str, Scalar] = {}
        for i, moved in enumerate(self.moved):
            if self.events[i].action == "move":
                moves[f"event{i}_to"] = self.events[i].to
                moves[f"event{i}_address"] = moved[0] if moved else None
                moves[f"event{i}_forgotten"] = moved[1] if moved else None
        return {
            **timeline_columns(
                self.events,
                self.applied,
                errors,
                self.dc_t,
                self.states,
                self.closing,
                peers,
                begun=self.begun,
            ),
            **moves,
            **restarts,
            **path_columns(
                self.applied, self.dc_t, self.checks, self.closing, peers, begun=self.begun
            ),
        }


def restart_columns(
    events: Sequence[TimelineEvent],
    applied: Sequence[float | None],
    notes: Sequence[Note],
    peers: Sequence[str],
) -> dict[str, Scalar]:
    """The columns of each `ice-restart` event (see the module's docstring), from the peers'
    reports between the command and the next ice-restart (or the end). `event<i>_error` is
    set when the restart was not made: the offerer said it cannot (its reason), or said
    nothing. Pure, for unit tests."""
    offerer = peers[0]
    restarts = [i for i, e in enumerate(events) if e.action == "ice-restart"]
    row: dict[str, Scalar] = {}
    for n, i in enumerate(restarts):
        at = applied[i]
        if at is None:  # the command could not be sent: the event's own error says why
            row.update(
                {
                    f"event{i}_restart_supported": None,
                    f"event{i}_restart_started_ms": None,
                    f"event{i}_restart_connected_ms": None,
                    f"event{i}_media_flowing_ms": None,
                    f"event{i}_restart_failed": None,
                }
            )
            continue
        following = [applied[j] for j in restarts[n + 1 :] if applied[j] is not None]
        end = min((t for t in following if t is not None), default=math.inf)
        # the answer may be stamped a moment before the command's write returned
        window = [note for note in notes if at - 1.0 <= note.t < end]

        def first(name: str, peer: str, window: list[Note] = window) -> Note | None:
            return next((x for x in window if x.name == name and x.peer == peer), None)

        def ms(note: Note | None, at: float = at) -> float | None:
            return None if note is None else (note.t - at) * 1000

        answer = first("ice_restart", offerer)
        failed = first("ice_restart_failed", offerer)
        resumed = [first("media_resumed", peer) for peer in peers]
        flowing = None
        if all(note is not None for note in resumed):
            flowing = max(ms(note) or 0.0 for note in resumed)
        row.update(
            {
                f"event{i}_restart_supported": None if answer is None else answer.supported,
                f"event{i}_restart_started_ms": ms(first("ice_restart_started", offerer)),
                f"event{i}_restart_connected_ms": ms(first("ice_restart_connected", offerer)),
                f"event{i}_media_flowing_ms": flowing,
                f"event{i}_restart_failed": None if failed is None else failed.reason or "failed",
            }
        )
        if answer is None:
            row[f"event{i}_error"] = "the offerer did not answer the ice-restart command"
        elif not answer.supported:
            row[f"event{i}_error"] = answer.reason or "the offerer cannot restart ICE"
    return row


def timeline_columns(
    events: Sequence[TimelineEvent],
    applied: Sequence[float | None],
    errors: Sequence[str | None],
    dc_t: float | None,
    states: Sequence[StateChange],
    closing: dict[str, float],
    peers: Sequence[str],
    begun: Sequence[float | None] | None = None,
) -> dict[str, Scalar]:
    """The row's timeline columns (see the module's docstring); pure, for unit tests.

    `begun` (default: `applied`) is when each event's kernel work started: a restore lets
    packets through from its first step, so a recovery is timed from there."""
    begun = applied if begun is None else begun
    # once either peer closes, the other only sees the call ending: its states say nothing of
    # the network
    ended = min(closing.values(), default=math.inf)
    changes = sorted((c for c in states if c.t < ended), key=lambda c: c.t)

    def connected_after(index: int) -> bool:
        """Both peers connected once change `index` (and all before it) happened."""
        last: dict[tuple[str, str], str] = {}
        for change in changes[: index + 1]:
            last[(change.peer, change.kind)] = change.state
        return all(last.get((peer, kind)) in ok for peer in peers for kind, ok in CONNECTED.items())

    row: dict[str, Scalar] = {}
    for i, event in enumerate(events):
        at = applied[i]
        start = math.inf if at is None else at
        end = next(
            (
                t
                for j in range(i + 1, len(events))
                if events[j].action in DISRUPTIVE_ACTIONS and (t := applied[j]) is not None
            ),
            math.inf,
        )
        noticed = next(
            (
                k
                for k, c in enumerate(changes)
                if start <= c.t < end and c.state not in CONNECTED[c.kind]
            ),
            None,
        )
        if event.action in CALM_ACTIONS:
            noticed = None  # it disrupts nothing: the disruption's columns tell the recovery
        recovered = None
        if noticed is not None:
            recovered = next(
                (k for k in range(noticed + 1, len(changes)) if connected_after(k)), None
            )

        failed = next(
            (
                k
                for k, c in enumerate(changes)
                if start <= c.t < end and c.kind == "ice" and c.state in ("failed", "closed")
            ),
            None,
        )
        if event.action in CALM_ACTIONS:
            failed = None
        restored = next(
            (
                begun[j]
                for j in range(i + 1, len(events))
                if events[j].action == "restore" and events[j].target == event.target
            ),
            None,
        )

        def rel(k: int | None, at: float | None = at) -> float | None:
            return None if k is None or at is None else (changes[k].t - at) * 1000

        notice = changes[noticed] if noticed is not None else None
        row.update(
            {
                f"event{i}_action": event.action,
                f"event{i}_target": event.target,
                f"event{i}_at_ms": None if at is None or dc_t is None else (at - dc_t) * 1000,
                f"event{i}_noticed_ms": rel(noticed),
                f"event{i}_noticed_state": (
                    f"{notice.peer}:{notice.kind}:{notice.state}" if notice else None
                ),
                f"event{i}_recovered_ms": rel(recovered),
                f"event{i}_failed_ms": rel(failed),
            }
        )
        if event.action == "cut":  # how long the call took to come back once the link did
            row[f"event{i}_recovery_ms"] = (
                rel(recovered, restored) if restored is not None and recovered is not None else None
            )
        if errors[i] is not None:
            row[f"event{i}_error"] = errors[i]
            row.setdefault(
                "timeline_error", f"event {i} ({event.action} {event.target}): {errors[i]}"
            )
    row["timeline_states"] = "; ".join(
        f"{(c.t - dc_t) * 1000:.0f}ms {c.peer}:{c.kind}:{c.state}" for c in changes if dc_t
    )
    row["recovered"] = dc_t is not None and bool(changes) and connected_after(len(changes) - 1)
    return row


def path_columns(
    applied: Sequence[float | None],
    dc_t: float | None,
    checks: Sequence[Check],
    closing: dict[str, float],
    peers: Sequence[str],
    begun: Sequence[float | None] | None = None,
) -> dict[str, Scalar]:
    """What the call's own liveness checks saw of the path between one event and the next (or
    the end): `event<i>_path_rtt_ms` (median), `_path_loss_pct` and `_path_checks`, and the
    same before the first event as `path_*_before`. Both peers' checks cross the same path and
    are pooled; `_path_loss_pct_offerer` / `_answerer` split the loss by who checked, which shows
    a path that works one way only (a check's answer goes back to where the check came from).
    A window runs from when its event's change was complete (`applied`) to when the next
    event's change began (`begun`): a check sent while a change was being made belongs to
    neither side of it (seen: a check sent during a NAT flush was lost, and counted against the
    clean link before it). A window with no check has None. Pure, for unit tests."""
    if dc_t is None:
        return {}
    end = min(closing.values(), default=math.inf)
    starts = [dc_t, *(math.inf if a is None else a for a in applied)]
    began = list(begun) if begun is not None else list(applied)
    row: dict[str, Scalar] = {}
    for k, start in enumerate(starts):
        # the next event that was made: its change began where this window ends
        stop = next(
            (b if b is not None else a for a, b in zip(applied[k:], began[k:], strict=True)
             if a is not None),
            end,
        )  # fmt: skip
        window = [c for c in checks if start <= c.t < min(stop, end)]
        answered = [c.rtt_ms for c in window if c.rtt_ms is not None]
        prefix, suffix = ("path", "_before") if k == 0 else (f"event{k - 1}_path", "")
        row[f"{prefix}_rtt_ms{suffix}"] = quantile(answered, 0.5)
        row[f"{prefix}_loss_pct{suffix}"] = (
            100 * (len(window) - len(answered)) / len(window) if window else None
        )
        row[f"{prefix}_checks{suffix}"] = len(window)
        for role, peer in zip(("offerer", "answerer"), peers, strict=True):
            mine = [c for c in window if c.peer == peer]
            lost = sum(c.rtt_ms is None for c in mine)
            key = f"{prefix}_loss_pct_{role}{suffix}"
            row[key] = 100 * lost / len(mine) if mine else None
    return row
