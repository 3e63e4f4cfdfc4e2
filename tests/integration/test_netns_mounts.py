"""Namespace files under /run/netns: the directory is a shared mount point of its own before
simnet mounts a namespace there, and a namespace hidden under a later mount of the directory
over itself (what `ip netns` makes when it finds no mount point) is still removed by cleanup.

Why: a namespace mounted on the plain directory, then covered by iproute2's bind mount, answers
EBUSY to every removal; `simnet cleanup` ended in an internal error on it and every later
cleanup did too. The hidden case is built in a private directory, so no run's files are touched.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from simnet.net import netns

pytestmark = pytest.mark.integration


def _mountinfo_line(point: Path) -> str | None:
    lines = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4] == str(point)
    ]
    return lines[-1] if lines else None


def _bind(source: Path, target: Path) -> None:
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)


@pytest.fixture
def private_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stand-in for /run/netns (netns.NETNS_DIR) that only this test mounts on."""
    run_dir = tmp_path / "netns"
    run_dir.mkdir()
    monkeypatch.setattr(netns, "NETNS_DIR", run_dir)
    yield run_dir
    for _ in range(4):  # every layer this test may have left, innermost first
        for entry in sorted(run_dir.iterdir()) if run_dir.exists() else []:
            subprocess.run(["umount", "-l", str(entry)], capture_output=True)
        subprocess.run(["umount", "-l", str(run_dir)], capture_output=True)


def test_the_run_dir_is_a_shared_mount_point_once_a_namespace_exists() -> None:
    name = f"simnet-test-{os.getpid()}"
    try:
        with netns.created(name):
            pass
        line = _mountinfo_line(netns.NETNS_DIR)
        assert line is not None, "/run/netns is no mount point"
        assert "shared:" in line.split(" - ")[0]
    finally:
        netns.remove(name)


def test_a_namespace_hidden_under_a_later_bind_mount_is_removed(private_run_dir: Path) -> None:
    hidden = private_run_dir / "sn-hidden-a"
    hidden.touch()
    _bind(Path("/proc/self/ns/net"), hidden)  # a namespace file on the plain directory
    _bind(private_run_dir, private_run_dir)  # then the directory covered by itself
    with pytest.raises(netns.ShadowedNamespace, match="sn-hidden-a"):
        netns.remove("sn-hidden-a")
    assert netns.unshadow()
    assert netns.remove("sn-hidden-a")
    assert not hidden.exists()


def test_a_covering_mount_that_still_holds_namespaces_is_left_alone(
    private_run_dir: Path,
) -> None:
    hidden = private_run_dir / "sn-hidden-b"
    hidden.touch()
    _bind(Path("/proc/self/ns/net"), hidden)
    _bind(private_run_dir, private_run_dir)
    live = private_run_dir / "sn-live"
    live.touch()
    _bind(Path("/proc/self/ns/net"), live)  # someone's namespace on the covering mount
    assert not netns.unshadow()
    assert _mountinfo_line(live) is not None
