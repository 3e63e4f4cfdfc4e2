"""Tests that measure the emulator's timing run alone; every other test runs beside others.

Why: the suite runs on several pytest-xdist workers (`-n`, in pyproject's addopts), because
most integration tests spend their time waiting on the network (ICE checks, a link's delay,
a call's media time), not on the CPU. A test that measures how precisely a delay line releases
packets, or a machine's load, is different: a neighbour's CPU work is part of its measurement.
Such a module carries `tests.solo.SOLO`: its tests run on one worker in a row (`--dist
loadfile`), and while they run, no other test does.

How: a fair readers-writer lock over two `flock` files shared by the session's workers. Every
test holds the lock shared for its setup, call and teardown; a solo test holds it exclusively,
and keeps it while the next test of its worker is solo too (so a module's held network is
measured undisturbed from its first test to its last). The turnstile makes a waiting solo test
block new shared holders, so it waits only for the tests already running, never for a stream of
new ones. Without xdist there is nothing to share the machine with, and no lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.solo import SOLO_MARK


class _Lock:
    """One worker's end of the session's readers-writer lock."""

    def __init__(self, directory: Path) -> None:
        self._turnstile: IO[bytes] = (directory / "turnstile").open("ab")
        self._lock: IO[bytes] = (directory / "lock").open("ab")
        self.exclusive = False

    def share(self) -> None:
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)

    def take(self) -> None:
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.exclusive = True

    def release(self) -> None:
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        if self.exclusive:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
            self.exclusive = False


_lock: _Lock | None = None
LOCK_DIR_ENV = "SIMNET_TESTS_LOCK_DIR"  # the controller's to its workers, not a simnet setting


def pytest_configure(config: pytest.Config) -> None:
    """The controller makes the lock's directory before its workers start (they inherit its
    environment); each worker opens its end."""
    global _lock
    config.addinivalue_line(
        "markers", f"{SOLO_MARK}: measures timing or load; runs with no other test beside it"
    )
    if os.environ.get("PYTEST_XDIST_WORKER"):
        if directory := os.environ.get(LOCK_DIR_ENV):
            _lock = _Lock(Path(directory))
    elif config.getoption("numprocesses", None):
        os.environ[LOCK_DIR_ENV] = tempfile.mkdtemp(prefix="simnet-tests-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER") and (path := os.environ.pop(LOCK_DIR_ENV, "")):
        shutil.rmtree(path, ignore_errors=True)


def _solo(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker(SOLO_MARK) is not None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if _lock is None:
        yield
        return
    solo = _solo(item)
    if solo and not _lock.exclusive:
        _lock.take()
    elif not solo:
        _lock.share()
    try:
        yield
    finally:
        if not (solo and _solo(nextitem)):
            _lock.release()
