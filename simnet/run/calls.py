"""One `simnet run`: build the scenario's network, start its servers and warm peers, make calls.

The network, coturn, the signaling server and the two peer agents are started once per
invocation and are ready before any clock starts; each repetition is then one call between the
warm agents in a fresh signaling room, so start-up costs never count as connection time.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simnet import settings
from simnet.call.timeline import Timeline
from simnet.net.builder import Network, emulated_network
from simnet.net.capture import hosts_of, start_captures, stop_captures
from simnet.net.impair import pressure
from simnet.net.plan import plan_network
from simnet.results.schema import EmulatorFigures, ResultRow
from simnet.run.load import run_load
from simnet.run.one_call import (
    Services,
    call_of,
    call_outcome,
    one_call,
    queue_namespaces,
    scenario_digest,
    start_services,
)
from simnet.scenario.model import CallSpec, Scenario
from simnet.signals import run_terminable

Row = ResultRow  # what `run_scenario` returns and hands to `on_row`, one per call


Cell = tuple[CallSpec, dict[str, Any]]  # a call to make, and its `ResultRow.cell` columns


async def run_calls(
    network: Network,
    scenario: Scenario,
    cells: list[Cell],
    repeat: int,
    on_row: Callable[[Row], None],
    overrides: Sequence[str] = (),
    pcap_dir: Path | None = None,
    log_dir: Path | None = None,
) -> list[Row]:
    """Make every cell's call `repeat` times (cell by cell) between warm agents. Each row
    records `overrides` (the `--set`s laid over the scenario file): the variant it measured.
    With `pcap_dir`, every host's interface is captured during each call into
    `<pcap_dir>/pcap-<run id>-<call>-<host>.pcap`, named in the row's `pcap_files`. With
    `log_dir`, each HTTP proxy's access log is kept there as `proxy-<run id>-<server>.log`."""
    peers = list(dict.fromkeys(p for call, _ in cells for p in (call.offerer, call.answerer)))
    services = await start_services(network, scenario, peers)
    rows: list[Row] = []
    try:
        for index, (call, extra) in ((i, c) for c in cells for i in range(repeat)):
            started = time.monotonic()
            timeline = Timeline(network, scenario, call) if call.timeline else None
            captures = (
                await start_captures(
                    network, hosts_of(network), pcap_dir, f"pcap-{network.run.id}-{len(rows):04d}"
                )
                if pcap_dir is not None
                else []
            )
            try:
                async with pressure.watched(queue_namespaces(network), network.run) as emulator:
                    offer, answer, agent_error = await one_call(
                        scenario, call, services, len(rows), timeline
                    )
            finally:
                captured = await stop_captures(captures)  # complete files, even on an error
            outcome = await call_outcome(scenario, call, services, offer, answer, agent_error)
            figures = emulator.columns()
            row = ResultRow(
                call=outcome,
                scenario=scenario.name,
                scenario_hash=scenario_digest(scenario),
                overrides=tuple(overrides),
                # File names only: the captures sit beside the row's own file, so the row still
                # finds them after the results directory is moved or copied.
                pcap_files={c.host: c.path.name for c in captured},
                seed=scenario.seed,
                run=index,
                run_id=network.run.id,
                wall_ms=(time.monotonic() - started) * 1000,
                emulator=EmulatorFigures.model_validate(figures) if figures else None,
                timeline=timeline.columns() if timeline is not None else {},
                cell=extra,
            )
            on_row(row)
            rows.append(row)
    finally:
        try:
            if log_dir is not None:
                keep_proxy_logs(services, log_dir, network.run.id)
        finally:
            await services.close()
    return rows


def keep_proxy_logs(services: Services, log_dir: Path, run_id: str) -> list[Path]:
    """Copy each proxy's access log out of the run's work directory (which goes with the run)
    into `log_dir`, next to the rows."""
    kept = []
    for name, proxy in services.proxies.items():
        if not proxy.files.access_log.exists():  # squid opens it at start; a failed start did not
            continue
        target = log_dir / f"proxy-{run_id}-{name}.log"
        shutil.copyfile(proxy.files.access_log, target)
        kept.append(target)
    return kept


def run_scenario(
    scenario: Scenario,
    repeat: int = 1,
    on_row: Callable[[Row], None] = lambda row: None,
    cells: list[Cell] | None = None,
    overrides: Sequence[str] = (),
    pcap_dir: Path | None = None,
    log_dir: Path | None = None,
) -> list[Row]:
    """Build `scenario`, make `repeat` calls (of each cell; default: the scenario's call), tear
    everything down. Rows go to `on_row` as each call ends, so a crash loses nothing measured.
    `overrides` are the `--set`s the scenario was loaded with, recorded in every row; with
    `pcap_dir`, each call is captured on every host, with `log_dir` the proxies' access logs
    are kept (see `run_calls`)."""
    if cells is None and scenario.call is not None and scenario.call.concurrent > 1:
        # each repetition is one level of that many calls
        rows: list[Row] = []

        def kept(row: Row) -> None:
            rows.append(row)
            on_row(row)

        levels = [scenario.call.concurrent] * repeat
        run_load(scenario, levels, ramp_per_s=scenario.call.ramp_per_s, on_row=kept,
                 overrides=overrides)  # fmt: skip
        return rows
    cells = cells or [(call_of(scenario), {})]  # a bad call section fails before building
    settings.check_environment()  # and a bad setting, not once a call has been made
    plan = plan_network(scenario)
    with emulated_network(plan, label=f"run {scenario.name}") as network:
        return run_terminable(
            run_calls(network, scenario, cells, repeat, on_row, overrides, pcap_dir, log_dir)
        )
