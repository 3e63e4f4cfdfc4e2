"""Output paths are checked before anything is written, and special files are never replaced.

Why: as root, `simnet report DIR --out /dev/null` renamed its page over /dev/null (the device
became a plain file) and wrote `/dev/null-phases.png`; `run --out FILE --repeat 2` made a call,
then failed to store its row. Every output option goes through `simnet.results.outputs`, which
refuses a device, FIFO, socket or directory and a folder that cannot hold files, naming the
option and the path (exit 2), before a single byte is written.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from simnet.results.outputs import (
    UnusableOutput,
    check_output_dir,
    check_output_file,
    write_output,
)
from simnet.results.store import ResultStore
from tests.unit.rows import result_row


def _null_is_a_device() -> bool:
    return stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.fixture
def specials(tmp_path: Path) -> dict[str, Path]:
    """One of each kind of path that is not a regular file."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    folder = tmp_path / "folder"
    folder.mkdir()
    to_device = tmp_path / "to-null"
    to_device.symlink_to("/dev/null")
    return {
        "a character device": Path("/dev/null"),
        "a FIFO": fifo,
        "a socket": sock_path,
        "a directory": folder,
        "a character device (via symlink)": to_device,
    }


def test_a_file_that_is_not_regular_is_refused(specials: dict[str, Path]) -> None:
    for kind, path in specials.items():
        with pytest.raises(UnusableOutput) as info:
            check_output_file(path, "--out")
        message = str(info.value)
        assert info.value.exit_code == 2
        assert message.startswith(f"--out {path} is {kind.split(' (')[0]}"), message
    assert _null_is_a_device()


def test_a_new_or_regular_file_is_accepted(tmp_path: Path) -> None:
    existing = tmp_path / "old.html"
    existing.write_text("x")
    link = tmp_path / "link.html"
    link.symlink_to(existing)
    for path in (tmp_path / "new.html", existing, link, tmp_path / "a" / "b" / "new.html"):
        assert check_output_file(path, "--out") == path
    assert not (tmp_path / "a").exists()  # a check creates nothing


def test_a_file_under_a_file_or_a_dangling_symlink_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere")
    cases = {
        blocker / "x.json": f"{blocker} is not a folder",
        blocker / "sub" / "x.json": f"{blocker} is not a folder",
        dangling: "a symlink to a missing file",
    }
    for path, expected in cases.items():
        with pytest.raises(UnusableOutput, match="--github-benchmark") as info:
            check_output_file(path, "--github-benchmark")
        assert expected in str(info.value) and str(path) in str(info.value)


def test_an_output_folder_must_be_a_folder(specials: dict[str, Path], tmp_path: Path) -> None:
    for kind, path in specials.items():
        if kind == "a directory":
            assert check_output_dir(path) == path
            continue
        pattern = f"--out {re.escape(str(path))} is .*not a directory"
        with pytest.raises(UnusableOutput, match=pattern):
            check_output_dir(path)
    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(UnusableOutput, match="is a file, not a directory"):
        check_output_dir(plain)
    with pytest.raises(UnusableOutput, match=f"{re.escape(str(plain))} is not a folder"):
        check_output_dir(plain / "sub" / "deeper")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()
    assert _null_is_a_device()


def test_a_folder_without_write_permission_is_refused() -> None:
    """Checked as an unprivileged user (root may write into any folder): as root, the check
    runs in a child that has dropped to nobody, in a folder nobody may enter but not write."""
    shared = Path(tempfile.mkdtemp(prefix="simnet-locked-"))
    try:
        shared.chmod(0o755)
        locked = shared / "locked"
        locked.mkdir(mode=0o555)
        assert _as_nobody(lambda: _refused(locked)) if os.geteuid() == 0 else _refused(locked)
    finally:
        shutil.rmtree(shared)


def _refused(locked: Path) -> bool:
    """Both checks refuse `locked` as not writable."""
    for check in (lambda: check_output_dir(locked / "results"),
                  lambda: check_output_file(locked / "report.html", "--out")):  # fmt: skip
        try:
            check()
        except UnusableOutput as exc:
            if "not writable" not in str(exc):
                return False
        else:
            return False
    return True


def _as_nobody(body: Callable[[], bool]) -> bool:
    """`body()` in a forked child running as nobody (uid and gid 65534)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            os._exit(0 if body() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def test_a_result_store_checks_its_folder_before_the_first_row(tmp_path: Path) -> None:
    """The store is made before the first call: a bad --out fails there, not after a call."""
    plain = tmp_path / "somefile"
    plain.write_text("x")
    for bad in (plain, Path("/dev/null"), plain / "sub"):
        with pytest.raises(UnusableOutput, match="--out"):
            ResultStore(bad, "s")
    assert plain.read_text() == "x" and _null_is_a_device()


def test_a_failing_row_write_names_the_path(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "out", "s")
    store.write(result_row())
    (tmp_path / "out").chmod(0o555)
    (tmp_path / "out").rename(tmp_path / "gone")
    (tmp_path / "out").write_text("now a file")  # the folder was replaced meanwhile
    with pytest.raises(UnusableOutput, match=r"--out: cannot write .*out"):
        store.write(result_row())


def test_a_write_error_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    """A full disk (ENOSPC) is one error naming the file; /dev/full itself is refused first."""
    with pytest.raises(UnusableOutput, match="/dev/full is a character device"):
        write_output(Path("/dev/full"), "x", "--github-benchmark")
    target = tmp_path / "bench.json"
    target.symlink_to("/dev/full")
    with pytest.raises(UnusableOutput, match="character device"):
        write_output(target, "x", "--github-benchmark")
    written = tmp_path / "sub" / "bench.json"
    write_output(written, "ok\n", "--github-benchmark")
    assert written.read_text() == "ok\n"


def test_a_full_disk_is_a_clear_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", no_space)
    target = tmp_path / "bench.json"
    with pytest.raises(UnusableOutput) as info:
        write_output(target, "x", "--github-benchmark")
    assert str(info.value) == f"--github-benchmark: cannot write {target}: No space left on device"
