"""The report's NAT matrix sections never pool matrices of different families: each family's
matrix is a scenario of its own, and the table of stacks side by side is one per scenario."""

from __future__ import annotations

import pandas as pd

from simnet.present.report.grid import nat_matrices
from simnet.present.report.rows import ordered, prepare
from simnet.run.matrix import axis, matrix_name


def _rows(family: str, stack: str, ip_family: str | None) -> list[dict[str, object]]:
    return [
        {
            "scenario": matrix_name(True, family),
            "nat_a": a,
            "nat_b": b,
            "connected": True,
            "path": "direct",
            "error": None,
            "setup_ms": 50.0,
            "offerer_peer": stack,
            "answerer_peer": stack,
            "ip_family": ip_family,
        }
        for a in axis(family)
        for b in axis(family)
    ]


def test_families_and_stacks_are_never_pooled() -> None:
    frame = pd.DataFrame(
        [
            *_rows("v4", "aiortc", None),
            *_rows("dual", "aiortc", "ipv4"),
            *_rows("dual", "chromium", "ipv6"),
            *_rows("v6", "chromium", "ipv6"),
        ]
    )
    sections = nat_matrices(prepare(frame))
    titles = [s.title for s in sections]
    grids = [t for t in titles if "by WebRTC stack" not in t]
    assert len(grids) == 4  # one per scenario and stack
    # the stacks side by side: only the dual matrix holds both stacks, and only its rows
    [stacks] = [s for s in sections if "by WebRTC stack" in s.title]
    assert stacks.title.endswith("nat-matrix-dual")
    assert "direct ipv4, 50 ms" in stacks.body and "direct ipv6, 50 ms" in stacks.body
    [v6] = [s for s in sections if "nat-matrix-v6" in s.title]
    assert "direct ipv6" in v6.body and "symmetric" not in v6.body


def test_the_ipv6_filterings_are_ordered_from_open_to_apdf() -> None:
    assert ordered(["address-and-port-dependent", "open", "address-dependent"]) == list(axis("v6"))
    assert ordered(["symmetric", "open"]) == ["open", "symmetric"]
