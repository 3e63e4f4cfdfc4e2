"""`simnet population MIX`: draw calls from a mix, make them, estimate the fleet's shares.

The draw is seeded (`simnet.population.mix.sample`): the same mix, calls and seed give the same
calls, each side's network class and WebRTC stack. Calls of one cell (offerer class and stack,
answerer class and stack) share a network (one build, warm peers, `repeat` calls), so a
500-call population of one stack costs one build per drawn pair of classes (24 for
`scenarios/mixes/field.yaml`), not 500; a mix of stacks multiplies the cells. Locally the cells
run one after another; with `cluster`, each cell is a batch on the Dask cluster
(`simnet.run.cluster`), its scenario naming its peers. Every row is written as its call ends,
with the columns `population`, `offerer_class`, `answerer_class` and `population_stacks` (the
stacks the run drew from, `Mix.stacks_label`); each side's stack is the row's `offerer_peer` /
`answerer_peer`. The estimate comes from the rows (`simnet.population.estimate`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from simnet.population.estimate import PopulationEstimate, SampledCall, estimate
from simnet.population.mix import Drawn, Mix, cells, sample, scenario_for
from simnet.results.schema import ResultRow
from simnet.run.calls import run_scenario
from simnet.run.cluster import Batch, execute_on_cluster
from simnet.scenario.model import Scenario


class PopulationColumns(TypedDict):
    """The columns a population run adds to each row: which mix, which pair of classes, and
    the stacks the run drew from."""

    population: str
    offerer_class: str
    answerer_class: str
    population_stacks: str


def _columns(mix: Mix, cell: Drawn) -> PopulationColumns:
    return {
        "population": mix.name,
        "offerer_class": cell.offerer_class,
        "answerer_class": cell.answerer_class,
        "population_stacks": mix.stacks_label(),
    }


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
) -> tuple[PopulationEstimate, list[ResultRow], list[str]]:
    """Make the `calls` drawn calls; return the estimate, the rows (each also to `on_row` as its
    call ends) and what went wrong (a cluster batch that failed: its calls have no row). Each
    side's stack is drawn from the mix's `stacks:` (`Mix.running` puts `--peers` there)."""
    drawn = cells(sample(mix, calls, seed))
    rows: list[ResultRow] = []
    errors: list[str] = []

    def cell_scenario(cell: Drawn) -> Scenario:
        return scenario_for(
            mix,
            mix.by_name("offerer", cell.offerer_class),
            mix.by_name("answerer", cell.answerer_class),
            (cell.offerer_stack, cell.answerer_stack),
        )

    def kept(row: ResultRow) -> None:
        rows.append(row)
        on_row(row)

    if cluster is not None:
        batches = []
        for cell, count in drawn.items():
            batches.append(
                Batch(
                    scenario_json=cell_scenario(cell).model_dump_json(),
                    overrides=[],
                    runs=[{"run": i, **_columns(mix, cell)} for i in range(count)],
                    keys=["/".join((*cell, str(i))) for i in range(count)],
                )
            )
        execute_on_cluster(cluster, batches, kept, errors)
    else:
        for cell, count in drawn.items():
            run_scenario(cell_scenario(cell), count, _placing(kept, _columns(mix, cell)))
    return estimate([SampledCall.of_row(r) for r in rows], mix), rows, errors
