"""Link impairments: delay, jitter, loss (independent or in bursts), duplication, reordering, rate,
queue size and MTU per link and direction, as a scenario's `link:` sections say.

`chooser.apply_links` is the one entry point (the builder calls it after the nftables rules);
it picks a backend once per process: `netem` where the kernel has sch_netem, else `nfqueue`
(nftables + NFQUEUE delay line + tbf). Both mean the same thing by the same scenario; see
`rules` for where each puts what. This package's `__init__` imports nothing on purpose: the
userspace helper (`python -m simnet.net.impair.nfqueue_helper`) starts through it, and every
import delays the runs that use it.
"""
