"""`simnet population MIX`: draw calls from a mix, make them, estimate the fleet's shares.

The draw is seeded (`simnet.population.mix.sample`): the same mix, calls and seed give the same
calls. Calls of one pair of classes share a network (one build, warm peers, `repeat` calls), so
a 500-call population costs one build per drawn pair (24 for `scenarios/mixes/field.yaml`), not
500. Locally the pairs run one after another; with `cluster`, each pair is a batch on the Dask
cluster (`simnet.run.cluster`). Every row is written as its call ends, with the columns
`population`, `offerer_class`, `answerer_class`; the estimate comes from the rows
(`simnet.population.estimate`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from simnet.peerkinds import DEFAULT_PAIR, PeerPair
from simnet.population.estimate import PopulationEstimate, SampledCall, estimate
from simnet.population.mix import Mix, cells, sample, scenario_for
from simnet.results.schema import ResultRow
from simnet.run.calls import run_scenario
from simnet.run.cluster import Batch, execute_on_cluster
from simnet.scenario.model import Scenario


class PopulationColumns(TypedDict):
    """The columns a population run adds to each row: which mix, which pair of classes."""

    population: str
    offerer_class: str
    answerer_class: str


def _columns(mix: Mix, offerer: str, answerer: str) -> PopulationColumns:
    return {"population": mix.name, "offerer_class": offerer, "answerer_class": answerer}


def _placing(
    sink: Callable[[ResultRow], None], columns: PopulationColumns
) -> Callable[[ResultRow], None]:
    def place(row: ResultRow) -> None:
        sink(row.placed(**columns))

    return place


def run_population(
    mix: Mix,
    calls: int,
    seed: int,
    on_row: Callable[[ResultRow], None] = lambda row: None,
    cluster: str | None = None,
    peers: PeerPair = DEFAULT_PAIR,
) -> tuple[PopulationEstimate, list[ResultRow], list[str]]:
    """Make the `calls` drawn calls; return the estimate, the rows (each also to `on_row` as its
    call ends) and what went wrong (a cluster batch that failed: its calls have no row). The
    offerers run the stack `peers[0]`, the answerers `peers[1]`."""
    drawn = cells(sample(mix, calls, seed))
    rows: list[ResultRow] = []
    errors: list[str] = []

    def cell_scenario(a: str, b: str) -> Scenario:
        return scenario_for(mix, mix.by_name("offerer", a), mix.by_name("answerer", b), peers)

    def kept(row: ResultRow) -> None:
        rows.append(row)
        on_row(row)

    if cluster is not None:
        batches = []
        for (a, b), count in drawn.items():
            batches.append(
                Batch(
                    scenario_json=cell_scenario(a, b).model_dump_json(),
                    overrides=[],
                    runs=[{"run": i, **_columns(mix, a, b)} for i in range(count)],
                    keys=[f"{a}/{b}/{i}" for i in range(count)],
                )
            )
        execute_on_cluster(cluster, batches, kept, errors)
    else:
        for (a, b), count in drawn.items():
            run_scenario(cell_scenario(a, b), count, _placing(kept, _columns(mix, a, b)))
    return estimate([SampledCall.of_row(r) for r in rows], mix), rows, errors
