"""Fixtures shared by several unit test modules."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from simnet.net import netns
from tests.unit.nft_scratch import NFT


@pytest.fixture(scope="module")
def scratch_ns() -> Iterator[str]:
    """An empty network namespace to check nftables rulesets in (`nft_scratch.nft_check`):
    nothing is applied even there, `nft -c` only parses and validates against the kernel."""
    if os.geteuid() != 0:
        pytest.skip("nft -c needs root (CAP_NET_ADMIN)")
    if NFT is None:
        pytest.skip("nft is not installed")
    name = f"simnet-unit-{secrets.token_hex(3)}"
    with netns.created(name):
        pass
    try:
        yield name
    finally:
        netns.remove(name)
