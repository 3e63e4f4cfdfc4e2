"""A peer program of the user's own (`peer: {command: ./my-client}`), behind the peer protocol.

simnet ships no agent for it: the scenario's command is the agent. This module is the kind's
hook in the registry (`simnet.peerkinds`): `agent_argv` runs the command with its program found
as a shell would find it, and `find_command` says whether it is there, so a run with a mistyped
command ends before anything is built.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from simnet.peerkinds import Launch


def find_command(program: str) -> str | None:
    """`program` as a shell would find it: a path (relative to the working directory) or a
    name on PATH; None if there is no such executable."""
    if os.sep in program:
        path = Path(program)
        # absolute, not resolved: a venv's python is a symlink that must stay one
        try:
            found = path.is_file() and os.access(path, os.X_OK)
        except OSError:  # a name too long for the file system, say: no such program
            return None
        return str(path.absolute()) if found else None
    try:
        return shutil.which(program)
    except OSError:
        return None


def agent_argv(launch: Launch) -> list[str]:
    """The scenario's command (`launch.command`, already split), its program found now; it is
    started inside the host's namespace, from the directory simnet runs in."""
    program, *args = launch.command
    return [find_command(program) or program, *args]
