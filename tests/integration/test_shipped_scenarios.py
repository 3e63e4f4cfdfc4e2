"""Every shipped scenario, run as a user runs it (`simnet run FILE --json`), meets its own
`call.expect`: the path ICE takes, the relay transport, the RTT its links imply. A scenario whose
network or peers drift from what its comments promise fails here, not in a user's CI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simnet.call.expect import unmet
from simnet.results.schema import CallOutcome, ResultRow
from simnet.scenario import load_scenario

pytestmark = pytest.mark.integration
SHIPPED = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))


def test_every_shipped_scenario_states_its_expected_outcome() -> None:
    assert len(SHIPPED) >= 10
    missing = [p.name for p in SHIPPED if (load_scenario(p).call or None) is None]
    missing += [p.name for p in SHIPPED if (c := load_scenario(p).call) and c.expect is None]
    assert not missing, f"scenarios without call.expect: {missing}"


def _as_row(printed: dict[str, Any]) -> ResultRow:
    """A row as `simnet run --json` printed it, typed again (the columns expectations read)."""
    call = CallOutcome(**{k: v for k, v in printed.items() if k in CallOutcome.model_fields})
    timeline = {k: printed[k] for k in ("recovered", "timeline_error") if printed[k] is not None}
    return ResultRow(
        call=call, scenario=printed["scenario"], scenario_hash="", seed=0, run=printed["run"],
        run_id=printed["run_id"], wall_ms=0.0, timeline=timeline,
    )  # fmt: skip


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_a_shipped_scenario_runs_as_expected(path: Path, tmp_path: Path, tools: Any) -> None:
    done = tools.run_cli("run", str(path), "--json", "--out", str(tmp_path), timeout=120)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    call = load_scenario(path).call
    assert call is not None and call.expect is not None
    # one row per call: a scenario of concurrent calls makes that many at once
    assert done.returncode == 0 and len(rows) == call.concurrent, done.output
    for row in rows:
        assert not unmet(call.expect, _as_row(row)), row  # the CLI's verdict, checked again
    assert not tools.namespaces(f"sn-{rows[0]['run_id']}-")


def test_a_call_that_breaks_its_expectation_fails_the_run_and_says_how(
    tmp_path: Path, tools: Any
) -> None:
    scenario = str(Path(SHIPPED[0]).with_name("direct-lan.yaml"))
    done = tools.run_cli(
        "run", scenario, "--out", str(tmp_path), "--set", "call.expect.path=relay", timeout=120
    )
    assert done.returncode == 1, done.output
    assert "unexpected: run 0: path 'direct', expected 'relay'" in done.output
    assert "Traceback" not in done.output
