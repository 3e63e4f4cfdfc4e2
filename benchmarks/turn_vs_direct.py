"""What TURN costs: the same network, direct calls versus forced relay over each TURN transport.

Why this exists: `relay-only.yaml` models an application that forces every call through TURN
(iceTransportPolicy "relay", e.g. to hide users' addresses) between two home routers where a
direct path would work. This script measures what that policy costs against letting ICE connect
directly, and how much the TURN transport (UDP, TCP, TLS) adds, in set-up time, ICE time,
data-channel goodput and data-channel RTT.

Variants (each is the scenario plus `--set`-style overrides, loaded with `load_scenario`):
  * direct:    call.ice_policy=all,   call.turn_transports=[udp]  (TURN still offered, as real
               applications do; ICE nominates the direct pair, checked per call)
  * relay-udp: call.ice_policy=relay, call.turn_transports=[udp]
  * relay-tcp: call.ice_policy=relay, call.turn_transports=[tcp]
  * relay-tls: call.ice_policy=relay, call.turn_transports=[tls]

Layout. By default every variant's calls run in ONE network (one `run_scenario` call whose cells
are the variants' calls, `repeat=1`): the four variants only differ in their `call` section, so
they share the network, coturn, the signaling server and the two warm agents, and their calls are
interleaved round by round (the order rotates every round), so drift in machine load hits every
variant alike. `--separate` instead builds one network per variant and makes its calls there with
`run_scenario(scenario, repeat=warmup + N)`. Either way the first `--warmup` call(s) are made and
reported but left out of the statistics, as a precaution against one-off costs of a first call
between fresh agents (measured here: first calls fall in the same two set-up modes as later ones,
see below, so the warm-up changes little).

Statistics: median, p10/p90 and p25/p75 (IQR) over connected calls of set-up, `ice_connect_ms`
(the offerer's ICE checking -> connected, as `simnet run` reports it), `ice_both_ms` (offerer's
ICE checking -> the LATER of both peers' ICE connected: the answerer can finish ~500 ms after the
offerer when one of its checks must be retransmitted, which `ice_connect_ms` does not show),
goodput and RTT; the count of calls that waited for such a retransmission; and the relay cost of a
variant: its median divided by the direct variant's median (setup, goodput, RTT). Set-up is
bimodal (~40 ms, or ~530 ms after a retransmitted check), so with few calls its median flips
between the modes: read it together with the retransmission count, and with the set-up medians
split by mode (`setup_ms_clean` / `setup_ms_resent`). Goodput has outliers (aioice's receive
buffer overflowing and SCTP retransmitting: a transfer that waits for SCTP's >= 1 s
retransmission timeout runs at ~6-7 Mbit/s), so compare medians and look at the spread, never at
means; such "stalled" transfers are counted, and goodput is also given without them.

Usage: .venv/bin/python benchmarks/turn_vs_direct.py [--repeat 10] [--warmup 1] [--separate]
       [--scenario scenarios/relay-only.yaml] [--set path=value ...] [--json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _runner import BenchmarkError, describe, run_benchmark
from rich.console import Console
from rich.table import Table

from simnet.quantile import quantile
from simnet.results.schema import ResultRow
from simnet.run.calls import Cell, run_scenario
from simnet.run.one_call import call_of
from simnet.scenario import load_scenario
from simnet.scenario.model import Scenario

Row = dict[str, Any]  # a stored row's columns, with the analysis's own columns added

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "relay-only.yaml"
METRICS = ("setup_ms", "ice_connect_ms", "ice_both_ms", "dc_goodput_mbps", "rtt_ms")
# set-up split by whether the call waited for a retransmitted ICE check (see RETRANSMIT_MS)
# and goodput without the transfers that stalled (see STALL_FRACTION)
SPLIT_METRICS = ("setup_ms_clean", "setup_ms_resent", "dc_goodput_mbps_unstalled")
STATS_METRICS = (*METRICS[:1], *SPLIT_METRICS[:2], *METRICS[1:4], SPLIT_METRICS[2], *METRICS[4:])
COST_METRICS = {
    "setup": "setup_ms",
    "setup_clean": "setup_ms_clean",
    "goodput": "dc_goodput_mbps",
    "goodput_unstalled": "dc_goodput_mbps_unstalled",
    "rtt": "rtt_ms",
}
UNITS = {
    "setup_ms": "ms",
    "setup_ms_clean": "ms, no check re-sent",
    "setup_ms_resent": "ms, a check re-sent",
    "ice_connect_ms": "ms",
    "ice_both_ms": "ms",
    "dc_goodput_mbps": "Mbit/s",
    "dc_goodput_mbps_unstalled": "Mbit/s, no stall",
    "rtt_ms": "ms",
}
# A call whose ICE took this long on either side waited for a retransmitted check: aioice's first
# STUN retransmission is 500 ms after the first check (stun.RETRY_RTO), and a check dropped by a
# port-restricted filter (or sent before the TURN permission exists) is not re-sent sooner.
RETRANSMIT_MS = 400.0
# A transfer below this fraction of the median goodput of all measured calls (every variant)
# stalled: a chunk lost near the end is recovered only by SCTP's retransmission timeout (aiortc:
# at least 1 s), so 1 MB then takes ~1.2 s (~6-7 Mbit/s) whatever the path.
STALL_FRACTION = 0.25
ICE_NOTE = (
    "ice_connect_ms is the offerer's view (its checking -> connected); ice_both_ms runs to the "
    "later of both peers' ICE connected. A call with ice_both_ms >= 400 ms waited for a "
    "retransmitted check (aioice: first retransmission after 500 ms; it sends no triggered check "
    "for a pair whose check is in progress), which makes set-up bimodal (~40 ms or ~530 ms): "
    "look at the retransmit count next to the medians"
)
GOODPUT_NOTE = (
    "goodput has outliers (aioice's receive buffer overflows and SCTP retransmits; a chunk "
    "recovered only by SCTP's >= 1 s retransmission timeout leaves a 1 MB transfer at ~6-7 "
    "Mbit/s): compare medians and the spread, not means; 'stalled' counts transfers below "
    f"{STALL_FRACTION:g} x the median goodput of all measured calls"
)


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]
    path: str  # the path every call of this variant should take
    relay_protocol: str | None  # and, when relayed, over which transport to the TURN server


VARIANTS = (
    Variant("direct", ("call.ice_policy=all", "call.turn_transports=[udp]"), "direct", None),
    *(
        Variant(f"relay-{t}", ("call.ice_policy=relay", f"call.turn_transports=[{t}]"), "relay", t)
        for t in ("udp", "tcp", "tls")
    ),
)
BASELINE = "direct"


# --- statistics -------------------------------------------------------------------------------


def ice_both_ms(row: Row) -> float | None:
    """Offerer's ICE checking (on the offer-created axis) to the later side's ICE connected."""
    start = row.get("offerer_ice_checking_ms")
    if start is None:
        start = row.get("offerer_answer_received_ms")
    ends = [row.get(f"{side}_ice_connected_ms") for side in ("offerer", "answerer")]
    if start is None or any(e is None for e in ends):
        return None
    return float(max(e for e in ends if e is not None)) - float(start)


def column(rows: Sequence[Row], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get("connected") and r.get(key) is not None]


# --- running ----------------------------------------------------------------------------------


def load_variants(path: Path, extra: Sequence[str]) -> dict[str, Scenario]:
    """Every variant's scenario: the file, the user's `--set`s, then the variant's overrides."""
    return {v.name: load_scenario(path, [*extra, *v.overrides]) for v in VARIANTS}


def network_of(scenario: Scenario) -> dict[str, Any]:
    return scenario.model_dump(mode="json", exclude={"call"})


def run_interleaved(
    scenarios: dict[str, Scenario], repeat: int, warmup: int, log: Console
) -> list[Row]:
    """One network; `warmup + repeat` rounds of one call per variant, order rotated per round."""
    first = scenarios[VARIANTS[0].name]
    for name, scenario in scenarios.items():
        if network_of(scenario) != network_of(first):
            raise BenchmarkError(f"variant {name} changes the network, not only the call")
    cells: list[Cell] = []
    names = [v.name for v in VARIANTS]
    for round_ in range(warmup + repeat):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            extra = {"variant": name, "round": round_, "warmup": round_ < warmup}
            cells.append((call_of(scenarios[name]), extra))
    total = len(cells)
    made = run_scenario(first, repeat=1, on_row=progress(log, total), cells=cells)
    return [row.columns() for row in made]


def run_separate(
    scenarios: dict[str, Scenario], repeat: int, warmup: int, log: Console
) -> list[Row]:
    """One network per variant, `run_scenario(scenario, repeat=warmup + repeat)` in each."""
    rows: list[Row] = []
    for name, scenario in scenarios.items():
        log.print(f"[dim]{name}: building the network and starting the services[/dim]")
        made = run_scenario(scenario, repeat=warmup + repeat, on_row=progress(log, warmup + repeat))
        for stored in made:
            row = stored.columns()
            row.update(variant=name, round=row["run"], warmup=row["run"] < warmup)
            rows.append(row)
    return rows


def progress(log: Console, total: int) -> Callable[[ResultRow], None]:
    count = 0

    def on_row(row: ResultRow) -> None:
        nonlocal count
        count += 1
        what = row.get("variant", "")
        if row.get("connected"):
            outcome = (
                f"{row['path']}"
                + (f"/{row['relay_protocol']}" if row.get("relay_protocol") else "")
                + f" setup {row['setup_ms']:.0f} ms"
            )
            if row.get("dc_goodput_mbps") is not None:
                outcome += f", {row['dc_goodput_mbps']:.1f} Mbit/s"
        else:
            outcome = f"FAILED ({row.get('error')})"
        log.print(f"[dim]call {count}/{total} {what}: {outcome}[/dim]", highlight=False)

    return on_row


# --- analysis ---------------------------------------------------------------------------------


def as_expected(variant: Variant, row: Row) -> bool:
    if not row.get("connected") or row.get("path") != variant.path:
        return False
    return variant.relay_protocol is None or row.get("relay_protocol") == variant.relay_protocol


def sample(row: Row) -> dict[str, Any]:
    keys = ["round", "connected", "error", "error_detail", "path", "local_candidate",
            "remote_candidate", "relay_protocol", *METRICS, "stalled", "wall_ms"]  # fmt: skip
    keys += [k for k in row if k.startswith(("offerer_", "answerer_")) and k.endswith("_ms")]
    return {k: round(v, 3) if isinstance(v := row.get(k), float) else v for k in keys}


def analyse(rows: list[Row]) -> dict[str, Any]:
    goodputs = column([r for r in rows if not r["warmup"]], "dc_goodput_mbps")
    stall_below = STALL_FRACTION * (quantile(goodputs, 0.5) or 0.0)
    for row in rows:
        goodput = row.get("dc_goodput_mbps")
        row["stalled"] = goodput is not None and goodput < stall_below
        row["dc_goodput_mbps_unstalled"] = None if row["stalled"] else goodput
        row["ice_both_ms"] = both = ice_both_ms(row)
        resent = both is not None and both >= RETRANSMIT_MS
        row["setup_ms_clean"] = None if resent else row.get("setup_ms")
        row["setup_ms_resent"] = row.get("setup_ms") if resent else None
    variants: dict[str, Any] = {}
    for variant in VARIANTS:
        mine = [r for r in rows if r.get("variant") == variant.name]
        measured = [r for r in mine if not r["warmup"]]
        variants[variant.name] = {
            "overrides": list(variant.overrides),
            "expected": {"path": variant.path, "relay_protocol": variant.relay_protocol},
            "calls": len(measured),
            "connected": sum(1 for r in measured if r.get("connected")),
            "as_expected": sum(1 for r in measured if as_expected(variant, r)),
            "paths": dict(Counter(str(r.get("path")) for r in measured if r.get("connected"))),
            "relay_protocols": dict(
                Counter(str(r.get("relay_protocol")) for r in measured if r.get("path") == "relay")
            ),
            "relay_protocol_inferred": sum(1 for r in measured if r.get("relay_protocol_inferred")),
            "ice_retransmit": sum(
                1
                for r in measured
                if r.get("connected") and (r["ice_both_ms"] or 0.0) >= RETRANSMIT_MS
            ),
            "stalled": sum(1 for r in measured if r.get("connected") and r["stalled"]),
            "errors": dict(Counter(str(r["error"]) for r in measured if not r.get("connected"))),
            "stats": {m: describe(column(measured, m)) for m in STATS_METRICS},
            "warmup_samples": [sample(r) for r in mine if r["warmup"]],
            "samples": [sample(r) for r in measured],
        }
    base = variants[BASELINE]["stats"]
    cost: dict[str, dict[str, float | None]] = {}
    for variant in VARIANTS:
        if variant.name == BASELINE:
            continue
        mine = variants[variant.name]["stats"]
        cost[variant.name] = {}
        for label, metric in COST_METRICS.items():
            num, den = mine[metric]["median"], base[metric]["median"]
            ratio = None if num is None or not den else float(num) / float(den)
            cost[variant.name][label] = None if ratio is None else round(ratio, 3)
    return {"variants": variants, "relay_cost": cost, "stall_below_mbps": round(stall_below, 2)}


# --- output -----------------------------------------------------------------------------------


def fmt(value: float | int | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_tables(result: dict[str, Any]) -> None:
    console = Console(width=None if sys.stdout.isatty() else 160)
    variants = result["variants"]
    overview = Table(
        title=(
            f"TURN vs direct on {result['scenario_name']}: {result['repeat']} calls per variant "
            f"({result['layout']}, {result['warmup']} warm-up "
            f"{'call(s) per variant' if result['layout'] == 'separate' else 'round(s)'} left out)"
        )
    )
    for name in ("variant", "connected", "as expected", "paths", "failures", "ICE re-sent",
                 "stalled", "setup x", "setup x no re-send", "goodput x", "goodput x no stall",
                 "RTT x"):  # fmt: skip
        left = name in ("variant", "paths", "failures")
        overview.add_column(name, justify="left" if left else "right")
    for variant in VARIANTS:
        v = variants[variant.name]
        paths = ", ".join(
            f"{p}{'/' + '+'.join(v['relay_protocols']) if p == 'relay' else ''} {n}"
            for p, n in v["paths"].items()
        )
        cost = result["relay_cost"].get(variant.name, {})
        overview.add_row(
            variant.name,
            f"{v['connected']}/{v['calls']}",
            f"{v['as_expected']}/{v['calls']}",
            paths,
            ", ".join(f"{e} {n}" for e, n in v["errors"].items()) or "-",
            f"{v['ice_retransmit']}/{v['connected']}",
            f"{v['stalled']}/{v['connected']}",
            *(f"{cost[k]:.2f}x" if cost.get(k) is not None else "-" for k in COST_METRICS),
        )
    console.print(overview)

    detail = Table(title="per metric: median, spread (connected calls)")
    for name in ("metric", "variant", "n", "median", "p10", "p25", "p75", "p90", "IQR", "min",
                 "max"):  # fmt: skip
        detail.add_column(name, justify="left" if name in ("metric", "variant") else "right")
    for metric in STATS_METRICS:
        digits = 2 if metric == "rtt_ms" else 1
        for i, variant in enumerate(VARIANTS):
            s = variants[variant.name]["stats"][metric]
            detail.add_row(
                f"{metric} ({UNITS[metric]})" if i == 0 else "",
                variant.name,
                str(s["n"]),
                *(fmt(s[k], digits) for k in ("median", "p10", "p25", "p75", "p90", "iqr")),
                fmt(s["min"], digits),
                fmt(s["max"], digits),
                end_section=i == len(VARIANTS) - 1,
            )
    console.print(detail)

    warm = [
        f"{name} {fmt(s['setup_ms'], 0)} ms"
        for name, v in variants.items()
        for s in v["warmup_samples"]
    ]
    notes = [
        "setup x, goodput x, RTT x: relay cost, the variant's median / direct's median "
        "(goodput < 1x: slower); 'no re-send' / 'no stall': the same over calls where no ICE check "
        "was re-sent / whose transfer did not stall",
        f"ICE re-sent: calls with ice_both_ms >= {RETRANSMIT_MS:.0f} ms. {ICE_NOTE}",
        f"note: {GOODPUT_NOTE} (here: < {result['stall_below_mbps']:g} Mbit/s)",
    ]
    if warm:
        notes.append("warm-up calls (left out), set-up: " + ", ".join(warm))
    unexpected = [n for n, v in variants.items() if v["as_expected"] != v["calls"]]
    if unexpected:
        notes.append(
            "[yellow]calls that did not take the variant's path/transport: "
            + ", ".join(unexpected)
            + " (see paths)[/yellow]"
        )
    notes.append(
        f"wall time {result['wall_s']:.1f} s; {result['host']['cpus']} CPUs, load average before "
        f"{result['host']['loadavg_before']}"
    )
    console.print("\n".join(notes), highlight=False)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=10, help="calls per variant (default 10)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="calls (rounds of every variant, with --separate: calls per variant) made first and "
        "left out of the statistics (default 1)",
    )
    parser.add_argument(
        "--separate",
        action="store_true",
        help="one network per variant (run_scenario(repeat=N) each) instead of one network "
        "with the variants' calls interleaved",
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        default=DEFAULT_SCENARIO,
        help="scenario file with two peers where a direct path works (default relay-only.yaml)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override applied to every variant before its own (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def benchmark(args: argparse.Namespace, log: Console) -> dict[str, Any]:
    scenarios = load_variants(args.scenario, args.overrides)
    loadavg = os.getloadavg()
    start = time.monotonic()
    if args.separate:
        rows = run_separate(scenarios, args.repeat, args.warmup, log)
    else:
        rows = run_interleaved(scenarios, args.repeat, args.warmup, log)
    wall_s = time.monotonic() - start
    return {
        "benchmark": "turn_vs_direct",
        "scenario": str(args.scenario),
        "scenario_name": scenarios[BASELINE].name,
        "overrides": args.overrides,
        "layout": "separate" if args.separate else "interleaved",
        "repeat": args.repeat,
        "warmup": args.warmup,
        **analyse(rows),
        "notes": {"ice": ICE_NOTE, "goodput": GOODPUT_NOTE},
        "ice_retransmit_threshold_ms": RETRANSMIT_MS,
        "wall_s": round(wall_s, 2),
        "host": {
            "kernel": platform.release(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in loadavg],
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log = Console(stderr=True)
    return run_benchmark(lambda: benchmark(args, log), print_tables, as_json=args.json, log=log)


if __name__ == "__main__":
    sys.exit(main())
