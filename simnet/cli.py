"""The `simnet` command: thin wrappers over the library, and the one place errors are printed."""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from simnet import show
from simnet.errors import ScenarioError, SimnetError
from simnet.net.registry import owner_alive, read_states
from simnet.signals import Terminated

if TYPE_CHECKING:
    from simnet.results.schema import ResultRow
    from simnet.scenario.model import PeerPair

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Emulated networks for WebRTC: build, poke, verify.",
)
out = Console()
err = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a scenario field: dotted.path=value (repeatable)"),
]
ScenarioArg = Annotated[Path, typer.Argument(help="scenario YAML file")]


PeersOption = Annotated[
    str,
    typer.Option(help="peer kind of both sides (aiortc, chromium), or of A and B: aiortc,chromium"),
]


def _peer_pair(spec: str) -> PeerPair:
    """`--peers` parsed, or typer's usage error (exit 2) naming the option."""
    from simnet.run.peers import peer_pair

    try:
        return peer_pair(spec)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--peers") from None


class OutputFormat(enum.StrEnum):
    """Formats `run --format` writes beside each row's Parquet file (typer rejects others)."""

    csv = "csv"
    json = "json"


def _version(value: bool) -> None:
    if value:
        from simnet import __version__

        out.print(show.text(f"simnet {__version__}"))
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="show the version")
    ] = False,
) -> None:
    """Emulated networks for WebRTC: build, poke, verify."""
    from simnet.settings import check_environment

    check_environment()  # a mistyped SIMNET_* variable is an error before anything starts


@contextlib.contextmanager
def _interrupts_reported() -> Iterator[None]:
    """Say that Ctrl-C was honoured (typer would swallow KeyboardInterrupt silently)."""
    try:
        yield
    except KeyboardInterrupt:
        err.print("interrupted; everything this run created was removed")
        raise typer.Exit(130) from None


def _scenario(path: Path, overrides: list[str] | None) -> Any:
    """The scenario file with its overrides, validated and planned (addresses, LANs): every
    error, the planner's too, starts with the file and the `--set`s it came from."""
    from simnet.net.plan import plan_network
    from simnet.scenario.load import load_scenario, source_of

    loaded = load_scenario(path, overrides or [])
    try:
        plan_network(loaded)
    except ScenarioError as exc:
        raise ScenarioError(
            f"{source_of(path, overrides or [])}: {exc.message}", fix=exc.fix
        ) from None
    return loaded


def _print_network(network: Any) -> None:
    from simnet.net.plan import Role

    table = Table(title=show.text(f"run {network.run.id}: {network.plan.scenario.name}"))
    for column in ("node", "role", "namespace", "addresses", "behind"):
        table.add_column(column)
    for node in network.plan.nodes.values():
        addresses = ", ".join(
            f"{ifname} {a}" for ifname, addrs in node.addresses.items() for a in addrs
        )
        if node.role is Role.CORE:
            addresses = "192.0.2.1 (core router of the emulated internet)"
        cells = (node.name, node.role.value, network.ns(node.name), addresses, node.behind or "")
        table.add_row(*map(show.text, cells))
    out.print(table)


@app.command()
def validate(scenario: ScenarioArg, set_: SetOption = None) -> None:
    """Check a scenario file and show the network it would build (no root needed)."""
    from simnet.net.plan import plan_network

    loaded = _scenario(scenario, set_)
    plan = plan_network(loaded)
    for node in plan.nodes.values():
        addresses = ", ".join(
            dict.fromkeys(str(a) for addrs in node.addresses.values() for a in addrs)
        )
        behaviour = ""
        if node.router is not None:
            b = node.router.behavior
            behaviour = (
                f" nat: {b.mapping.value} mapping, {b.filtering.value} filtering, "
                f"{b.port_allocation.value} ports, hairpin {b.hairpin}, {b.udp_timeout_s}s"
                if b.translates
                else " (routes, no NAT)"
            )
        moves = [
            f"{a.address} behind {a.network}"
            for a in plan.attachments.get(node.name, {}).values()
            if a.veth.standby
        ]
        if moves:  # the interfaces a timeline moves the host onto
            behaviour += f" (moves to {', '.join(moves)})"
        out.print(show.text(f"{node.name:>16} {node.role.value:<7} {addresses}{behaviour}"))
    if loaded.call is None:
        from simnet.scenario.model import CallSpec

        problems = loaded.call_problems(CallSpec())
        if problems:
            out.print(
                show.text(
                    ("note:", "yellow"),
                    " no `call:` section, so `simnet run` would make the default call, which "
                    f"cannot be made here: {problems[0]}",
                )
            )
    out.print(show.text((f"{scenario}: valid", "green")))


@app.command()
def up(scenario: ScenarioArg, set_: SetOption = None) -> None:
    """Build a scenario's network and hold it until Ctrl-C or `simnet down`."""
    from simnet.doctor import require_root
    from simnet.net.builder import emulated_network
    from simnet.net.plan import plan_network

    loaded = _scenario(scenario, set_)
    require_root()
    plan = plan_network(loaded)
    info = {"holding": True, "scenario": str(scenario)}
    with (
        _interrupts_reported(),
        emulated_network(plan, label=f"up {loaded.name}", hold_info=info) as network,
    ):
        _print_network(network)
        out.print(
            show.text(
                f"holding run {network.run.id}; poke it with `simnet exec HOST -- CMD`, "
                "stop with Ctrl-C or `simnet down`"
            )
        )
        while True:
            signal.pause()


@app.command()
def down(
    run_id: Annotated[str | None, typer.Argument(help="run id (default: all)")] = None,
) -> None:
    """Stop networks held by `simnet up` (they tear themselves down)."""
    from simnet.cleanup import cleanup

    targets = [s for s in read_states() if s.get("holding") and run_id in (None, s.get("id"))]
    if not targets:
        raise SimnetError("no network is being held" + (f" with run id {run_id}" if run_id else ""))
    for state in targets:
        if owner_alive(state):
            os.kill(int(state["owner_pid"]), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(owner_alive(s) for s in targets):
        time.sleep(0.05)
    cleanup()
    out.print(show.text(f"stopped {', '.join(str(s.get('id')) for s in targets)}"))


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(help="node name, e.g. alice")],
    run_id: Annotated[str | None, typer.Option("--run", help="run id if several are up")] = None,
) -> None:
    """Run a command inside a host of a held network: simnet exec alice -- ping 192.0.2.10."""
    from simnet.net import netns

    command = list(ctx.args)
    if not command:
        raise SimnetError("no command given", fix="simnet exec HOST -- COMMAND [ARGS...]")
    held = [
        s
        for s in read_states()
        if s.get("holding") and owner_alive(s) and run_id in (None, s.get("id"))
    ]
    if not held:
        raise SimnetError("no network is being held", fix="start one with `simnet up SCENARIO`")
    if len(held) > 1:
        ids = ", ".join(str(s.get("id")) for s in held)
        raise SimnetError(f"several networks are up ({ids})", fix="choose one with --run ID")
    nodes: dict[str, str] = held[0].get("nodes", {})
    if host not in nodes:
        raise SimnetError(f"no host '{host}' in run {held[0]['id']}; hosts: {', '.join(nodes)}")
    netns.enter_for_good(nodes[host])
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        raise SimnetError(f"command not found: {command[0]}") from None


@app.command()
def cleanup(
    everything: Annotated[
        bool, typer.Option("--all", help="also stop live runs, not only dead runs' leftovers")
    ] = False,
) -> None:
    """Remove namespaces, processes and state left by runs that were killed."""
    from simnet.cleanup import cleanup as do_cleanup
    from simnet.doctor import require_root

    require_root()
    report = do_cleanup(everything)
    out.print(
        show.text(
            f"removed {len(report.namespaces)} namespaces, {len(report.processes)} processes, "
            f"{len(report.state_files)} state files"
            + (
                f"; left live runs {', '.join(report.kept_live_runs)}"
                if report.kept_live_runs
                else ""
            )
        )
    )


@app.command()
def doctor() -> None:
    """Check the kernel features and programs simnet needs, and say how to get what is missing."""
    from simnet.doctor import run_checks

    checks = run_checks()
    table = Table(title="simnet doctor")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column)
    for check in checks:
        status = (
            ("ok", "green")
            if check.ok
            else (("missing", "red") if check.required else ("optional", "yellow"))
        )
        table.add_row(
            show.text(check.name),
            show.text(status),
            show.text(check.detail),
            show.text("" if check.ok else check.fix),
        )
    out.print(table)
    if any(c.required and not c.ok for c in checks):
        raise typer.Exit(1)


@app.command("verify-nat")
def verify_nat(
    target: Annotated[str, typer.Argument(help="a NAT preset name or a scenario file")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per NAT")] = False,
    lifetime_max: Annotated[
        float,
        typer.Option(help="measure binding lifetimes up to this many seconds (0: skip)"),
    ] = 0.0,
    set_: SetOption = None,
) -> None:
    """Measure each NAT's mapping, filtering, port allocation, hairpinning and binding lifetime."""
    from simnet.doctor import require_root
    from simnet.run.verify_nat import preset_scenario, verify
    from simnet.scenario.load import scenario_from_dict
    from simnet.scenario.nat import PRESET_NAMES

    if target in PRESET_NAMES:
        scenario = scenario_from_dict(
            preset_scenario(target).model_dump(), set_ or [], source=target
        )
    elif Path(target).suffix in (".yaml", ".yml") or Path(target).exists():
        scenario = _scenario(Path(target), set_)
    else:
        raise ScenarioError(
            f"'{target}' is neither a NAT preset nor a scenario file",
            fix=f"use one of {', '.join(PRESET_NAMES)} or a path to a .yaml file",
        )
    require_root()
    with _interrupts_reported():
        verdicts = verify(scenario, lifetime_max_s=lifetime_max or None)
    if as_json:
        for each in verdicts:
            print(json.dumps(each.as_json()))
    else:
        table = Table(title=show.text(f"NAT behaviour, measured: {scenario.name}"))
        for column in ("nat", "mapping", "filtering", "ports", "hairpin", "lifetime", "verdict"):
            table.add_column(column)
        for v in verdicts:
            o = v.observed
            if o is None:
                verdict = show.text(
                    ("UDP blocked, as configured", "green")
                    if v.as_configured
                    else ("unreachable", "red")
                )
                table.add_row(show.text(v.nat), "-", "-", "-", "-", "-", verdict)
                continue
            lifetime = "-"
            if o.lifetime_upper_s is not None:
                lifetime = f"{o.lifetime_lower_s:g}-{o.lifetime_upper_s:g} s"
            elif lifetime_max:
                lifetime = f"> {lifetime_max:g} s"
            verdict = show.text(
                ("as configured", "green") if v.as_configured else ("; ".join(v.mismatches), "red")
            )
            mapping = o.mapping.short if o.translates else "no NAT"
            cells = (
                v.nat,
                mapping,
                o.filtering.short,
                o.port_allocation.value,
                str(o.hairpin).lower(),
                lifetime,
            )
            table.add_row(*map(show.text, cells), verdict)
        out.print(table)
    if not all(v.as_configured for v in verdicts):
        raise typer.Exit(1)


JSON_KEYS = (
    "scenario", "run", "connected", "path", "local_candidate", "remote_candidate",
    "relay_protocol", "ice_connect_ms", "setup_ms", "dc_goodput_mbps", "rtt_ms", "error",
    "ice_disconnects", "recovered", "timeline_error", "relay_region", "run_id",
)  # fmt: skip


@app.command()
def run(
    scenario: ScenarioArg,
    repeat: Annotated[int, typer.Option(min=1, help="calls to make")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="results directory")] = Path("results"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per run")] = False,
    formats: Annotated[
        list[OutputFormat] | None,
        typer.Option("--format", help="also write csv and/or json (repeatable)"),
    ] = None,
    set_: SetOption = None,
    pcap: Annotated[
        bool, typer.Option("--pcap", help="capture each host's packets per call, next to results")
    ] = False,
) -> None:
    """Make WebRTC calls across the scenario's network and measure each phase.

    Exits 1 when a call breaks the scenario's `call.expect` (without one: when a call fails:
    no connection, any error, or a timeline change that could not be made)."""
    from rich.progress import Progress

    from simnet.doctor import require_root
    from simnet.results import ResultStore
    from simnet.run.calls import run_scenario
    from simnet.run.one_call import call_of
    from simnet.scenario.load import source_of

    loaded = _scenario(scenario, set_)
    call_of(loaded, source_of(scenario, set_ or []))
    require_root()
    store = ResultStore(out_dir, loaded.name, [f.value for f in formats or []])
    rows: list[ResultRow] = []
    with Progress(console=err, transient=True, disable=as_json) as progress:
        task = progress.add_task(show.markup_safe(f"{loaded.name}: building"), total=repeat)

        def on_row(row: ResultRow) -> None:
            rows.append(row)
            if as_json:
                print(json.dumps({k: row.get(k) for k in JSON_KEYS}), flush=True)
            store.write(row)
            description = show.markup_safe(f"{loaded.name}: call {len(rows)}")
            progress.update(task, advance=1, description=description)

        with _interrupts_reported():
            run_scenario(
                loaded, repeat, on_row, overrides=set_ or [], pcap_dir=out_dir if pcap else None
            )
    if not as_json:
        _summary(loaded.name, rows, out_dir)
    from simnet.call.expect import unmet

    expect = loaded.call.expect if loaded.call else None
    misses = [(i, miss) for i, row in enumerate(rows) for miss in unmet(expect, row)]
    label = "failed:" if expect is None else "unexpected:"
    for i, miss in misses:
        err.print(show.text((label, "red"), f" call {i + 1}: {miss}"), highlight=False)
    if misses:
        raise typer.Exit(1)
    if expect is not None and not as_json:
        err.print(show.text(("as expected", "green"), f" (call.expect) in {len(rows)} call(s)"))


@app.command()
def matrix(
    repeat: Annotated[int, typer.Option(min=1, help="calls per cell")] = 1,
    turn: Annotated[bool, typer.Option("--turn/--no-turn", help="offer a TURN server")] = True,
    out_dir: Annotated[Path, typer.Option("--out", help="results directory")] = Path("results"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per run")] = False,
    peers: PeersOption = "aiortc",
) -> None:
    """Call across every ordered pair of NAT presets and show the grid of outcomes."""
    from rich.progress import Progress

    from simnet.doctor import require_root
    from simnet.results import ResultStore
    from simnet.run.matrix import (
        PRESETS,
        matrix_cells,
        matrix_outcomes,
        matrix_scenario,
        run_matrix,
    )
    from simnet.run.peers import missing_programs

    sides = _peer_pair(peers)
    scenario = matrix_scenario(turn=turn, peers=sides)
    missing_programs(scenario.hosts, list(scenario.hosts), "simnet matrix --peers")
    require_root()
    cells = matrix_cells()
    store = ResultStore(out_dir, scenario.name)
    rows: list[ResultRow] = []
    with Progress(console=err, transient=True, disable=as_json) as progress:
        task = progress.add_task("NAT matrix: building", total=len(cells) * repeat)

        def on_row(row: ResultRow) -> None:
            rows.append(row)
            store.write(row)
            if as_json:
                keys = (*JSON_KEYS, "nat_a", "nat_b")
                print(json.dumps({k: row.get(k) for k in keys}), flush=True)
            description = show.markup_safe(f"{row['nat_a']} -> {row['nat_b']}")
            progress.update(task, advance=1, description=description)

        with _interrupts_reported():
            run_matrix(repeat, turn, on_row, peers=sides)
    outcomes = matrix_outcomes(rows, turn)
    wrong = [o.mismatch() for o in outcomes if not o.ok]
    stacks = sides[0] if sides[0] == sides[1] else f"{sides[0]} -> {sides[1]}"
    grid = Table(
        title=f"NAT matrix, {stacks} ({'with' if turn else 'without'} TURN): outcome, median set-up"
    )
    grid.add_column("A \\ B")
    for preset in PRESETS:
        grid.add_column(preset)
    for nat_a in PRESETS:
        cells_out: list[Text] = []
        for o in (o for o in outcomes if o.nat_a == nat_a):
            color = {"direct": "green", "relay": "yellow"}.get(o.outcome, "red")
            median = "" if o.setup_ms_median is None else f" {o.setup_ms_median:.0f} ms"
            cells_out.append(show.text((o.outcome, color), median))
        grid.add_row(show.text(nat_a), *cells_out)
    if not as_json:
        out.print(grid)
        for line in wrong:
            err.print(show.text(("unexpected:", "red"), f" {line}"))
    if wrong:
        raise typer.Exit(1)


class LoadMedia(enum.StrEnum):
    """What each call of `simnet load` carries besides its data-channel transfer."""

    none = "none"
    audio = "audio"  # replayed: encoded once, counted not decoded (MediaSpec.coding)
    audio_live = "audio-live"
    video = "video"


#: `simnet load --media X` as a scenario override
LOAD_MEDIA = {
    LoadMedia.none: "call.media={}",
    LoadMedia.audio: "call.media={audio: true, coding: replay}",
    LoadMedia.audio_live: "call.media={audio: true}",
    LoadMedia.video: "call.media={audio: true, video: {width: 320, height: 240}}",
}


def _levels(spec: str) -> list[int]:
    try:
        levels = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{spec!r}: give whole numbers separated by commas, e.g. 1,10,25", param_hint="--calls"
        ) from None
    if not levels or min(levels) < 1:
        raise typer.BadParameter(
            f"{spec!r}: every level needs at least 1 call, e.g. 1,10,25", param_hint="--calls"
        )
    return levels


@app.command()
def load(
    scenario: ScenarioArg,
    calls: Annotated[
        str | None,
        typer.Option(help="calls at once per level, e.g. 1,10,25 (default: call.concurrent)"),
    ] = None,
    ramp: Annotated[
        float | None,
        typer.Option(min=0.001, help="start this many new calls per second (default: at once)"),
    ] = None,
    media: Annotated[
        LoadMedia | None,
        typer.Option(
            help="media each call carries (default: the scenario's): audio is an Opus tone "
            "encoded once and replayed, received frames counted, not decoded (the packets of "
            "a call for a fraction of the CPU); audio-live and video encode and decode every "
            "frame"
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(min=1, help="processes the aiortc peers share (default: one per CPU)"),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="results directory")] = Path("results"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per level")] = False,
    set_: SetOption = None,
) -> None:
    """Many calls at once through the same servers, level by level: a load curve.

    The scenario's host templates (`hosts.NAME.count`) give the pairs: instance i of the call's
    offerer calls instance i of its answerer. Each call's row is stored as it ends; each level
    is printed (or, with --json, one object per level)."""
    from simnet.doctor import require_root
    from simnet.present.load import load_errors, load_table
    from simnet.results import ResultStore
    from simnet.run.load import load_pairs, run_load
    from simnet.scenario.load import source_of

    overrides = list(set_ or [])
    if media is not None:
        overrides.append(LOAD_MEDIA[media])
    loaded = _scenario(scenario, overrides)
    source = source_of(scenario, overrides)
    levels = _levels(calls) if calls else [loaded.call.concurrent if loaded.call else 1]
    load_pairs(loaded, levels, source)
    require_root()
    store = ResultStore(out_dir, loaded.name)
    with err.status(show.markup_safe(f"{loaded.name}: building"), spinner="dots") as status:

        def on_row(row: ResultRow) -> None:
            store.write(row)
            status.update(
                show.markup_safe(
                    f"{loaded.name}: level {row['concurrency']}, call {row['call_index']}"
                )
            )

        with _interrupts_reported():
            figures = run_load(
                loaded, levels, ramp_per_s=ramp, on_row=on_row, shared_processes=processes,
                overrides=overrides, source=source,
            )  # fmt: skip
    if as_json:
        for level in figures:
            print(level.model_dump_json(), flush=True)
        return
    out.print(load_table(loaded.name, figures, out_dir))
    for line in load_errors(figures):
        err.print(show.text(("errors", "yellow"), f" {line}"))


@app.command()
def population(
    mix: Annotated[Path, typer.Argument(help="mix YAML: each side's network classes and shares")],
    calls: Annotated[int, typer.Option(min=1, help="calls to draw from the mix")] = 200,
    seed: Annotated[int, typer.Option(min=0, help="the draw's seed (same seed, same calls)")] = 0,
    cluster: Annotated[
        str | None, typer.Option(help="a Dask scheduler, tcp://HOST:PORT: run on its workers")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="results directory")] = Path("results"),
    as_json: Annotated[
        bool, typer.Option("--json", help="the estimate as one JSON object")
    ] = False,
    peers: PeersOption = "aiortc",
) -> None:
    """Estimate a fleet's direct / relayed / failed call shares from a mix of networks.

    Draws `--calls` calls (each side's network class by the mix's shares, seeded), makes them
    (calls of one pair of classes share a network), and prints the shares with 95 % Wilson
    intervals, the relay protocols, set-up times, the bytes through TURN, each class's part of
    the TURN share and how that share moves when a class's share moves by 10 points."""
    from simnet.doctor import require_root
    from simnet.population.mix import load_mix
    from simnet.population.run import run_population
    from simnet.present.population import population_tables
    from simnet.results import ResultStore
    from simnet.run.peers import missing_programs
    from simnet.scenario.model import HostSpec

    sides = _peer_pair(peers)
    loaded = load_mix(mix)
    if cluster is None:
        # the hosts of every drawn call: alice offers, bob answers (population.mix.scenario_for)
        stacks = {"alice": HostSpec(peer=sides[0]), "bob": HostSpec(peer=sides[1])}
        missing_programs(stacks, list(stacks), "simnet population --peers")
        require_root()
    store = ResultStore(out_dir, loaded.name)
    with err.status(show.markup_safe(f"{loaded.name}: {calls} calls"), spinner="dots") as status:
        made = [0]

        def on_row(row: ResultRow) -> None:
            store.write(row)
            made[0] += 1
            status.update(show.markup_safe(f"{loaded.name}: call {made[0]} of {calls}"))

        with _interrupts_reported():
            result, _, errors = run_population(
                loaded, calls, seed, on_row, cluster=cluster, peers=sides
            )
    for line in errors:
        err.print(show.text(("failed:", "red"), f" {line}"))
    if as_json:
        print(result.model_dump_json())
        return
    for part in population_tables(loaded.name, result, seed, out_dir):
        out.print(part)


@app.command("probe-link")
def probe_link(
    scenario: ScenarioArg,
    host_a: Annotated[str, typer.Argument(help="the probing host (A)")],
    host_b: Annotated[str, typer.Argument(help="the probed host (B)")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    count: Annotated[int, typer.Option(min=1, max=100_000, help="UDP echo probes")] = 100,
    interval_ms: Annotated[
        float, typer.Option(min=0.1, max=10_000, help="milliseconds between probes")
    ] = 10.0,
    duration: Annotated[
        int, typer.Option(min=0, max=3600, help="seconds of each iperf3 test (0: none)")
    ] = 2,
    udp_rate: Annotated[str, typer.Option(help="target rate of the UDP test (iperf3 -b)")] = "100M",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="UDP echo and iperf3 port on the serving host")
    ] = 5201,
    server_host: Annotated[
        str | None,
        typer.Option(help="which of the two hosts serves (default: the one the other can reach)"),
    ] = None,
    set_: SetOption = None,
) -> None:
    """Measure RTT, one-way delay and loss per direction, and TCP/UDP throughput from A to B."""
    from simnet.doctor import require_root
    from simnet.run.link import LinkProbeOptions, plan_link
    from simnet.run.link import probe_link as measure_link

    options = LinkProbeOptions(
        count=count,
        interval_s=interval_ms / 1000,
        duration_s=duration,
        udp_rate=udp_rate,
        port=port,
        server_host=server_host,
    )
    setup = plan_link(_scenario(scenario, set_), host_a, host_b, options)  # before root: no build
    require_root()
    status = (
        contextlib.nullcontext()
        if as_json
        else err.status(show.markup_safe(f"probing {host_a} <-> {host_b}"))
    )
    with _interrupts_reported(), status:
        report = measure_link(setup)
    data = report.as_json()
    if as_json:
        print(json.dumps(data))
    else:

        def num(value: Any, digits: int = 3) -> str:
            return "-" if value is None else f"{value:.{digits}f}"

        a, b = host_a, host_b
        table = Table(
            title=show.text(
                f"{data['scenario']} (run {data['run_id']}): {a} <-> {b}, "
                f"{data['probes']} probes, {data['server']} serving at {data['target']}"
            )
        )
        for column in ("", f"{a} -> {b}", f"{b} -> {a}", "round trip"):
            table.add_column(show.text(column), justify="right")
        delays = (*report.one_way_ms, report.echo.rtt_ms)
        for stat in ("median", "p95", "min", "max"):
            table.add_row(f"delay {stat} ms", *(num(getattr(d, stat, None)) for d in delays))
        table.add_row("jitter ms", num(data["jitter_ms_ab"]), num(data["jitter_ms_ba"]), "")
        table.add_row(
            "loss %",
            num(data["loss_pct_ab"], 1),
            num(data["loss_pct_ba"], 1),
            num(data["loss_pct"], 1),
        )
        if report.tcp is not None:
            tcp = "failed" if report.tcp.error else num(data["throughput_mbps"], 1)
            table.add_row("TCP Mbit/s", tcp, "", "")
        if report.udp is not None:
            udp = f"{num(data['udp_throughput_mbps'], 1)}, {num(data['udp_loss_pct'], 1)} % lost"
            table.add_row(
                f"UDP Mbit/s at {udp_rate}", "failed" if report.udp.error else udp, "", ""
            )
        out.print(table)
        for note in report.notes:
            out.print(show.text(f"note: {note}"), highlight=False)
        for problem in report.errors:
            err.print(show.text(("error:", "red"), f" {problem}"), highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def compare(
    baseline: Annotated[Path, typer.Argument(help="baseline results (directory or .parquet)")],
    current: Annotated[Path, typer.Argument(help="current results (directory or .parquet)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    markdown: Annotated[bool, typer.Option(help="print a Markdown summary for a PR")] = False,
    github_benchmark: Annotated[
        Path | None,
        typer.Option(help="write github-action-benchmark JSON here (and *-bigger.json)"),
    ] = None,
    alpha: Annotated[float, typer.Option(help="significance level of the tests")] = 0.01,
) -> None:
    """Compare results with a baseline; exit 1 on a significant regression, 0 otherwise."""
    from simnet.present.compare import compare_command

    raise typer.Exit(compare_command(baseline, current, as_json, markdown, github_benchmark, alpha))


@app.command()
def sweep(
    file: Annotated[Path, typer.Argument(help="sweep YAML (base scenario, axes, repeat)")],
    out_dir: Annotated[Path, typer.Option("--out", help="results directory")] = Path("results"),
    jobs: Annotated[int, typer.Option(min=1, help="runs in parallel (isolated networks)")] = 1,
    resume: Annotated[bool, typer.Option(help="skip runs already stored in --out")] = False,
    cluster: Annotated[
        str | None,
        typer.Option(help="a Dask scheduler, tcp://HOST:PORT: run on its workers (as root)"),
    ] = None,
) -> None:
    """Run every point of a parameter sweep; resumable, since every run is stored as it ends."""
    from simnet.doctor import require_root
    from simnet.present.sweep import sweep_command

    if cluster is None:
        require_root()  # with a cluster, the workers need root, not this client
    raise typer.Exit(sweep_command(file, out_dir, jobs, resume, cluster))


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="result directories or .parquet files")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write")] = Path("report.html"),
) -> None:
    """A self-contained HTML report (NAT grid, phase distributions, TURN vs direct, curves)."""
    # matplotlib and pandas: about 1 s, paid by this command alone
    from simnet.present.report.page import say_written, write_report
    from simnet.results.store import load_results

    rows = load_results(results)
    say_written(Console(), write_report(rows, results, out))


def _summary(name: str, rows: list[ResultRow], out_dir: Path) -> None:
    table = Table(title=show.text(f"{name}: {len(rows)} call(s), results in {out_dir}/"))
    for column in ("run", "outcome", "pair", "ICE ms", "set-up ms", "goodput Mbit/s", "RTT ms"):
        table.add_column(column)

    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}"

    for row in rows:
        outcome = show.text((row["path"], "green") if row["connected"] else (row["error"], "red"))
        pair = f"{row['local_candidate']}/{row['remote_candidate']}"
        if row.get("relay_protocol"):
            pair += f" via TURN/{row['relay_protocol']}"
        table.add_row(
            str(row["run"]), outcome, show.text(pair), num(row["ice_connect_ms"]),
            num(row["setup_ms"]), num(row["dc_goodput_mbps"]), num(row["rtt_ms"]),
        )  # fmt: skip
    out.print(table)
    for row in rows:
        if "event0_action" in row:
            _timeline_summary(row, num)


def _timeline_summary(row: ResultRow, num: Callable[[Any], str]) -> None:
    """Per timeline event: when, what the peers noticed and when they were back, and what the
    call's own checks saw of the path until the next event."""
    table = Table(title=f"call {row['run']}: timeline (ms after the data channel opened)")
    for column in ("at", "event", "noticed", "recovered", "path RTT ms", "path loss %"):
        table.add_column(column)
    table.add_row(
        "", "(before)", "", "", num(row.get("path_rtt_ms_before")),
        num(row.get("path_loss_pct_before")),
    )  # fmt: skip
    i = 0
    while f"event{i}_action" in row:
        e = f"event{i}"
        noticed = row.get(f"{e}_noticed_ms")
        noticed_text = "-" if noticed is None else f"+{noticed:.0f} {row[f'{e}_noticed_state']}"
        recovered = row.get(f"{e}_recovered_ms")
        recovered_text: str | Text = "-" if recovered is None else f"+{recovered:.0f}"
        if row.get(f"{e}_recovery_ms") is not None:
            recovered_text += f" ({row[f'{e}_recovery_ms']:.0f} after restore)"
        if row.get(f"{e}_failed_ms") is not None:
            recovered_text = show.text((f"failed +{row[f'{e}_failed_ms']:.0f}", "red"))
        what = f"{row[f'{e}_action']} {row[f'{e}_target']}"
        if row.get(f"{e}_to") is not None:
            what += f" -> {row[f'{e}_to']} ({row.get(f'{e}_address')})"
        if row.get(f"{e}_restart_connected_ms") is not None:  # an ICE restart that was made
            steps = (("started", "restart_started_ms"), ("connected", "restart_connected_ms"),
                     ("media", "media_flowing_ms"))  # fmt: skip
            recovered_text = ", ".join(
                f"{label} +{row[f'{e}_{key}']:.0f}"
                for label, key in steps
                if row.get(f"{e}_{key}") is not None
            )
        elif row.get(f"{e}_error") is not None:
            recovered_text = show.text((str(row[f"{e}_error"]), "red"))
        table.add_row(
            num(row.get(f"{e}_at_ms")), show.text(what),
            show.text(noticed_text), recovered_text, num(row.get(f"{e}_path_rtt_ms")),
            num(row.get(f"{e}_path_loss_pct")),
        )  # fmt: skip
        i += 1
    out.print(table)
    verdict = ("recovered", "green") if row.get("recovered") else ("not recovered", "red")
    out.print(
        show.text("at the end: ", verdict, f"; ICE disconnections: {row.get('ice_disconnects', 0)}")
    )


def main() -> None:
    """Entry point: user errors become one message and an exit code, never a traceback."""
    try:
        app()
    except SimnetError as exc:
        err.print(show.error(exc), highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; everything this run created was removed")
        sys.exit(130)
    except Terminated as exc:
        err.print(show.text(f"terminated ({exc}); everything this run created was removed"))
        sys.exit(143)
    except Exception as exc:  # a bug in simnet: say so, briefly, unless debugging
        if os.environ.get("SIMNET_DEBUG"):
            raise
        err.print(
            show.error(
                f"{type(exc).__name__}: {exc}\n"
                "  (set SIMNET_DEBUG=1 for the traceback and please report it)",
                label="internal error:",
            ),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
