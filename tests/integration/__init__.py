"""Tests on the real thing: namespaces, nftables, coturn, aiortc, Chromium, Dask."""
