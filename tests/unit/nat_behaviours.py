"""NAT behaviours for tests: hypothesis strategies over the knobs, and every knob combination."""

from __future__ import annotations

from hypothesis import strategies as st

from simnet.scenario.nat import OPEN, Filtering, Mapping, NatBehavior, PortAllocation

mappings = st.sampled_from(Mapping)
filterings = st.sampled_from(Filtering)
allocations = st.sampled_from(PortAllocation)
timeouts = st.integers(min_value=1, max_value=86400)

translating = st.builds(
    NatBehavior,
    translates=st.just(True),
    mapping=mappings,
    filtering=filterings,
    port_allocation=allocations,
    hairpin=st.booleans(),
    udp_timeout_s=timeouts,
)
# Any behaviour the model accepts, including odd non-translating ones (a router's knobs are
# irrelevant when it does not translate) and the `open` preset itself.
behaviours = st.one_of(
    translating,
    st.just(OPEN),
    st.builds(
        NatBehavior,
        translates=st.booleans(),
        mapping=mappings,
        filtering=filterings,
        port_allocation=allocations,
        hairpin=st.booleans(),
        udp_timeout_s=timeouts,
    ),
)
not_translating = st.builds(
    NatBehavior,
    translates=st.just(False),
    mapping=mappings,
    filtering=filterings,
    port_allocation=allocations,
    hairpin=st.booleans(),
    udp_timeout_s=timeouts,
)

# Each mapping, filtering and port allocation with each other, hairpinning.
EVERY_BEHAVIOUR = [
    NatBehavior(mapping=m, filtering=f, port_allocation=p, hairpin=True)
    for m in Mapping
    for f in Filtering
    for p in PortAllocation
]
