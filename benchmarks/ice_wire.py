"""Each stack's ICE as seen on the wire: nomination, check pacing, retransmission, consent.

Why: the stacks table (docs/guides/stacks.md) says per stack how it nominates, how fast it paces
its connectivity checks, when it retransmits an unanswered check and how often it refreshes
consent. Those are behaviours on the wire, so they are read from packet captures of real calls,
not from the stacks' documentation.

How: per stack, one call between two peers of that stack behind two port-restricted NATs (STUN
only, no TURN: the offerer's first checks are dropped by the answerer's filter until the
answerer has sent its own, so retransmissions are seen), held for `--hold` seconds of media
time, every host captured (`simnet run --pcap`'s machinery). From the offerer's capture (its
LAN side, before NAT: the controlling agent's own checks), every STUN Binding request carrying
USERNAME (an ICE check, not a query to the STUN server):

- nomination: `aggressive` when a request with USE-CANDIDATE went to an address before any
  success response came from it; `regular` when USE-CANDIDATE was only sent after a success on
  that address; `none seen` otherwise;
- pacing (Ta): the gaps between the first transmissions of successive new checks, from the
  first check until the first success response (median, ms, of the gaps over 1 ms), and the
  largest burst (new checks sent within 1 ms of each other);
- retransmission: per check sent more than once (same transaction id), the gaps between its
  transmissions (the first and second gaps, median, ms);
- consent: the gaps between new checks to the address that answered last (the selected pair)
  from 1 s after the first success until the call ends (median, s): RFC 7675 asks for about
  5 s (4-6 s, randomised).

Usage: .venv/bin/python benchmarks/ice_wire.py [--stacks aiortc,pion] [--hold 16] [--json]
       (as root; on a shared machine under `flock /tmp/simnet-it.lock`)
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from statistics import median
from typing import Any

from _runner import run_benchmark
from rich.console import Console
from rich.table import Table

from simnet.peerkinds import NAMED_KINDS
from simnet.run.calls import run_scenario
from simnet.scenario.model import Scenario

COOKIE = 0x2112A442
BINDING_REQUEST, BINDING_SUCCESS = 0x0001, 0x0101
USERNAME, USE_CANDIDATE = 0x0006, 0x0025


def scenario(kind: str, hold_s: float) -> Scenario:
    return Scenario.model_validate(
        {
            "name": f"ice-wire-{kind}",
            "nats": {"a-nat": {"preset": "port-restricted-cone"},
                     "b-nat": {"preset": "port-restricted-cone"}},
            "hosts": {"alice": {"behind": "a-nat", "peer": kind},
                      "bob": {"behind": "b-nat", "peer": kind}},
            "servers": {"stun": {"kind": "stun"}, "signaling": {"kind": "signaling"}},
            "call": {"duration_s": hold_s, "data_bytes": 0, "media": {"audio": True},
                     "liveness": None},  # the stack's own consent, not simnet's checks
        }
    )  # fmt: skip


@dataclass
class Stun:
    t: float
    kind: int
    txid: bytes
    peer: str  # the other end's address:port
    sent: bool  # by the captured host
    attrs: set[int] = field(default_factory=set)


def stun_packets(path: Path) -> list[Stun]:
    """STUN messages of a classic Ethernet pcap of one host's interface (the host's address:
    the one every packet has at one end)."""
    data = path.read_bytes()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    seen: list[tuple[float, str, int, str, int, bytes]] = []
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, included, _ = struct.unpack(f"{order}IIII", data[offset : offset + 16])
        packet = data[offset + 16 : offset + 16 + included]
        offset += 16 + included
        if packet[12:14] != b"\x08\x00" or packet[14 + 9] != 17:
            continue
        ihl = (packet[14] & 0x0F) * 4
        src, dst = packet[14 + 12 : 14 + 16], packet[14 + 16 : 14 + 20]
        udp = 14 + ihl
        sport, dport = struct.unpack("!HH", packet[udp : udp + 4])
        stun = packet[udp + 8 :]
        t = sec + frac / (1e9 if nano else 1e6)
        source, dest = ".".join(map(str, src)), ".".join(map(str, dst))
        seen.append((t, source, sport, dest, dport, stun))
    ends = Counter(a for _, s, _, d, _, _ in seen for a in (s, d))
    me = ends.most_common(1)[0][0] if ends else ""
    out = []
    for t, source, sport, dest, dport, stun in seen:
        if len(stun) < 20 or struct.unpack("!I", stun[4:8])[0] != COOKIE:
            continue
        kind, length = struct.unpack("!HH", stun[:4])
        attrs, at = set(), 20
        while at + 4 <= 20 + length and at + 4 <= len(stun):
            attr, size = struct.unpack("!HH", stun[at : at + 4])
            attrs.add(attr)
            at += 4 + (size + 3) // 4 * 4
        other = f"{dest}:{dport}" if source == me else f"{source}:{sport}"
        out.append(Stun(t, kind, stun[8:20], other, source == me, attrs))
    return out


def wire_figures(messages: list[Stun]) -> dict[str, Any]:
    """The captured host's checks (requests with USERNAME it sent) read as described above."""
    checks = [m for m in messages if m.kind == BINDING_REQUEST and USERNAME in m.attrs and m.sent]
    mine = {m.txid for m in checks}
    successes = [m for m in messages
                 if m.kind == BINDING_SUCCESS and not m.sent and m.txid in mine]  # fmt: skip
    if not checks:
        return {"checks": 0}
    first_ok = min((m.t for m in successes), default=None)
    ok_at: dict[str, float] = {}
    for m in successes:
        ok_at.setdefault(m.peer, m.t)
    nominating = [m for m in checks if USE_CANDIDATE in m.attrs]
    if not nominating:
        nomination = "none seen"
    elif any(m.t < ok_at.get(m.peer, float("inf")) for m in nominating):
        nomination = "aggressive"
    else:
        nomination = "regular"
    firsts: dict[bytes, float] = {}
    sends: dict[bytes, list[float]] = {}
    for m in checks:
        firsts.setdefault(m.txid, m.t)
        sends.setdefault(m.txid, []).append(m.t)
    starts = sorted(t for t in firsts.values() if first_ok is None or t <= first_ok)
    gaps = [1000 * (b - a) for a, b in pairwise(starts)]
    pacing = [g for g in gaps if g > 1.0]  # checks sent together (a burst) are not paced
    bursts = [1]
    for gap in gaps:
        bursts.append(bursts[-1] + 1 if gap <= 1.0 else 1)
    retrans1 = [1000 * (ts[1] - ts[0]) for ts in sends.values() if len(ts) > 1]
    retrans2 = [1000 * (ts[2] - ts[1]) for ts in sends.values() if len(ts) > 2]
    consent: list[float] = []
    if successes and first_ok is not None:
        selected = successes[-1].peer  # the pair the call kept answering on
        after = sorted({firsts[m.txid] for m in checks if m.peer == selected
                        and firsts[m.txid] > first_ok + 1.0})  # fmt: skip
        consent = [b - a for a, b in pairwise(after)]
    return {
        "checks": len(firsts),
        "nomination": nomination,
        "use_candidate_checks": len({m.txid for m in nominating}),
        # the first nominating checks: (ms after the first check, to, ms after that address's
        # first success response or None: sent before any)
        "nominations": [
            (
                round(1000 * (m.t - checks[0].t), 1),
                m.peer,
                round(1000 * (m.t - ok_at[m.peer]), 1) if m.peer in ok_at else None,
            )
            for m in nominating[:4]
        ],
        "pacing_ms": round(median(pacing), 1) if pacing else None,
        "largest_burst": max(bursts),
        "retransmit_ms": [round(median(r), 1) if r else None for r in (retrans1, retrans2)],
        "consent_s": round(median(consent), 2) if consent else None,
        "consent_checks": len(consent) + 1 if consent else 0,
    }


def measure(stacks: list[str], hold_s: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kind in stacks:
        with tempfile.TemporaryDirectory(prefix="simnet-ice-wire-") as folder:
            [row] = run_scenario(scenario(kind, hold_s), pcap_dir=Path(folder))
            if not row["connected"]:
                result[kind] = {"error": row["error"]}
                continue
            figures = {}
            for side, host in (("offerer", "alice"), ("answerer", "bob")):
                messages = stun_packets(Path(folder) / row.pcap_files[host])
                figures[side] = wire_figures(messages)
            result[kind] = {**figures, "setup_ms": row["setup_ms"], "error": row["error"]}
    return result


def show(result: dict[str, Any]) -> None:
    table = Table(title="ICE on the wire: each side's checks (the offerer controls)")
    for column in ("stack", "side", "checks", "nomination", "Ta ms", "burst", "RTO 1st/2nd ms",
                   "consent s"):  # fmt: skip
        table.add_column(column)
    for kind, both in result.items():
        for side in ("offerer", "answerer"):
            f = both.get(side, {})
            table.add_row(kind, side, str(f.get("checks", "")),
                          str(f.get("nomination", both.get("error"))),
                          str(f.get("pacing_ms")), str(f.get("largest_burst")),
                          str(f.get("retransmit_ms")),
                          f"{f.get('consent_s')} ({f.get('consent_checks')} checks)")  # fmt: skip
    Console().print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default=",".join(NAMED_KINDS))
    parser.add_argument("--hold", type=float, default=16.0, help="media seconds per call")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stacks = [s.strip() for s in args.stacks.split(",")]
    return run_benchmark(
        lambda: measure(stacks, args.hold), show, as_json=args.json, log=Console(stderr=True)
    )


if __name__ == "__main__":
    sys.exit(main())
