"""Files that are never half-written, never silently shared: `atomic_write` (a temporary file in the same folder,
fsynced and renamed over the target, keeping the target's permissions), `file_lock` (an OS-level lock held for a
read-modify-write or a whole training run, with a message naming the holder), and `DiskFullError` (the disk
filled up while writing: the message says so and that the previous file is intact)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFullError(OSError):
    """The disk (or a quota) filled up while a file was written; the file as it was before is intact."""


class FileInUseError(RuntimeError):
    """Another live process holds the lock of a file; the message names it (pid, host, since, command)."""


# ----------------------------------------------------------------------------------------------- atomic writes

def _umask() -> int:
    try:   # Linux >= 4.7 shows it without changing it
        return int(re.search(r"^Umask:\s*([0-7]+)", Path("/proc/self/status").read_text(), re.M).group(1), 8)
    except (OSError, AttributeError, ValueError):
        old = os.umask(0o022)
        os.umask(old)
        return old


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # it exists, owned by someone else
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of ``path`` left by a writer that was killed (kill -9, power loss): those whose
    writer's pid is gone. A live writer's temporary (another process writing the same file) is left alone."""
    pattern = re.compile(re.escape("." + path.name) + r"\.(\d+)\.[0-9a-f]+\.tmp$")
    for candidate in path.parent.iterdir():
        found = pattern.match(candidate.name)
        if found and not _alive(int(found.group(1))):
            candidate.unlink(missing_ok=True)


def atomic_write(path: str | Path, write) -> Path:
    """Create or replace ``path`` atomically: ``write(file)`` fills a temporary file in the same folder, which is
    fsynced and renamed over ``path``; an interruption leaves the old file (or none), never half of one. A replaced
    file keeps its permissions; a new one gets the umask's (not a temporary file's 0600). A full disk raises
    `DiskFullError`, which says that ``path`` is unchanged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if _disk_full(error, path.parent):
            free = shutil.disk_usage(path.parent).free
            raise DiskFullError(errno.ENOSPC, f"cannot write {path}: the disk is full ({free / 2**20:.1f} MiB free "
                                f"in {path.parent}). {path.name} was not changed: "
                                + ("the previous version is intact" if path.exists() else "no partial file was left")
                                + "; free some space and run again") from error
        raise
    return path


def _disk_full(error: BaseException, folder: Path) -> bool:
    """Whether ``error`` (or what caused it) is a full disk. torch.save reports one as a RuntimeError from its C++
    writer ("enforce fail at inline_container.cc ... file write failed"): then the free space decides."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL:
            return True
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, RuntimeError) and "write" in str(error):
        try:
            return shutil.disk_usage(folder).free < 1 << 20
        except OSError:
            return False
    return False


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of a UTF-8 text."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


# ----------------------------------------------------------------------------------------------- locks

_held: dict[Path, int] = {}     # lock path -> depth: a process may take a lock it holds again


def lock_path(path: str | Path) -> Path:
    """The lock file that guards ``path``: ``.<name>.lock`` beside it, there only while the lock is held."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _holder(lock: Path) -> str:
    try:
        h = json.loads(lock.read_text())
        return f"process {h['pid']} on {h['host']} (since {h['utc']}: {h['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _take(lock: Path):
    """The open lock file, locked, or None if another process holds it. A lock file that its holder removed
    while this process waited is not the lock any more: try again on the new one."""
    while True:
        f = open(lock, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return None
        try:
            if os.stat(lock).st_ino == os.fstat(f.fileno()).st_ino:
                return f
        except FileNotFoundError:
            pass
        f.close()


@contextlib.contextmanager
def file_lock(path: str | Path, *, what: str, wait_s: float = 0.0):
    """Hold an exclusive OS-level lock (``flock``) on ``.<name>.lock`` beside ``path`` for the block: ``what``
    says what it guards, for the message of a process that finds it held. Waits up to ``wait_s`` seconds (0: not
    at all), then raises `FileInUseError` naming the holder. The lock dies with its process (a killed holder
    leaves nothing to clear by hand); a process that holds it may take it again (nested blocks)."""
    lock = lock_path(Path(path).absolute())
    if lock in _held:
        _held[lock] += 1
        try:
            yield lock
        finally:
            _held[lock] -= 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while (f := _take(lock)) is None:
        if time.monotonic() >= deadline:
            raise FileInUseError(f"{what} is in use by {_holder(lock)}; wait for it to finish, or stop it "
                                 f"(lock file {lock})")
        time.sleep(0.05)
    try:
        f.truncate(0)
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                            "command": " ".join(sys.argv)[:200]}))
        f.flush()
        _held[lock] = 1
        yield lock
    finally:
        _held.pop(lock, None)
        lock.unlink(missing_ok=True)     # while still holding it: a waiter then finds its file gone and retries
        f.close()                        # releases the flock
