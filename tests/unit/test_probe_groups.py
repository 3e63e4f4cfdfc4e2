"""Which NATs `verify-nat` may probe at once: those whose probes cross no common translating
router. A shared NAT's port allocation would interleave between two probes that cross it."""

from __future__ import annotations

from simnet.run.verify_nat import probe_layout, sharing_a_translator
from simnet.scenario.load import scenario_from_dict


def test_a_chain_is_one_group_and_independent_nats_their_own() -> None:
    scenario = scenario_from_dict(
        {
            "name": "groups",
            "nats": {
                "a": {"preset": "full-cone"},
                "b": {"preset": "symmetric"},
                "carrier": {"preset": "port-restricted-cone"},
                "home": {"preset": "restricted-cone", "behind": "carrier"},
                "flat": {"preset": "open"},
                "behind-open": {"preset": "symmetric", "behind": "flat"},
            },
        }
    )
    groups = sorted(sorted(g) for g in sharing_a_translator(probe_layout(scenario)))
    assert groups == [["a"], ["b"], ["behind-open"], ["carrier", "home"], ["flat"]]


def test_the_cgnat_preset_is_probed_in_turn() -> None:
    scenario = scenario_from_dict({"name": "cg", "nats": {"x": {"preset": "cgnat"}}})
    assert [sorted(g) for g in sharing_a_translator(probe_layout(scenario))] == [["x", "x-carrier"]]
