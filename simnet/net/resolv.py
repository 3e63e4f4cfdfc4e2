"""Which DNS resolver a namespace's processes use: /etc/netns/<ns>/resolv.conf, as `ip netns`.

glibc (and so aiortc's and Chromium's name lookups) reads /etc/resolv.conf, a file of the mount
namespace, not of the network namespace. iproute2's convention gives each network namespace its
own: `ip netns exec NS CMD` runs CMD in a private mount namespace in which every file of
/etc/netns/NS/ is bind-mounted over its namesake in /etc. simnet uses that convention as it is:

- `install` writes /etc/netns/<ns>/resolv.conf naming the node's resolver (`Node.resolver`),
  registered with the run first (`Run.register_path`), so teardown and `simnet cleanup` remove
  it;
- `wrap` prefixes a command with `ip netns exec <ns>` when its namespace has one, which
  `simnet.net.process.start` does for every process it starts there.

Why `ip netns exec` rather than doing the mounts here: Python 3.11 has no `os.unshare`, and a
private mount namespace must be made by the process that will exec the command; `ip netns exec`
is that process, does the bind mounts of /etc/netns and remounts /sys for the namespace, then
execs the command in place (same pid, so the run's record of the process stays right). The
calling thread is already in the namespace, so its own `setns` is a no-op. Nothing changes for
a namespace without such a file: commands run unwrapped, as they always have.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from simnet.addresses import IPAddress
from simnet.net.registry import Run

ETC_NETNS = Path("/etc/netns")
RESOLV_CONF = "resolv.conf"
IP = "ip"


def render(nameservers: Sequence[IPAddress]) -> str:
    """A resolv.conf naming `nameservers` (pure). One try of one second each: the emulated
    network answers in a millisecond, and a lookup that fails should fail fast."""
    lines = [f"nameserver {address}" for address in nameservers]
    return "\n".join([*lines, "options timeout:1 attempts:2"]) + "\n"


def path_of(ns: str) -> Path:
    return ETC_NETNS / ns / RESOLV_CONF


def install(run: Run, ns: str, nameservers: Sequence[IPAddress]) -> Path:
    """Write namespace `ns`'s resolv.conf, its directory registered with `run` beforehand."""
    directory = ETC_NETNS / ns
    run.register_path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RESOLV_CONF
    path.write_text(render(nameservers))
    return path


def wrap(ns: str | None, argv: Sequence[str]) -> list[str]:
    """`argv` run so that it sees namespace `ns`'s resolv.conf, if it has one.

    A program that cannot be found is left unwrapped, so that starting it fails as it would
    anywhere (FileNotFoundError, which callers turn into "not installed"), not as an exit of
    `ip`."""
    if ns is None or not argv or not path_of(ns).exists() or shutil.which(argv[0]) is None:
        return list(argv)
    return [IP, "netns", "exec", ns, *argv]
