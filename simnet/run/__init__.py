"""Jobs: what runs a whole `simnet` command's work and returns its data.

One scenario's calls (`calls`), the NAT matrix (`matrix`), sweeps (`sweep`), `verify-nat`
(`verify_nat`), `probe-link` (`link`), and the run owner's signal handling (`owner`). The CLI
presents what these return; the network, services and peers they drive live in `simnet.net`,
`simnet.services` and `simnet.peer`. This package imports nothing itself, so importing
`simnet.run.owner` (a leaf the network layer uses) pulls in no job.
"""
