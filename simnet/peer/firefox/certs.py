"""The certificates a Firefox peer's profile trusts: added to the profile's own NSS database.

Firefox checks a `turns:` server's certificate as it checks a web site's (NSS, mozilla::pkix),
against the certificate database of its profile; no preference and no WebDriver session
capability makes its WebRTC TLS accept another certificate. So, before the browser starts, the
agent creates the fresh profile's database (`cert9.db`, empty password) with NSS's `certutil`
(Debian's libnss3-tools) and adds each PEM file it is to trust as a CA trusted for TLS servers
(trust flags "C,,"). Nothing outside the profile changes, and the database goes with it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

CERTUTIL = "certutil"
CERTUTIL_FIX = "run ./setup.sh (or: apt-get install libnss3-tools)"
TIMEOUT_S = 10.0


class TrustError(Exception):
    """A certificate could not be added to the profile's database."""


def certutil() -> str | None:
    """NSS's `certutil`, if installed."""
    return shutil.which(CERTUTIL)


def trust_in_profile(profile: Path, pem_files: Sequence[Path]) -> None:
    """Create `profile`'s NSS database and trust each of `pem_files` in it for TLS servers."""
    if not pem_files:
        return
    program = certutil()
    if program is None:
        raise TrustError(f"no {CERTUTIL} to trust {pem_files[0]} with: {CERTUTIL_FIX}")
    db = f"sql:{profile}"
    _run([program, "-N", "-d", db, "--empty-password"])
    for index, pem in enumerate(pem_files):
        _run([program, "-A", "-n", f"simnet-ca-{index}", "-t", "C,,", "-i", str(pem), "-d", db])


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()
        raise TrustError(f"{' '.join(argv)} failed ({done.returncode}): {message}")
