"""The result row: one typed, versioned schema for every call simnet stores.

A stored row is wide (one Parquet row per call, a column per figure) because that is what users
load into pandas and what `compare` and `report` group. Between simnet's layers a row is typed,
each part of it; one place (`ResultRow.columns`) flattens the parts to the stored column names,
which users' stored results have:

- `CallOutcome`: what the two peers measured (built by `simnet.call.row.call_row`), with its
  `FamilyFigures` (the address families of the call) on a network that carries IPv6;
- `EmulatorFigures`: how busy the userspace link emulator was (absent without a delay line);
- `timeline`: the `event<i>_*` and `path_*` columns of a call with a timeline
  (`simnet.call.timeline`);
- `cell`: the columns the job adds to place the call in its cell (`nat_a`/`nat_b` of the matrix,
  and its `family` where the networks carry IPv6; `sweep`, `axis.<path>`, `sweep_jobs` of a
  sweep; `network` and `needs` of the interop grid);
- the run's identity (`scenario`, `scenario_hash`, `seed`, `run`, `run_id`, `wall_ms`), its
  variant (`overrides`: the `--set`s it ran with; rows without the column had none recorded)
  and `schema_version`.

Versions: 1 is every row written before the column existed (they have the same columns); 3
added which peer each side was (`offerer_peer`, `answerer_peer` and their `_version`s), which
older rows get as the default kind (`simnet.peerkinds.DEFAULT_KIND`, aiortc) when read;
`SCHEMA_VERSION` is what this simnet writes. `check_version` (used by `simnet.results.load`)
gives old rows their version and refuses rows of a newer simnet than this one, instead of
misreading them.

Imports no runtime code: readers of stored results need neither root nor aiortc.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simnet.callspec import ROW_MILESTONES, TurnTransport
from simnet.errors import SimnetError, printable
from simnet.peerkinds import DEFAULT_KIND

SCHEMA_VERSION = 3
LEGACY_VERSION = 1  # rows stored before `schema_version` existed
PEER_COLUMNS_SINCE = 3  # before: no peer columns, every peer was simnet's aiortc agent
PEER_KIND_COLUMNS = ("offerer_peer", "answerer_peer")

SIDES = ("offerer", "answerer")
MEDIA_KINDS = ("audio", "video")
MEDIA_FIGURES = (
    "sent_kbps",
    "recv_fps",
    "recv_frames",
    "recv_lost",
    "recv_jitter_ms",
    "recv_kbps",
    "rtt_ms",
)
MILESTONE_COLUMN = re.compile(rf"^({'|'.join(SIDES)})_({'|'.join(ROW_MILESTONES)})_ms$")
MEDIA_COLUMN = re.compile(
    rf"^({'|'.join(SIDES)})_({'|'.join(MEDIA_KINDS)})_({'|'.join(MEDIA_FIGURES)})$"
)


class SchemaError(SimnetError, ValueError):
    """Stored results this simnet cannot read as they are (e.g. written by a newer version)."""

    exit_code = 2


#: one stored column's value where it is a plain scalar (the timeline's columns)
Scalar = str | int | float | bool | None


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TurnAttemptRecord(_Part):
    """One TURN allocation a side tried while gathering (`simnet.peer.protocol.TurnAttempt`),
    with the side that tried it: both sides allocate on the same servers. Stored as an element
    of the `turn_attempts` column (JSON text), with these keys in this order."""

    server: str  # "ip:port"
    transport: TurnTransport
    ok: bool
    error: str | None = None
    error_code: int | None = None  # STUN error code, e.g. 401
    elapsed_ms: float
    side: str  # offerer or answerer
    # behind an HTTP proxy, the CONNECT round trip within elapsed_ms (aiortc's agent); a key
    # only attempts that went through a proxy have, so every other row reads as it always did
    proxy_ms: float | None = Field(default=None, exclude_if=lambda v: v is None)


def call_succeeded(connected: object, error: object) -> bool:
    """Whether a call succeeded: it connected and ended without any error. The one definition
    every output uses (`simnet run`'s verdict, `compare`'s and `report`'s success rate, the
    matrix, the population's shares): a call that connected and then timed out on its data
    channel (`timeout:datachannel`) failed. `connected`/`error` as stored: a missing value
    (None, NaN) is not connected / no error."""
    if _missing(connected) or not bool(connected):
        return False
    return _missing(error) or error == ""


def _missing(value: object) -> bool:
    """None, NaN or pandas' NA: a stored value that is not there."""
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or another non-scalar is there
        return False


#: what a call did, as every output names it: the path of a call that succeeded, else failed
Outcome = Literal["direct", "relay", "failed"]


def call_outcome_of(connected: object, error: object, path: object) -> Outcome:
    """A call's outcome (`call_succeeded`): "failed" for a failed call whatever pair ICE had
    selected, else its path ("relay" through TURN, else "direct")."""
    if not call_succeeded(connected, error):
        return "failed"
    return "relay" if path == "relay" else "direct"


IpFamily = Literal["ipv4", "ipv6"]
FAMILY_COLUMNS = (
    "ip_family",
    "via_nat64",
    "offerer_via_nat64",
    "answerer_via_nat64",
    "local_candidates_ipv4",
    "local_candidates_ipv6",
    "remote_candidates_ipv4",
    "remote_candidates_ipv6",
)


class FamilyFigures(_Part):
    """The address families of a call, stored only in rows of a network that carries IPv6
    (an IPv4-only network's rows are as they always were; a row without these columns is an
    IPv4 call). Defined in docs/guides/ipv6.md#peers-and-turn-on-ipv6:

    - `ip_family`: the family of the offerer's selected pair (both candidates share it; for a
      relayed pair, the relayed address's family); None without a pair;
    - `offerer_via_nat64`, `answerer_via_nat64`: whether that side's packets crossed a NAT64
      (`simnet.call.row.crossed_nat64`); None where the side has no selected pair or no result;
      `via_nat64`: either side's did;
    - candidates per family as the offerer counted them: its own (`local_candidates_*`) and
      those it received from the answerer (`remote_candidates_*`).
    """

    ip_family: IpFamily | None = None
    via_nat64: bool | None = None
    offerer_via_nat64: bool | None = None
    answerer_via_nat64: bool | None = None
    local_candidates_ipv4: int = 0
    local_candidates_ipv6: int = 0
    remote_candidates_ipv4: int = 0
    remote_candidates_ipv6: int = 0


class CallOutcome(_Part):
    """A call as both peers measured it: the row's call columns, typed.

    `milestones` holds the `<side>_<milestone>_ms` columns (offsets from the offerer's
    `offer_created`), `media` the `<side>_<kind>_<figure>` columns; both are stored flat.
    """

    connected: bool
    error: str | None = None
    error_detail: str | None = None
    path: Literal["direct", "relay"] | None = None
    local_candidate: str | None = None
    remote_candidate: str | None = None
    local_protocol: str | None = None
    relay_protocol: TurnTransport | None = None
    relay_server: str | None = None
    # The relayed side read no TURN client and the transport was taken from the call's only
    # TURN URL (see simnet.run.one_call).
    relay_protocol_inferred: bool = False
    ice_connect_ms: float | None = None
    setup_ms: float | None = None
    milestones: dict[str, float] = Field(default_factory=dict)
    dc_goodput_mbps: float | None = None
    rtt_ms: float | None = None
    dc_bytes: int | None = None
    media: dict[str, float | int | None] = Field(default_factory=dict)
    ice_disconnects: int = 0
    ice_disconnected_ms: float | None = None
    turn_attempts: list[TurnAttemptRecord] = Field(default_factory=list)
    # A side behind a `proxy_only` network: whether it tunnelled through the proxy during the
    # call, and the TURN server (host:port) it reached through `CONNECT` (the proxy's log;
    # simnet.run.proxied). None: no side was behind a proxy.
    via_proxy: bool | None = None
    proxy_target: str | None = None
    # the time the proxy added before the TURN allocation: the slowest tunnel round trip of an
    # allocation that worked (`TurnAttemptRecord.proxy_ms`); None where no side timed its own
    # (a browser's tunnels are its network stack's)
    proxy_connect_ms: float | None = None
    relay_region: str | None = (
        None  # `region` of the TURN server that relayed (simnet.run.one_call)
    )
    # Which WebRTC stack each side was (`hosts.X.peer`: aiortc, chromium, external) and the
    # version its peer announced (e.g. "aiortc 1.16.0", "Chromium 156.0.8078.108"). Rows of
    # schema version 1 and 2 were all aiortc (`check_version` says so).
    offerer_peer: str | None = None
    answerer_peer: str | None = None
    offerer_peer_version: str | None = None
    answerer_peer_version: str | None = None
    # A relayed call where a pair of two non-relayed candidates also passed its connectivity
    # checks: the relay was ICE's choice (a stack that nominates the first pair to succeed,
    # as aiortc does), not the network's. None where no side's stack reports its checks.
    direct_pair_succeeded: bool | None = None
    # The call's address families (`FamilyFigures`): set on a network that carries IPv6.
    families: FamilyFigures | None = None

    @property
    def succeeded(self) -> bool:
        """Connected and no error (`call_succeeded`)."""
        return call_succeeded(self.connected, self.error)

    @property
    def outcome(self) -> Outcome:
        """direct, relay or failed (`call_outcome_of`)."""
        return call_outcome_of(self.connected, self.error, self.path)

    @model_validator(mode="after")
    def _known_columns(self) -> CallOutcome:
        for name in self.milestones:
            if not MILESTONE_COLUMN.match(name):
                raise ValueError(f"milestone column {name!r} is not <side>_<milestone>_ms")
        for name in self.media:
            if not MEDIA_COLUMN.match(name):
                raise ValueError(f"media column {name!r} is not <side>_<kind>_<figure>")
        return self

    def columns(self) -> dict[str, Any]:
        """The stored columns, in the order rows have always had them."""
        row = self.model_dump(
            exclude={
                "milestones",
                "media",
                "relay_protocol_inferred",
                "direct_pair_succeeded",
                "families",
                "via_proxy",
                "proxy_target",
                "proxy_connect_ms",
            }
        )
        flat: dict[str, Any] = {}
        for name, value in row.items():
            if name == "dc_goodput_mbps":  # milestones come before the data-channel figures
                flat.update(self.milestones)
            if name == "ice_disconnects":
                flat.update(self.media)
            flat[name] = value
        if self.relay_protocol_inferred:  # a column only rows it concerns have, as before
            flat["relay_protocol_inferred"] = True
        if self.direct_pair_succeeded is not None:  # only where a side's stack reported it
            flat["direct_pair_succeeded"] = self.direct_pair_succeeded
        if self.families is not None:  # only on a network that carries IPv6
            flat.update(self.families.model_dump())
        if self.via_proxy is not None:  # only where a side is behind a proxy_only network
            flat["via_proxy"] = self.via_proxy
            flat["proxy_target"] = self.proxy_target
            flat["proxy_connect_ms"] = self.proxy_connect_ms
        return flat


class EmulatorFigures(_Part):
    """The userspace emulator's load during the call (`simnet.net.impair.pressure`), and how
    punctually its delay lines released the call's packets: released in all, released more
    than 1 ms after their due time, the worst lateness (None: nothing released), and
    `emulator_late` when any was late. The punctuality columns are left out of a row whose
    lines could not be asked; rows stored before they existed lack them too, which reads as
    not measured (no version change: no stored column changed meaning)."""

    emulator_packets: int
    emulator_peak_pps: int
    emulator_dropped: int
    emulator_limited: bool
    link_released_packets: int | None = None
    link_late_packets: int | None = None
    link_late_max_ms: float | None = None
    emulator_late: bool | None = None


IDENTITY = ("scenario", "scenario_hash", "seed", "run", "run_id", "wall_ms")


@dataclasses.dataclass(frozen=True)
class ResultRow(Mapping[str, Any]):
    """One call's stored row. Also a read-only mapping of its stored columns, so code that
    reads rows (`call.expect` checks, summaries, JSON output) reads them by column name."""

    call: CallOutcome
    scenario: str
    scenario_hash: str
    seed: int
    run: int
    run_id: str
    wall_ms: float
    # The `--set`s laid over the scenario file (a sweep point's settings): the variant the call
    # measured, so that reports never pool two variants of one scenario. Stored as JSON text.
    overrides: tuple[str, ...] = ()
    # host -> file name (beside the row's own file) of the pcap of its interface during this call
    # (`simnet run --pcap`); a column only rows with captures have
    pcap_files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    emulator: EmulatorFigures | None = None
    timeline: Mapping[str, Scalar] = dataclasses.field(default_factory=dict)
    cell: Mapping[str, object] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    _flat: dict[str, Any] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        flat: dict[str, Any] = {"schema_version": self.schema_version, **self.call.columns()}
        if self.emulator is not None:
            flat.update(self.emulator.model_dump(exclude_unset=True))
        for part, columns in (("timeline", self.timeline), ("cell", self.cell)):
            own = set(flat) | set(IDENTITY) | {"overrides", "pcap_files"}
            taken = sorted(set(columns) & own)
            if taken:
                raise ValueError(f"{part} columns {taken} would overwrite the row's own")
            flat.update(columns)
        flat.update({name: getattr(self, name) for name in IDENTITY})
        flat["overrides"] = list(self.overrides)
        if self.pcap_files:
            flat["pcap_files"] = dict(self.pcap_files)
        object.__setattr__(self, "_flat", flat)

    def columns(self) -> dict[str, Any]:
        """The row as stored: column name -> value."""
        return dict(self._flat)

    @property
    def succeeded(self) -> bool:
        """Connected and no error: what `simnet run`, `compare`, `report`, the matrix and the
        population all count as a successful call (`call_succeeded`)."""
        return self.call.succeeded

    @property
    def outcome(self) -> Outcome:
        """direct, relay or failed (a failed call's selected pair does not count)."""
        return self.call.outcome

    @property
    def timeline_error(self) -> str | None:
        """The first timeline event that could not be applied, and why (`timeline_error`)."""
        error = self.timeline.get("timeline_error")
        return None if error is None else str(error)

    @property
    def recovered(self) -> bool | None:
        """Whether both peers were connected when a call with a timeline ended (`recovered`);
        None for a call without a timeline."""
        recovered = self.timeline.get("recovered")
        return None if recovered is None else bool(recovered)

    def placed(self, run: int | None = None, **cell: object) -> ResultRow:
        """The same call placed in its job's cell: more `cell` columns, or another `run` index
        (a sweep numbers repetitions per point)."""
        return dataclasses.replace(
            self, run=self.run if run is None else run, cell={**self.cell, **cell}
        )

    def __getitem__(self, key: str) -> Any:
        return self._flat[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._flat)

    def __len__(self) -> int:
        return len(self._flat)


def check_version(frame: pd.DataFrame, source: str = "results") -> pd.DataFrame:
    """`frame` with a `schema_version` on every row: rows stored before the column existed are
    version 1 (same columns). Raises `SchemaError` for rows of a newer simnet."""
    if frame.empty:
        return frame
    if "schema_version" not in frame.columns:
        frame = frame.assign(schema_version=LEGACY_VERSION)
    else:
        raw = frame["schema_version"]
        versions = pd.to_numeric(raw, errors="coerce").where(raw.notna(), LEGACY_VERSION)
        whole = versions.notna() & np.isfinite(versions) & (versions % 1 == 0) & (versions >= 1)
        if not whole.all():
            value = raw[~whole].iloc[0]
            bad = printable((repr(value) if isinstance(value, str) else str(value))[:40])
            raise SchemaError(
                f"{source}: schema_version {bad} is not a result schema version (a whole "
                "number from 1)",
                fix="the file was not written by simnet, or was edited; remove it",
            )
        frame = frame.assign(schema_version=versions.astype("int64"))
    newest = int(frame["schema_version"].max())
    if newest > SCHEMA_VERSION:
        raise SchemaError(
            f"{source}: rows of result schema version {newest}, newer than this simnet reads "
            f"({SCHEMA_VERSION})",
            fix="read them with the simnet version that wrote them (see simnet_version) or newer",
        )
    older = frame["schema_version"] < PEER_COLUMNS_SINCE
    if older.any():
        filled = {
            column: (frame[column] if column in frame.columns else pd.Series(None, frame.index))
            .astype(object)
            .where(~older, DEFAULT_KIND)
            for column in PEER_KIND_COLUMNS
        }
        frame = frame.assign(**filled)
    return frame
