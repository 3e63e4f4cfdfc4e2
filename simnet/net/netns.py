"""Network namespace primitives that work per *thread*.

`setns(CLONE_NEWNET)` moves only the calling thread, and a socket stays in the namespace it was
created in. So simnet creates namespaces, opens netlink sockets, applies nftables and writes
per-namespace sysctls from its own process by briefly switching the calling thread, instead of
forking a helper per operation (pyroute2's `netns.create` and `NetNS` fork a child each time).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_T = TypeVar("_T")


def _check(result: int, what: str, name: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} failed for netns {name}: {os.strerror(err)}")


def path_of(name: str) -> Path:
    return NETNS_DIR / name


class ShadowedNamespace(OSError):
    """A namespace's file that can be neither unmounted nor removed: its mount sits on the
    directory beneath a later mount of /run/netns over itself (see `shared_run_dir`)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            errno.EBUSY,
            f"netns {name}: its mount point is hidden under a later mount of {NETNS_DIR} over "
            "itself, so it cannot be unmounted or removed while that mount stands",
        )
        self.name = name


def shared_run_dir() -> None:
    """Make /run/netns a shared mount point of its own before a namespace is mounted there, as
    `ip netns add` does.

    Why: iproute2 turns the directory into a (recursive) bind mount of itself the first time it
    finds it is none. A namespace mounted on the plain directory before that stays mounted on
    the directory underneath, hidden: its file then answers EBUSY to every removal until the
    bind mount goes. With the mount point made first, simnet and iproute2 share one directory.
    Serialised by a lock on the directory, so two runs starting at once make one mount."""
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    lock = os.open(NETNS_DIR, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        target = bytes(NETNS_DIR)
        if _libc.mount(b"none", target, None, MS_SHARED | MS_REC, None) == 0:
            return
        if ctypes.get_errno() != errno.EINVAL:  # EINVAL: not a mount point yet
            _check(-1, "mount --make-shared", str(NETNS_DIR))
        _check(_libc.mount(target, target, b"none", MS_BIND | MS_REC, None), "bind", "run dir")
        _check(_libc.mount(b"none", target, None, MS_SHARED | MS_REC, None), "share", "run dir")
    finally:
        os.close(lock)


@dataclass(frozen=True)
class _Mount:
    id: int
    parent: int
    point: str


def _mounts() -> list[_Mount]:
    """This process's mounts, from /proc/self/mountinfo (mount points unescaped)."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = fields[4].encode().decode("unicode_escape")  # \040 for a space, as octal
        mounts.append(_Mount(int(fields[0]), int(fields[1]), point))
    return mounts


def unshadow() -> bool:
    """Take away a mount of /run/netns over itself when nothing is mounted on it any more, so
    the namespaces hidden beneath it (`ShadowedNamespace`) can be removed; True if it did.

    Only an empty mount is detached: a live run's or another tool's namespaces stay as they
    are. The next `created` makes the shared mount point again."""
    mounts = _mounts()
    tops = [m for m in mounts if m.point == str(NETNS_DIR)]
    if not tops or any(m.parent == tops[-1].id for m in mounts):
        return False
    _check(_libc.umount2(bytes(NETNS_DIR), MNT_DETACH), "umount", str(NETNS_DIR))
    return True


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
    shared_run_dir()
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

    Returns False if it did not exist; raises `ShadowedNamespace` for one that cannot go.
    """
    path = path_of(name)
    _libc.umount2(bytes(path), MNT_DETACH)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise ShadowedNamespace(name) from None
        raise
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
