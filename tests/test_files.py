"""fastdiff.files: atomic writes keep permissions and a live writer's temporary, say "disk full" plainly and leave
the previous file intact; file locks name their holder, are taken again by their own process, and leave no file."""
import errno
import os
import subprocess
import sys
import time

import pytest
import torch

from fastdiff.files import DiskFullError, FileInUseError, atomic_write, atomic_write_text, file_lock, lock_path


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path):
    shipped = tmp_path / "index.json"
    atomic_write_text(shipped, "{}")
    os.chmod(shipped, 0o644)
    atomic_write_text(shipped, '{"a": 1}')
    assert shipped.stat().st_mode & 0o777 == 0o644
    os.chmod(shipped, 0o640)
    atomic_write_text(shipped, "{}")
    assert shipped.stat().st_mode & 0o777 == 0o640
    old = os.umask(0o027)
    try:
        assert (atomic_write_text(tmp_path / "new.json", "{}").stat().st_mode & 0o777) == 0o640
    finally:
        os.umask(old)


def test_only_a_dead_writers_temporaries_are_removed(tmp_path):
    path = tmp_path / "a.bin"
    dead = tmp_path / f".a.bin.{dead_pid()}.0badc0de.tmp"
    live = tmp_path / f".a.bin.{os.getpid()}.feedbeef.tmp"        # another writer, still at work
    dead.write_bytes(b"half")
    live.write_bytes(b"in progress")
    atomic_write(path, lambda f: f.write(b"new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.bin", live.name])


@pytest.mark.parametrize("how", ["oserror", "torch.save"])
def test_a_full_disk_says_so_and_the_previous_file_is_intact(tmp_path, how):
    path = atomic_write(tmp_path / "ckpt.pt", lambda f: f.write(b"previous"))

    class FullDisk:        # the file object as the disk fills after 1 kB
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, data):
            self.n += len(data)
            if self.n > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def flush(self):
            pass

    def write(f):
        if how == "oserror":
            FullDisk(f).write(b"x" * 2000)
        else:   # torch's C++ writer turns it into "enforce fail at inline_container.cc"
            torch.save({"w": torch.zeros(10000)}, FullDisk(f))
    with pytest.raises(DiskFullError, match=r"cannot write .*ckpt.pt: the disk is full .* ckpt.pt was not changed: "
                                            r"the previous version is intact"):
        atomic_write(path, write)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


HOLDER = "import sys, time; from fastdiff.files import file_lock\n" \
         "with file_lock(sys.argv[1], what='the test file'):\n    print('held', flush=True); time.sleep(60)\n"


def test_a_held_lock_names_its_holder_and_is_free_again_when_the_holder_dies(tmp_path):
    target = tmp_path / "index.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FileInUseError, match=rf"the zoo index is in use by process {holder.pid} on .*; wait"):
            with file_lock(target, what="the zoo index"):
                pass
        started = time.monotonic()
        with pytest.raises(FileInUseError):
            with file_lock(target, what="the zoo index", wait_s=0.3):
                pass
        assert time.monotonic() - started >= 0.3
    finally:
        holder.kill()
        holder.wait()
    with file_lock(target, what="the zoo index", wait_s=5):    # kill -9 leaves nothing that blocks
        with file_lock(target, what="the zoo index"):           # the same process takes it again
            assert lock_path(target).exists()
        assert lock_path(target).exists()
    assert not lock_path(target).exists()
