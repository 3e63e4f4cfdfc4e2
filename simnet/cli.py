"""The `simnet` command: thin wrappers over the library, and the one place errors are printed."""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from simnet import __version__, show
from simnet.cleanup import cleanup as remove_dead_runs
from simnet.doctor import require_root, run_checks
from simnet.errors import ScenarioError, SimnetError, UsageError, shown_field
from simnet.net import netns, resolv
from simnet.net.registry import owner_alive, read_states
from simnet.peerkinds import DEFAULT_KIND, NAMED_KINDS
from simnet.present.doctor import checks_table
from simnet.settings import check_environment
from simnet.signals import Terminated

if TYPE_CHECKING:
    from simnet.peerkinds import PeerPair
    from simnet.results.schema import ResultRow

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
    typer.Option(
        help=f"peer kind of both sides ({', '.join(NAMED_KINDS)}), or of A and B: "
        f"{','.join(NAMED_KINDS[:2])}"
    ),
]


def _peer_pair(spec: str) -> PeerPair:
    """`--peers` parsed, or typer's usage error (exit 2) naming the option."""
    from simnet.run.peers import peer_pair  # the scenario models: about 0.3 s

    try:
        return peer_pair(spec)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--peers") from None


class MatrixFamily(enum.StrEnum):
    """`simnet matrix --family`: what every network of the matrix gives its users (`nats.X.ip`;
    the values are `simnet.run.matrix.FAMILIES`, a unit test keeps the two alike)."""

    v4 = "v4"
    dual = "dual"
    v6 = "v6"


class OutputFormat(enum.StrEnum):
    """Formats `run --format` writes beside each row's Parquet file (typer rejects others)."""

    csv = "csv"
    json = "json"


def _version(value: bool) -> None:
    if value:
        out.print(show.text(f"simnet {__version__}"))
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="show the version")
    ] = False,
) -> None:
    """Emulated networks for WebRTC: build, poke, verify."""
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
    # pydantic models and the planner: about 0.3 s, not paid by --help or the other commands
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


def _seeded(loaded: Any, seed: str | None, overrides: list[str] | None) -> Any:
    """The scenario with `--seed`'s seed (the file's, or `--set seed=`'s, without it)."""
    from simnet.scenario.seed import parse_seed

    if seed is None:
        return loaded
    if any(o.partition("=")[0].strip() == "seed" for o in overrides or []):
        raise typer.BadParameter("give the seed once: --seed or --set seed=", param_hint="--seed")
    try:
        return loaded.model_copy(update={"seed": parse_seed(seed)})
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--seed") from None


@app.command()
def validate(scenario: ScenarioArg, set_: SetOption = None) -> None:
    """Check a scenario file and show the network it would build (no root needed), and that
    the peer programs its call would start are on this machine (as `run` checks)."""
    # pydantic models and the planner: about 0.3 s, not paid by --help or the other commands
    from simnet.net.plan import plan_network
    from simnet.present.network import call_lines, default_call_note, link_lines, plan_lines
    from simnet.run.peers import missing_programs  # the same check of programs `run` makes
    from simnet.scenario.load import source_of
    from simnet.scenario.model import CallSpec

    loaded = _scenario(scenario, set_)
    call = loaded.call or CallSpec()
    problems = loaded.call_problems(call)
    if not problems:  # run would start these hosts' peers: their programs must be here
        missing_programs(
            loaded.hosts, [call.offerer, call.answerer], source_of(scenario, set_ or [])
        )
    plan = plan_network(loaded)
    for line in [*plan_lines(plan), *link_lines(plan), *call_lines(loaded)]:
        out.print(line)
    name = show.printable(scenario, newlines=False)
    if loaded.call is None and problems:
        out.print(default_call_note(problems[0]))
        verdict = ": valid network, but `simnet run` cannot make its call (see the note)"
        out.print(show.text((f"{name}{verdict}", "yellow")))
        return
    out.print(show.text((f"{name}: valid", "green")))


UP_STATUS_S = 5.0  # how often `simnet up` asks its delay lines for late releases


@app.command()
def up(scenario: ScenarioArg, set_: SetOption = None) -> None:
    """Build a scenario's network and hold it until Ctrl-C or `simnet down`."""
    # the planner and the builder (pyroute2): about 0.5 s, paid by this command alone
    from simnet.net.builder import emulated_network
    from simnet.net.impair.nfqueue import lateness
    from simnet.net.plan import plan_network
    from simnet.present.network import late_status, network_table
    from simnet.services.dns import start_network_dns

    loaded = _scenario(scenario, set_)
    require_root()
    plan = plan_network(loaded)
    info = {"holding": True, "scenario": str(scenario)}
    with (
        _interrupts_reported(),
        emulated_network(plan, label=f"up {loaded.name}", hold_info=info) as network,
    ):
        start_network_dns(network)  # names for `simnet exec` (where the network carries IPv6)
        out.print(network_table(network))
        out.print(
            show.text(
                f"holding run {network.run.id}; poke it with `simnet exec HOST -- CMD`, "
                "stop with Ctrl-C or `simnet down`"
            )
        )
        totals = {line.name: line for line in lateness(network.run)}  # counted from here on
        while not totals:  # no userspace delay line: nothing to report
            signal.pause()
        out.print(late_status(list(totals.values())))
        while True:  # the delay lines' status: printed when a packet was late
            time.sleep(UP_STATUS_S)
            try:
                news = lateness(network.run)
            except SimnetError as exc:  # a helper died: its link drops all; the network stays
                err.print(show.text(("warning:", "yellow"), f" {exc}"), highlight=False)
                while True:
                    signal.pause()
            totals = {n.name: totals[n.name].then(n) if n.name in totals else n for n in news}
            if any(n.late for n in news):
                out.print(late_status(list(totals.values())))


@app.command()
def down(
    run_id: Annotated[str | None, typer.Argument(help="run id (default: all)")] = None,
) -> None:
    """Stop networks held by `simnet up` (they tear themselves down)."""
    targets = [s for s in read_states() if s.get("holding") and run_id in (None, s.get("id"))]
    if not targets:
        raise UsageError(
            "no network is being held" + (f" with run id {shown_field(run_id)}" if run_id else "")
        )
    for state in targets:
        if owner_alive(state):
            os.kill(int(state["owner_pid"]), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(owner_alive(s) for s in targets):
        time.sleep(0.05)
    remove_dead_runs()
    out.print(show.text(f"stopped {', '.join(str(s.get('id')) for s in targets)}"))


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(help="node name, e.g. alice")],
    run_id: Annotated[str | None, typer.Option("--run", help="run id if several are up")] = None,
) -> None:
    """Run a command inside a host of a held network: simnet exec alice -- ping 192.0.2.10."""
    command = list(ctx.args)
    if not command:
        raise UsageError("no command given", fix="simnet exec HOST -- COMMAND [ARGS...]")
    held = [
        s
        for s in read_states()
        if s.get("holding") and owner_alive(s) and run_id in (None, s.get("id"))
    ]
    if not held:
        which = f" with run id {shown_field(run_id)}" if run_id else ""
        raise UsageError(
            f"no network is being held{which}", fix="start one with `simnet up SCENARIO`"
        )
    if len(held) > 1:
        ids = ", ".join(str(s.get("id")) for s in held)
        raise UsageError(f"several networks are up ({ids})", fix="choose one with --run ID")
    nodes: dict[str, str] = held[0].get("nodes", {})
    if host not in nodes:
        raise UsageError(
            f"no host '{shown_field(host)}' in run {held[0]['id']}; hosts: {', '.join(nodes)}"
        )
    netns.enter_for_good(nodes[host])
    command = resolv.wrap(nodes[host], command)  # its own resolv.conf, where it has one
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        raise UsageError(f"command not found: {shown_field(command[0])}") from None
    except OSError as exc:  # a directory, a file without execute permission, not a program
        raise UsageError(
            f"cannot run {shown_field(command[0])}: {exc.strerror or exc}",
            fix="give an executable program (and its arguments) after --",
        ) from None


@app.command()
def cleanup(
    everything: Annotated[
        bool, typer.Option("--all", help="also stop live runs, not only dead runs' leftovers")
    ] = False,
) -> None:
    """Remove namespaces, processes and state left by runs that were killed."""
    require_root()
    report = remove_dead_runs(everything)
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
    checks = run_checks()
    out.print(checks_table(checks))
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
    # the probes and the builder: about 0.7 s, paid by this command alone
    from simnet.present.nat import verdicts_table
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
        out.print(verdicts_table(scenario.name, verdicts, lifetime_max))
    if not all(v.as_configured for v in verdicts):
        raise typer.Exit(1)


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
    seed: Annotated[
        str | None,
        typer.Option(help="the draw's seed: a number, or 'random' (a fresh one, printed)"),
    ] = None,
) -> None:
    """Make WebRTC calls across the scenario's network and measure each phase.

    Exits 1 when a call breaks the scenario's `call.expect` (without one: when a call fails:
    no connection, any error, or a timeline change that could not be made)."""
    # the run machinery, aiortc's controller side and pandas: about 2 s, paid by this command
    from simnet.call.expect import unmet
    from simnet.present.calls import calls_summary, json_line
    from simnet.results import ResultStore
    from simnet.run.calls import run_scenario
    from simnet.run.one_call import call_of
    from simnet.scenario.load import source_of

    loaded = _seeded(_scenario(scenario, set_), seed, set_)
    call_of(loaded, source_of(scenario, set_ or []))
    require_root()
    store = ResultStore(out_dir, loaded.name, [f.value for f in formats or []])
    if seed is not None and seed.strip() == "random":
        err.print(f"seed {loaded.seed} (replay these calls with --seed {loaded.seed})")
    rows: list[ResultRow] = []
    with Progress(console=err, transient=True, disable=as_json) as progress:
        task = progress.add_task(show.markup_safe(f"{loaded.name}: building"), total=repeat)

        def on_row(row: ResultRow) -> None:
            rows.append(row)
            if as_json:
                print(json_line(row), flush=True)
            store.write(row)
            description = show.markup_safe(f"{loaded.name}: run {row.run}")
            progress.update(task, advance=1, description=description)

        with _interrupts_reported():
            run_scenario(
                loaded,
                repeat,
                on_row,
                overrides=set_ or [],
                pcap_dir=out_dir if pcap else None,
                log_dir=out_dir,
            )
    if not as_json:
        for part in calls_summary(loaded.name, rows, out_dir):
            out.print(part)
    expect = loaded.call.expect if loaded.call else None
    # numbered as the table, the JSON lines and the stored rows number them: `run`
    misses = [(row.run, miss) for row in rows for miss in unmet(expect, row)]
    label = "failed:" if expect is None else "unexpected:"
    for run_index, miss in misses:
        err.print(show.text((label, "red"), f" run {run_index}: {miss}"), highlight=False)
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
    peers: PeersOption = DEFAULT_KIND,
    family: Annotated[
        MatrixFamily,
        typer.Option(
            help="v4: IPv4 NATs; dual: the same NATs dual-stack, IPv6 behind each router's "
            "firewall; v6: IPv6-only networks, one per IPv6 firewall filtering (3x3 cells)"
        ),
    ] = MatrixFamily.v4,
) -> None:
    """Call across every ordered pair of NAT presets (IPv6 firewalls with --family v6) and
    show the grid of outcomes."""
    # the run machinery and pandas: about 2 s, paid by this command alone
    from simnet.present.calls import JSON_KEYS, json_line
    from simnet.present.matrix import matrix_grid
    from simnet.results import ResultStore
    from simnet.run.matrix import (
        matrix_cells,
        matrix_family,
        matrix_outcomes,
        matrix_scenario,
        run_matrix,
    )
    from simnet.run.peers import missing_programs

    sides = _peer_pair(peers)
    ip = matrix_family(family.value)
    scenario = matrix_scenario(turn=turn, peers=sides, family=ip)
    missing_programs(scenario.hosts, list(scenario.hosts), "simnet matrix --peers")
    require_root()
    cells = matrix_cells(family=ip)
    store = ResultStore(out_dir, scenario.name)
    rows: list[ResultRow] = []
    with Progress(console=err, transient=True, disable=as_json) as progress:
        task = progress.add_task(f"{scenario.name}: building", total=len(cells) * repeat)
        keys = (*JSON_KEYS, "nat_a", "nat_b", *(() if ip == "v4" else ("family",)))

        def on_row(row: ResultRow) -> None:
            rows.append(row)
            store.write(row)
            if as_json:
                print(json_line(row, keys), flush=True)
            description = show.markup_safe(f"{row['nat_a']} -> {row['nat_b']}")
            progress.update(task, advance=1, description=description)

        with _interrupts_reported():
            run_matrix(repeat, turn, on_row, peers=sides, family=ip)
    outcomes = matrix_outcomes(rows, turn, family=ip)
    wrong = [o.mismatch() for o in outcomes if not o.ok]
    grid = matrix_grid(outcomes, sides, turn, ip)
    if not as_json:
        out.print(grid)
        for line in wrong:
            err.print(show.text(("unexpected:", "red"), f" {line}"))
    if wrong:
        raise typer.Exit(1)


@app.command()
def interop(
    peers: Annotated[
        str | None,
        typer.Option(
            help=f"stacks to pair, separated by commas ({', '.join(NAMED_KINDS)}; default: "
            "every kind `simnet doctor` finds on this machine)"
        ),
    ] = None,
    network: Annotated[
        list[Path] | None,
        typer.Option(
            help="a scenario file to add as a network (repeatable): its call's offerer and "
            "answerer hosts are the templates of each side's hosts"
        ),
    ] = None,
    defaults: Annotated[
        bool,
        typer.Option("--defaults/--no-defaults", help="the four built-in networks"),
    ] = True,
    repeat: Annotated[int, typer.Option(min=1, help="calls per cell")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="results directory")] = Path("results"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per cell run")] = False,
) -> None:
    """Call between every ordered pair of WebRTC stacks on each network and show a stack x
    stack grid per network; exit 1 naming each cell that did not do what its network expects
    (a pair lacking a capability the network needs is not called: `unsupported`)."""
    # the run machinery and pandas: about 2 s, paid by this command alone
    from simnet.present.calls import JSON_KEYS, json_line
    from simnet.present.interop import interop_grids, unsupported_json
    from simnet.results import ResultStore
    from simnet.run.interop import (
        default_networks,
        interop_cells,
        interop_kinds,
        interop_plan,
        network_of_file,
        run_interop,
    )
    from simnet.run.peers import missing_programs
    from simnet.scenario.load import source_of

    try:
        kinds = interop_kinds(peers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--peers") from None
    if not kinds:
        raise UsageError("simnet interop: no stack to pair", fix="give --peers")
    networks = default_networks(kinds) if defaults else []
    for path in network or []:
        try:
            networks.append(network_of_file(_scenario(path, None), kinds))
        except ValueError as exc:
            raise ScenarioError(f"{source_of(path, [])}: {exc}") from None
    if not networks:
        raise UsageError("simnet interop: no network", fix="give --network FILE or --defaults")
    names = [n.name for n in networks]
    if len(set(names)) != len(names):
        raise UsageError(
            f"simnet interop: two networks are called {names!r}", fix="rename a file's `name:`"
        )
    plans = [interop_plan(n, kinds) for n in networks]
    for plan in plans:
        hosts = plan.network.scenario.hosts
        missing_programs(hosts, list(hosts), "simnet interop --peers")
    require_root()
    stores = {p.network.scenario.name: ResultStore(out_dir, p.network.scenario.name) for p in plans}
    rows: list[ResultRow] = []
    total = sum(len(p.cells) for p in plans) * repeat
    with Progress(console=err, transient=True, disable=as_json) as progress:
        task = progress.add_task("interop: building", total=total)

        def on_row(row: ResultRow) -> None:
            rows.append(row)
            stores[row.scenario].write(row)
            if as_json:
                print(json_line(row, (*JSON_KEYS, "network", "offerer_peer", "answerer_peer")),
                      flush=True)  # fmt: skip
            description = f"{row['network']}: {row.call.offerer_peer} -> {row.call.answerer_peer}"
            progress.update(task, advance=1, description=show.markup_safe(description))

        with _interrupts_reported():
            run_interop(plans, repeat, on_row)
    cells = [c for plan in plans for c in interop_cells(plan, rows)]
    if as_json:
        for cell in (c for c in cells if c.unsupported):
            print(unsupported_json(cell), flush=True)
    else:
        for grid in interop_grids(cells):
            out.print(grid)
    wrong = [c.mismatch() for c in cells if not c.ok]
    for line in wrong:
        err.print(show.text(("unexpected:", "red"), f" {line}"), highlight=False)
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
    peers: Annotated[
        str | None,
        typer.Option(
            help=f"peer kind of the callers and callees ({', '.join(NAMED_KINDS)}), or of "
            "callers and callees: A,B (default: the scenario's hosts')"
        ),
    ] = None,
) -> None:
    """Many calls at once through the same servers, level by level: a load curve.

    The scenario's host templates (`hosts.NAME.count`) give the pairs: instance i of the call's
    offerer calls instance i of its answerer. Each call's row is stored as it ends; each level
    is printed (or, with --json, one object per level)."""
    # the run machinery and pandas: about 2 s, paid by this command alone
    from simnet.present.load import load_errors, load_table
    from simnet.results import ResultStore
    from simnet.run.load import call_hosts, load_pairs, peer_overrides, run_load
    from simnet.run.peers import missing_programs
    from simnet.scenario.load import source_of

    overrides = list(set_ or [])
    if media is not None:
        overrides.append(LOAD_MEDIA[media])
    loaded = _scenario(scenario, overrides)
    if peers is not None:
        overrides += peer_overrides(loaded, _peer_pair(peers), source_of(scenario, overrides))
        loaded = _scenario(scenario, overrides)
    source = source_of(scenario, overrides)
    levels = _levels(calls) if calls else [loaded.call.concurrent if loaded.call else 1]
    load_pairs(loaded, levels, source)
    missing_programs(loaded.hosts, list(call_hosts(loaded, source)), source)
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
    peers: Annotated[
        str | None,
        typer.Option(
            help=f"peer kind of both sides ({', '.join(NAMED_KINDS)}), or of A and B: "
            f"{','.join(NAMED_KINDS[:2])}; replaces the mix's stacks (default: the mix's "
            f"stacks:, else {DEFAULT_KIND})"
        ),
    ] = None,
) -> None:
    """Estimate a fleet's direct / relayed / failed call shares from a mix of networks.

    Draws `--calls` calls (each side's network class and stack by the mix's shares, seeded),
    makes them (calls of one cell share a network), and prints the shares with 95 % Wilson
    intervals, the shares of each pair of stacks, the relay protocols, set-up times, the bytes
    through TURN, each class's part of the TURN share and how that share moves when a class's
    share moves by 10 points."""
    # the run machinery and pandas: about 2.5 s, paid by this command alone
    from simnet.population.mix import load_mix, missing_stacks
    from simnet.population.run import run_population
    from simnet.present.population import population_tables
    from simnet.results import ResultStore

    loaded = load_mix(mix, None if peers is None else _peer_pair(peers))
    if cluster is None:  # a cluster's workers run the peers: this machine needs none
        missing_stacks(loaded, mix, "stacks" if peers is None else "--peers")
        require_root()
    store = ResultStore(out_dir, loaded.name)
    with err.status(show.markup_safe(f"{loaded.name}: {calls} calls"), spinner="dots") as status:
        made = [0]

        def on_row(row: ResultRow) -> None:
            store.write(row)
            made[0] += 1
            status.update(show.markup_safe(f"{loaded.name}: call {made[0]} of {calls}"))

        with _interrupts_reported():
            result, _, errors = run_population(loaded, calls, seed, on_row, cluster=cluster)
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
    # the probes and the builder: about 0.7 s, paid by this command alone
    from simnet.present.link import late_table, link_table
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
        out.print(link_table(report, host_a, host_b, udp_rate))
        if (late := late_table(report)) is not None:
            out.print(late)
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
    strict: Annotated[
        bool,
        typer.Option(help="exit 1 when a cell lacks the runs for its tests (use in CI)"),
    ] = False,
    min_runs: Annotated[
        int, typer.Option(min=0, help="exit 1 when a cell has fewer runs on either side")
    ] = 0,
) -> None:
    """Compare results with a baseline; exit 1 on a significant regression (and, with --strict
    or --min-runs, when a cell lacks the runs to tell), 0 otherwise."""
    # pandas and scipy: about 1.5 s, paid by this command alone
    from simnet.present.compare import print_comparison, say_benchmark_written
    from simnet.results.compare_files import (
        bigger_is_better_path,
        load_comparison,
        write_github_benchmark,
    )
    from simnet.results.outputs import check_output_file

    if github_benchmark is not None:  # before reading: a bad path is the first thing said
        for path in (github_benchmark, bigger_is_better_path(github_benchmark)):
            check_output_file(path, "--github-benchmark")
    comparison = load_comparison(baseline, current, alpha, strict, min_runs)
    if github_benchmark is not None:
        bigger = write_github_benchmark(comparison, github_benchmark)
        say_benchmark_written(github_benchmark, bigger)
    print_comparison(comparison, baseline, current, as_json=as_json, markdown=markdown)
    raise typer.Exit(1 if comparison.failed else 0)


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
    # the run machinery and pandas: about 2 s, paid by this command alone
    from simnet.present.sweep import print_sweep, progress_bar, say_interrupted
    from simnet.run.sweep import run_sweep
    from simnet.run.sweep_plan import load_sweep, plan_sweep
    from simnet.run.sweep_points import point_results

    if cluster is None:
        require_root()  # with a cluster, the workers need root, not this client
    try:
        with progress_bar(err) as on_progress:
            summary = run_sweep(
                file, out_dir, jobs, resume, on_progress=on_progress, cluster=cluster
            )
        sweep = load_sweep(file)
        planned = plan_sweep(sweep)
    except KeyboardInterrupt:
        say_interrupted()
        raise typer.Exit(130) from None
    except Terminated as exc:
        say_interrupted(str(exc))
        raise typer.Exit(143) from None
    print_sweep(sweep, planned, point_results(sweep, planned, out_dir), summary, jobs)
    raise typer.Exit(0 if summary.complete else 1)


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="result directories or .parquet files")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write")] = Path("report.html"),
) -> None:
    """A self-contained HTML report (NAT grid, phase distributions, TURN vs direct, curves)."""
    # matplotlib and pandas: about 1 s, paid by this command alone
    from simnet.present.report.page import say_written, write_report
    from simnet.results.outputs import check_output_file
    from simnet.results.store import load_results

    check_output_file(out, "--out")  # before reading the rows (the PNGs beside it: write_report)
    rows = load_results(results)
    say_written(Console(), write_report(rows, results, out))


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
        from simnet import settings

        if settings.debug():
            raise
        err.print(
            show.error(
                f"{type(exc).__name__}: {exc}\n"
                f"  (set {settings.DEBUG_ENV}=1 for the traceback and please report it)",
                label="internal error:",
            ),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
