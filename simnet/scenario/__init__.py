"""The declarative side: what a scenario says, with no knowledge of the kernel."""

from simnet.scenario.load import load_scenario, scenario_from_dict
from simnet.scenario.model import Scenario
from simnet.scenario.nat import (
    PRESETS,
    Filtering,
    Mapping,
    NatBehavior,
    PortAllocation,
    effective_behavior,
)

__all__ = [
    "PRESETS",
    "Filtering",
    "Mapping",
    "NatBehavior",
    "PortAllocation",
    "Scenario",
    "effective_behavior",
    "load_scenario",
    "scenario_from_dict",
]
