"""Checks a ruleset with `nft -c` in a scratch namespace (the conftest's `scratch_ns` fixture)."""

from __future__ import annotations

import shutil
import subprocess

from simnet.net import netns

NFT = shutil.which("nft")


def nft_check(ns: str, ruleset: str) -> subprocess.CompletedProcess[str]:
    assert NFT is not None
    with netns.entered(ns):  # the child inherits the calling thread's namespace
        return subprocess.run(
            [NFT, "-c", "-f", "-"], input=ruleset, capture_output=True, text=True, check=False
        )
