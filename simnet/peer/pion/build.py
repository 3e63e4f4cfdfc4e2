"""Builds simnet's pion agent offline from Debian's Go packages: `python -m simnet.peer.pion.build`
(what ./setup.sh runs; it does nothing when the build is current, unless `--force`).

Debian ships pion's sources under /usr/share/gocode/src for GOPATH builds; its go.mod files name
versions that are not installed, so module mode cannot build them offline. The build is a GOPATH
build (GO111MODULE=off) whose private GOPATH links the import paths pion uses with a major
version (`github.com/pion/webrtc/v3`, `sdp/v3`, `transport/v2`, `udp/v2`) to Debian's
unversioned folders, and the agent's own source as `simnet-pion`. Nothing is downloaded
(GOPROXY=off, GOFLAGS=-mod=mod is not used, no module cache). The tone's Opus packets are
encoded once with aiortc's encoder (the packets aiortc's `coding: replay` sends).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simnet.errors import EnvironmentProblem
from simnet.peer.pion.stamp import (
    BINARY,
    BUILD_DIR,
    GOCODE,
    PION_WEBRTC,
    REQUIREMENT,
    SOURCE_DIR,
    STAMP,
    TONE,
    find_go,
    is_current,
    source_digest,
)

#: import paths with a major version -> Debian's folder (GOPATH mode has no /vN directories)
VERSIONED = {
    "github.com/pion/webrtc/v3": "github.com/pion/webrtc",
    "github.com/pion/sdp/v3": "github.com/pion/sdp",
    "github.com/pion/transport/v2": "github.com/pion/transport",
    "github.com/pion/udp/v2": "github.com/pion/udp",
}
PACKAGE = "golang-github-pion-webrtc.v3-dev"
AGENT_IMPORT = "simnet-pion"


def pion_version() -> str:
    """Debian's pion/webrtc version without its Debian revision (3.1.56), or "unknown"."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", PACKAGE],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    version = done.stdout.strip()
    if done.returncode != 0 or not version:
        return "unknown"
    return version.split(":")[-1].rsplit("-", 1)[0]


def gopath(build_dir: Path = BUILD_DIR, gocode: Path = GOCODE) -> Path:
    """The build's private GOPATH (links only), made or repaired now."""
    root = build_dir / "gopath"
    links = {**{k: gocode / v for k, v in VERSIONED.items()}, AGENT_IMPORT: SOURCE_DIR}
    for name, target in links.items():
        link = root / "src" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return root


def write_tone(path: Path) -> None:
    """The tone's Opus packets, each a 2-byte big-endian length then its bytes."""
    # function-level import: aiortc and PyAV load only when a build runs
    from simnet.peer.aiortc.media import encoded_tone

    data = b"".join(struct.pack(">H", len(p)) + p for p in encoded_tone())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


@contextmanager
def _locked(build_dir: Path) -> Iterator[None]:
    """One build at a time (two peers of a run may ask at once)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(force: bool = False) -> float:
    """Build the agent if it is not current (or `force`); the seconds it took (0: current)."""
    with _locked(BUILD_DIR):
        digest = source_digest()
        if not force and is_current(digest=digest):
            return 0.0
        go = find_go()
        if go is None:
            raise EnvironmentProblem(
                "no Go toolchain (go) to build the pion agent", fix=REQUIREMENT.fix
            )
        if not PION_WEBRTC.is_dir():
            raise EnvironmentProblem(
                f"no pion/webrtc sources in {PION_WEBRTC} to build the pion agent",
                fix=REQUIREMENT.fix,
            )
        started = time.monotonic()
        root = gopath()
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": f"{root}{os.pathsep}{GOCODE.parent}",
            "GOCACHE": str(BUILD_DIR / "cache"),
            "GOPROXY": "off",
            "GOFLAGS": "",
            "CGO_ENABLED": "0",
        }
        tmp = BINARY.with_name(BINARY.name + ".tmp")
        done = subprocess.run(
            [
                str(go),
                "build",
                "-o",
                str(tmp),
                "-ldflags",
                f"-X main.pionVersion={pion_version()}",
                AGENT_IMPORT,
            ],
            cwd=root / "src" / AGENT_IMPORT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            raise EnvironmentProblem(
                f"building the pion agent failed ({go} build, exit {done.returncode}): {tail}",
                fix=REQUIREMENT.fix,
            )
        tmp.replace(BINARY)
        write_tone(TONE)
        STAMP.write_text(digest + "\n")
        return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simnet.peer.pion.build", description=__doc__)
    parser.add_argument("--force", action="store_true", help="build even when current")
    args = parser.parse_args(argv)
    try:
        took = build(force=args.force)
    except EnvironmentProblem as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(
        f"pion agent built in {took:.1f} s: {BINARY}\n"
        if took
        else f"pion agent up to date: {BINARY}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
