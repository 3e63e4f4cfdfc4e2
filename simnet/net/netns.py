"""Network namespace primitives that work per *thread*.

`setns(CLONE_NEWNET)` moves only the calling thread, and a socket stays in the namespace it was
created in. So simnet creates namespaces, opens netlink sockets, applies nftables and writes
per-namespace sysctls from its own process by briefly switching the calling thread, instead of
forking a helper per operation (pyroute2's `netns.create` and `NetNS` fork a child each time).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_T = TypeVar("_T")


def _check(result: int, what: str, name: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} failed for netns {name}: {os.strerror(err)}")


def path_of(name: str) -> Path:
    return NETNS_DIR / name


def _setns(fd: int, name: str) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns", name)


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside namespace `name`, then come back.

    The body must not await: other coroutines on this thread would run inside the namespace.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path_of(name), os.O_RDONLY)
        try:
            _setns(target, name)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own, "(original)")
    finally:
        os.close(own)


@contextmanager
def created(name: str) -> Iterator[None]:
    """Create namespace `name` (like `ip netns add`) and run the body inside it."""
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    path = path_of(name)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
        os.close(fd)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare", name)
            try:
                _check(
                    _libc.mount(b"/proc/thread-self/ns/net", bytes(path), b"none", MS_BIND, None),
                    "mount",
                    name,
                )
                yield
            finally:
                _setns(own, "(original)")
        except BaseException:
            remove(name)
            raise
    finally:
        os.close(own)


def remove(name: str) -> bool:
    """Detach and delete a namespace's mount point; the kernel frees it when unused.

    Returns False if it did not exist.
    """
    path = path_of(name)
    _libc.umount2(bytes(path), MNT_DETACH)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def exists(name: str) -> bool:
    return path_of(name).exists()


def list_names(prefix: str = "") -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def socket_in(
    name: str, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
) -> socket.socket:
    """A socket that lives in namespace `name`, usable from any thread afterwards."""
    with entered(name):
        return socket.socket(family, type, proto)


def write_sysctl(key: str, value: str | int) -> None:
    """Write a sysctl of the *calling thread's* namespace (`/proc/sys/net` follows the thread)."""
    path = Path("/proc/sys") / key.replace(".", "/")
    try:
        path.write_text(f"{value}\n")
    except FileNotFoundError:
        raise OSError(errno.ENOENT, f"sysctl {key} does not exist in this kernel") from None


def pids_in(name: str) -> list[int]:
    """Processes whose network namespace is `name` (found by inode, like `ip netns pids`)."""
    try:
        target = os.stat(path_of(name))
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry))
    return pids


def enter_for_good(name: str) -> None:
    """Move the calling thread into `name` without coming back (before an `exec`)."""
    fd = os.open(path_of(name), os.O_RDONLY)
    try:
        _setns(fd, name)
    finally:
        os.close(fd)
