"""The fool-rate game's answers file: append-only JSONL, one line per answer, flushed and fsynced before the game
moves on (a dead kernel loses nothing), torn last lines repaired, one writer per session (a lock file), and
analysis that counts each (session, trial) once."""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import socket
import secrets
import warnings
from pathlib import Path

SCHEMA_VERSION = 1
RECORD_FIELDS = ("schema", "session", "player", "trial", "n_trials", "model", "image_id", "real_side", "choice",
                 "fooled", "response_s", "show_s", "utc")


class AnswersFileError(OSError):
    """The answers file cannot be written (read-only, a directory, under a file); the message says which."""


class SessionInUseError(RuntimeError):
    """Another live process is playing this session; the message names it and the lock file."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on this platform
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_answers(path: str | Path) -> list[dict]:
    """All answers in a JSONL answers file (none if it does not exist). A last line cut short (a process killed
    while writing it) is skipped with a warning; a broken line anywhere else, or a newer schema, is an error."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    records = []
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            records.append(_check_record(json.loads(line)))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}, line {number}: not a JSON answer record ({e}); the file was edited or "
                             f"damaged, fix or remove that line") from e
    if tail.strip():
        try:
            records.append(_check_record(json.loads(tail)))
        except (json.JSONDecodeError, UnicodeDecodeError):
            warnings.warn(f"{path}: ignoring a truncated last line ({len(tail)} bytes), an answer cut off while it "
                          f"was being written; every answer before it is intact", stacklevel=2)
    return records


def _check_record(record) -> dict:
    if not isinstance(record, dict) or "schema" not in record:
        raise ValueError(f"not an answer record: {str(record)[:80]}")
    if record["schema"] > SCHEMA_VERSION:
        raise ValueError(f"answer record schema {record['schema']} is newer than this fastdiff's "
                         f"({SCHEMA_VERSION}); upgrade fastdiff to read it")
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        raise ValueError(f"answer record lacks {missing}: {str(record)[:80]}")
    return record


class AnswerLog:
    """Append-only JSONL answers file. `append` writes one line, flushes and fsyncs before it returns, so an
    answer the game has accepted survives the kernel or the machine dying. Opening a log whose last line was cut
    short keeps that fragment in ``<file>.torn`` and trims it, so the next answer starts on a clean line."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock: SessionLock | None = None      # set by the game: appends check that they still hold it
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():
                raise IsADirectoryError(f"{self.path} is a directory")
            with open(self.path, "a", encoding="utf-8"):
                pass
        except OSError as e:
            raise AnswersFileError(f"answers file {self.path} cannot be written ({e.strerror or e}); choose another "
                                   f"answers_file (a writable folder) before playing, so that no answer is lost") from e
        self._repair_tail()

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        try:
            _check_record(json.loads(tail))
            complete = True
        except (ValueError, UnicodeDecodeError):
            complete = False
        with open(self.path, "r+b") as f:
            if complete:  # the record is whole, only its newline is missing
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
            else:
                with open(self.path.with_name(self.path.name + ".torn"), "ab") as torn:
                    torn.write(tail + b"\n")
                    torn.flush()
                    os.fsync(torn.fileno())
                f.truncate(cut)
                warnings.warn(f"{self.path}: the last line was cut short ({len(tail)} bytes); it is kept in "
                              f"{self.path.name}.torn and removed from the log", stacklevel=3)
            f.flush()
            os.fsync(f.fileno())

    def append(self, record: dict) -> None:
        if self.lock is not None:
            self.lock.check()
        line = json.dumps(_check_record(dict(record)), ensure_ascii=False) + "\n"
        new = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        if new:
            _fsync_dir(self.path.parent)

    def read(self) -> list[dict]:
        return read_answers(self.path)




def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else
        return True
    return True


class SessionLock:
    """One writer per session: ``<answers file>.<session>.lock`` holds the pid, host and a token of the game that
    plays it. A second game on the same session (another kernel, another player) is refused while that process
    lives; a lock left by a dead process (a killed kernel) is taken over. A game that was superseded in the same
    process (the notebook cell run again) finds its token gone and stops writing."""

    def __init__(self, answers_path: Path, session: str):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", session)[:80]
        self.path = Path(answers_path).with_name(f"{Path(answers_path).name}.{safe}.lock")
        self.session, self.token = session, secrets.token_hex(8)

    def acquire(self) -> "SessionLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(), "token": self.token,
              "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                same_host = holder.get("host") == me["host"]
                if holder and same_host and holder.get("pid") != me["pid"] and _alive(int(holder.get("pid", -1))):
                    raise SessionInUseError(
                        f"session {self.session!r} is being played by process {holder['pid']} on this machine "
                        f"(since {holder.get('utc', '?')}); close that notebook's kernel, or play a new session. "
                        f"Lock file: {self.path}") from None
                if holder and not same_host:
                    raise SessionInUseError(
                        f"session {self.session!r} is held by host {holder.get('host')!r} (pid {holder.get('pid')}); "
                        f"if that machine no longer plays it, delete {self.path}") from None
                self.path.unlink(missing_ok=True)      # stale (a dead process) or our own process's older game
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return self
        raise SessionInUseError(f"could not take the lock {self.path} for session {self.session!r}")

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def check(self) -> None:
        """Raise if this game no longer holds the session (another game took it over)."""
        if self._holder().get("token") != self.token:
            raise SessionInUseError(f"session {self.session!r} was opened again elsewhere (lock {self.path}); "
                                    f"this game no longer records answers: play in the newer view")

    def release(self) -> None:
        if self._holder().get("token") == self.token:
            self.path.unlink(missing_ok=True)


def unique_answers(records: list[dict]) -> tuple[list[dict], int]:
    """(records with each (session, trial) counted once, the first answer kept; how many duplicates were
    dropped). Duplicates come from two games writing one session, which the lock now prevents."""
    seen, unique = set(), []
    for r in records:
        key = (r["session"], r["trial"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique, len(records) - len(unique)
