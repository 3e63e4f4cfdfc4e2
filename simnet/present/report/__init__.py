"""`simnet report`'s page: one self-contained HTML page from result rows.

Why a page and not a notebook: a benchmark's answer has to travel (attached to an issue, a chat,
a release note) and still open years later without the data, simnet or a network connection. So
every plot is a PNG embedded as base64 and all styling is inline; the PNGs are also written next to
the page, for slides. Plots are drawn on matplotlib `Figure`s with the Agg canvas directly: no
pyplot, no global backend switch, so calling `report` from a notebook or a GUI program does not
change how that program draws.

What the page shows, each section only where the rows carry the data for it:

- an overview per scenario variant (runs, outcomes, median set-up, goodput, RTT, errors);
- the NAT matrix as a coloured grid (direct / relay / failed, median set-up in each cell), from
  `nat_a`/`nat_b` columns (`simnet matrix`) or from two `axis.nats.<name>.preset` sweep axes;
- the distribution of each call phase's time (`offerer_ice_connected_ms`, ...);
- TURN versus direct: set-up, goodput and RTT by path (and relay transport);
- set-up time and goodput against every numeric sweep axis (`axis.*` columns).

A **variant** is what was laid over a scenario file: the row's `overrides` (the `--set`s of
`simnet run`, a sweep point's settings). Rows of one scenario with different overrides measured
different networks, so they are never pooled: each group is labelled by scenario and variant,
e.g. `direct-lan [hosts.alice.link.delay_ms=100]`. Rows written before `overrides` existed fall
back to `scenario_hash` (the scenario as run), labelled `#<hash>` where a scenario has several.
The phase and TURN-versus-direct sections split by group too where the rows hold more than one.

Latency and throughput are taken from successful calls only (connected and no error, as `simnet
run` judges a call: `simnet.results.schema.call_succeeded`): a failed call's partial timings are
not comparable with a finished call's, and the outcome counts account for the failures.
"""
