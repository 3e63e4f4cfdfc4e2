"""The seed a run draws its randomness from: a number given, or a fresh one from the OS.

A fixed seed replays one draw of the links' loss, jitter and other random choices (a
regression test of that draw); rates need many draws, so `random` takes a fresh seed, which the
caller prints and every row records, so that one call can be replayed with that number.
"""

from __future__ import annotations

import secrets

from simnet.scenario.model import SEED_MAX

RANDOM = "random"
FRESH_SEED_BITS = 32  # short enough to read and type back as `--seed N`


def fresh_seed() -> int:
    """A seed drawn from the OS, independent of every earlier run."""
    return secrets.randbits(FRESH_SEED_BITS)


def parse_seed(text: str) -> int:
    """`random` (a fresh seed) or a whole number 0..SEED_MAX; ValueError saying what is
    accepted otherwise."""
    if text.strip() == RANDOM:
        return fresh_seed()
    digits = text.strip()
    if digits.isascii() and digits.isdigit() and int(digits) <= SEED_MAX:
        return int(digits)
    shown = text if len(text) <= 40 else text[:40] + "…"
    raise ValueError(
        f"{shown!r} is not a seed: give a whole number from 0 to {SEED_MAX}, or '{RANDOM}'"
    )
