"""Jobs: what runs a whole `simnet` command's work and returns its data.

One scenario's calls (`calls`), the NAT matrix (`matrix`), sweeps (`sweep`), `verify-nat`
(`verify_nat`), `probe-link` (`link`). The CLI presents what these return; the network, services
and peers they drive live in `simnet.net`, `simnet.services` and `simnet.peer`, and the run
owner's signal handling in `simnet.signals`. This package imports nothing itself.
"""
