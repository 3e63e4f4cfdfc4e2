"""Where the pion agent is built and whether that build is current.

A build is stamped with a digest of what it was made from (`source_digest`): the agent's Go
files, the build recipe and the installed pion/webrtc. An agent whose stamp matches is never
rebuilt; any change to one of those rebuilds it on the next run or `./setup.sh`. Standard
library and simnet's ground floor only: a run checks this before every pion peer.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from simnet.peerkinds import Requirement, find_program, kind

_REQUIRED = kind("pion").requirement
if _REQUIRED is None:
    raise ImportError("the registry's pion kind names no agent to look for")
REQUIREMENT: Requirement = _REQUIRED
#: the built agent (the registry's first binary) and its build directory
BINARY = Path(REQUIREMENT.binaries[0])
BUILD_DIR = BINARY.parent
#: the tone's Opus packets the agent replays (2-byte big-endian length, then the packet)
TONE = BUILD_DIR / "tone.opus"
#: the digest of the sources the binary was built from
STAMP = BUILD_DIR / "stamp"
_HERE = Path(__file__).resolve().parent
#: the agent's Go source
SOURCE_DIR = _HERE / "agent"
#: the build recipe, digested with the sources
BUILD_RECIPE = _HERE / "build.py"
#: Debian's Go sources (golang-github-pion-webrtc.v3-dev and its dependencies)
GOCODE = Path("/usr/share/gocode/src")
PION_WEBRTC = GOCODE / "github.com" / "pion" / "webrtc"


def source_digest(
    source_dir: Path = SOURCE_DIR, recipe: Path = BUILD_RECIPE, pion_dir: Path = PION_WEBRTC
) -> str:
    """A digest of what the agent is built from: its Go files (names and contents), the build
    recipe, and the installed pion/webrtc (its directory's change time: a package upgrade)."""
    digest = hashlib.sha256()
    for path in sorted(source_dir.glob("*.go")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    if recipe.is_file():
        digest.update(recipe.read_bytes())
    try:
        digest.update(str(pion_dir.stat().st_mtime_ns).encode())
    except OSError:
        digest.update(b"no pion")
    return digest.hexdigest()


def is_current(
    binary: Path = BINARY, stamp: Path = STAMP, tone: Path = TONE, digest: str | None = None
) -> bool:
    """Whether `binary` (and the tone it replays) exist and were built from today's sources
    (`digest`, default `source_digest()`), as the stamp says."""
    if not (binary.is_file() and os.access(binary, os.X_OK) and tone.is_file()):
        return False
    try:
        built = stamp.read_text().strip()
    except OSError:
        return False
    return built == (digest if digest is not None else source_digest())


def find_go() -> Path | None:
    """The Go toolchain (the registry's other binaries: `go` on PATH)."""
    return find_program(REQUIREMENT.binaries[1:])
