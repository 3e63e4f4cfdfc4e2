"""What simnet builds for a scenario is pinned: the plan, the nftables rulesets, the turnserver
command lines and the link impairments' rules of a few scenarios are compared with the renderings
kept in `tests/unit/data/rendered/` (see `tests.unit.rendered_network`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.rendered_network import SCENARIOS, render, stored


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_rendering_is_unchanged(path: Path) -> None:
    expected = json.loads(stored(path).read_text(encoding="utf-8"))
    assert json.loads(json.dumps(render(path))) == expected
