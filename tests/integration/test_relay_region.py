"""`servers.NAME.region` labels a TURN server, and each row says which region relayed the call.

Why: `region` was accepted and never read, so `scenarios/two-turn-regions.yaml` set a knob that
did nothing. Now the row's `relay_region` is the `region` of the TURN server whose address the
call's relay candidate came from, which is the server `call.turn_server` chose.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "two-turn-regions.yaml"


@pytest.mark.integration
@pytest.mark.parametrize(("server", "region"), [(None, "eu"), ("turn-us", "us")])
def test_the_row_names_the_region_that_relayed(
    server: str | None, region: str, tmp_path, tools
) -> None:
    chosen = ["--set", f"call.turn_server={server}"] if server else []
    done = tools.run_cli(
        "run", str(SCENARIO), "--json", "--out", str(tmp_path), *chosen, timeout=120
    )
    assert done.returncode == 0, done.output
    row = json.loads(done.stdout.splitlines()[-1])
    assert row["path"] == "relay"  # symmetric NATs on both sides: every call is relayed
    assert row["relay_region"] == region
