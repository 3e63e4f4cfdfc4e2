"""NAT behaviours for tests: hypothesis strategies over the knobs, and every knob combination."""

from __future__ import annotations

from hypothesis import strategies as st

from simnet.scenario.nat import OPEN, Filtering, Mapping, NatBehavior, PortAllocation


def nats(translates: st.SearchStrategy[bool]) -> st.SearchStrategy[NatBehavior]:
    """NAT behaviours with any knobs, translating as `translates` draws."""
    return st.builds(
        NatBehavior,
        translates=translates,
        mapping=st.sampled_from(Mapping),
        filtering=st.sampled_from(Filtering),
        port_allocation=st.sampled_from(PortAllocation),
        hairpin=st.booleans(),
        udp_timeout_s=st.integers(min_value=1, max_value=86400),
    )


translating = nats(st.just(True))
not_translating = nats(st.just(False))
# Any behaviour the model accepts, including odd non-translating ones (a router's knobs are
# irrelevant when it does not translate) and the `open` preset itself.
behaviours = st.one_of(translating, st.just(OPEN), nats(st.booleans()))

# Each mapping, filtering and port allocation with each other, hairpinning.
EVERY_BEHAVIOUR = [
    NatBehavior(mapping=m, filtering=f, port_allocation=p, hairpin=True)
    for m in Mapping
    for f in Filtering
    for p in PortAllocation
]
