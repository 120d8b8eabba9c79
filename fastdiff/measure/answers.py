"""The fool-rate game's answers file: append-only JSONL, one line per answer, flushed and fsynced before the game
moves on (a dead kernel loses nothing), torn last lines repaired, one writer per session (a lock file).

Every record is checked field by field when it is written (`AnswerLog.append`) and when it is read
(`read_answers`); a bad line is an error that names the file and the line. ``fooled`` is derived from ``choice``
and ``real_side``: a stored ``fooled`` that disagrees is an error, never believed. An answer is identified by
(session, player, origin, trial), where the origin is the host that wrote it, so two machines that happened to
use one session id are both counted.

Schema 2 (this one) records the ``host`` and the ``image_set`` (a fingerprint of the images shown for the
model) beside the display time ``show_s``. Schema-1 files still read: their answers have no host and no image
set, so their origin is the file they were read from and their image set is unknown (None); a warning says so."""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import socket
import secrets
import warnings
from pathlib import Path

SCHEMA_VERSION = 2
SIDES = ("left", "right")
SCHEMA_1_FIELDS = ("schema", "session", "player", "trial", "n_trials", "model", "image_id", "real_side", "choice",
                   "fooled", "response_s", "show_s", "utc")
RECORD_FIELDS = ("schema", "session", "player", "host", "trial", "n_trials", "model", "image_set", "image_id",
                 "real_side", "choice", "fooled", "response_s", "show_s", "utc")
FIELDS_OF_SCHEMA = {1: SCHEMA_1_FIELDS, 2: RECORD_FIELDS}
SHOWN_LINES = 5     # bad lines listed in one error


class AnswersFileError(OSError):
    """The answers file cannot be written (read-only, a directory, under a file); the message says which."""


class AnswerRecordError(ValueError):
    """An answer record is malformed: not JSON, a field missing, unknown or of the wrong type, or ``fooled``
    contradicting ``choice`` and ``real_side``. The message names the file and the line."""


class SessionInUseError(RuntimeError):
    """Another live process is playing this session; the message names it and the lock file."""


def this_host() -> str:
    """The name of this machine: the origin recorded in every answer (and in session locks)."""
    return socket.gethostname()


def is_fooled(choice: str, real_side: str) -> bool:
    """The player was fooled when they picked the side of the generated image, the one that is not real."""
    return choice != real_side


# ------------------------------------------------------------------------------------------------ validation

def _shown(value) -> str:
    """A JSON value as an error message names it: the string '0', the number 1.5, null, ..."""
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"the {'array' if isinstance(value, list) else 'object'} {json.dumps(value)[:40]}"


def _integer(low: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low, f"an integer >= {low}"


def _number(*, positive: bool):
    def ok(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
            (v > 0 if positive else v >= 0)
    return ok, f"a finite number {'> 0' if positive else '>= 0'} (seconds)"


def _iso_time(v) -> bool:
    try:
        return isinstance(v, str) and _dt.datetime.fromisoformat(v).tzinfo is not None
    except ValueError:
        return False


NAME = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
FINGERPRINT = (lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{16}", v) is not None,
               "16 hex digits (fastdiff.measure.foolrate.image_set_fingerprint)")
SIDE = (lambda v: v in SIDES, "'left' or 'right'")
FIELD_CHECKS = {  # field: (test, what it must be)
    "schema": _integer(1), "session": NAME, "player": NAME, "host": NAME,
    "trial": _integer(0), "n_trials": _integer(1),
    "model": NAME, "image_set": FINGERPRINT, "image_id": NAME,
    "real_side": SIDE, "choice": SIDE, "fooled": (lambda v: isinstance(v, bool), "true or false"),
    "response_s": _number(positive=False), "show_s": _number(positive=True),
    "utc": (_iso_time, "an ISO 8601 time with its time zone"),
}


def check_record(record, where: str) -> dict:
    """``record`` if it is a whole, well-typed answer of a schema this fastdiff reads, else an `AnswerRecordError`
    whose message starts with ``where`` (the file and line, or the answer being appended)."""
    if not isinstance(record, dict):
        raise AnswerRecordError(f"{where}: an answer record is a JSON object, got {_shown(record)}")
    schema = _check_schema(record, where)
    fields = FIELDS_OF_SCHEMA[schema]
    missing = [f for f in fields if f not in record]
    if missing:
        raise AnswerRecordError(f"{where}: the record lacks the fields {missing} of a schema-{schema} answer")
    unknown = [f for f in record if f not in fields]
    if unknown:
        raise AnswerRecordError(f"{where}: unknown fields {unknown} in a schema-{schema} answer "
                                f"(its fields are {list(fields)})")
    for name in fields:
        test, what = FIELD_CHECKS[name]
        if not test(record[name]):
            raise AnswerRecordError(f"{where}: field {name!r} must be {what}, got {_shown(record[name])}")
    _check_consistent(record, where)
    return record


def _check_schema(record: dict, where: str) -> int:
    if "schema" not in record:
        raise AnswerRecordError(f"{where}: not an answer record (no 'schema' field): {json.dumps(record)[:80]}")
    test, what = FIELD_CHECKS["schema"]
    schema = record["schema"]
    if not test(schema):
        raise AnswerRecordError(f"{where}: field 'schema' must be {what}, got {_shown(schema)}")
    if schema > SCHEMA_VERSION:
        raise AnswerRecordError(f"{where}: answer record schema {schema} is newer than this fastdiff's "
                                f"({SCHEMA_VERSION}); upgrade fastdiff to read it")
    return schema


def _check_consistent(record: dict, where: str) -> None:
    if record["trial"] >= record["n_trials"]:
        raise AnswerRecordError(f"{where}: trial {record['trial']} is outside the session's n_trials "
                                f"{record['n_trials']} (trials count from 0)")
    fooled = is_fooled(record["choice"], record["real_side"])
    if record["fooled"] != fooled:
        raise AnswerRecordError(
            f"{where}: 'fooled' is {json.dumps(record['fooled'])} but the player chose {record['choice']} and the "
            f"real image was on the {record['real_side']}, so fooled is {json.dumps(fooled)}; the line was edited "
            f"or damaged: correct it (or remove it) by hand, knowing which field is wrong")


# --------------------------------------------------------------------------------------------------- reading

def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _parse(line: bytes, where: str) -> dict:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnswerRecordError(f"{where}: not a JSON answer record ({e}); the file was edited or damaged, fix "
                                f"or remove that line") from e
    return check_record(record, where)


def _listing(problems: list[str]) -> str:
    more = len(problems) - SHOWN_LINES
    return "\n".join(problems[:SHOWN_LINES]) + (f"\n... and {more} more bad lines" if more > 0 else "")


def _with_origin(record: dict, path: Path) -> dict:
    """The record as the analysis sees it: with its origin, and schema-1's missing host and image set as None."""
    if record["schema"] == 1:
        return {**record, "host": None, "image_set": None, "origin": f"file:{path.resolve()}"}
    return {**record, "origin": record["host"]}


def read_answers(path: str | Path) -> list[dict]:
    """All answers in a JSONL answers file (none if it does not exist), each checked by `check_record` and given
    its ``origin``: the host that wrote it or, for a schema-1 answer (which recorded no host), this file; a
    schema-1 answer's ``host`` and ``image_set`` read as None, and a warning says so. A last line cut short (a
    process killed while writing it) is skipped with a warning; any other bad line is an `AnswerRecordError`
    naming the file and the line (the first few bad lines, if there are several)."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    records, problems = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if number == len(lines) and not _is_json_object(line):   # no newline after it: cut short while written
            warnings.warn(f"{path}: ignoring a truncated last line ({len(line)} bytes), an answer cut off while "
                          f"it was being written; every answer before it is intact", stacklevel=2)
            continue
        try:
            records.append(_parse(line, f"{path}, line {number}"))
        except AnswerRecordError as e:
            problems.append(str(e))
    if problems:
        raise AnswerRecordError(_listing(problems))
    old = sum(r["schema"] == 1 for r in records)
    if old:
        warnings.warn(f"{path}: {old} answers of schema 1, written before fastdiff recorded the host and the image "
                      f"set: their origin is taken to be this file and their image set is unknown, so they are "
                      f"never pooled with answers that record one", stacklevel=2)
    return [_with_origin(r, path) for r in records]


def answer_key(record: dict) -> tuple:
    """What identifies an answer: (session, player, origin, trial). Two machines that used one session id (their
    files concatenated) differ by origin, so both are counted."""
    if "origin" not in record:
        raise ValueError(f"an answer to count must come from read_answers, which gives it its origin (the host or "
                         f"the file that wrote it); this one has none: {json.dumps(record)[:80]}")
    return record["session"], record["player"], record["origin"], record["trial"]


def unique_answers(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(each answer once, the first kept; the repeats left out), answers identified by `answer_key`. Repeats
    come from two games writing one session on one machine, which the session lock now prevents."""
    seen, unique, repeats = set(), [], []
    for r in records:
        key = answer_key(r)
        (repeats if key in seen else unique).append(r)
        seen.add(key)
    return unique, repeats


# --------------------------------------------------------------------------------------------------- writing

def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on this platform
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        with open(self.path, "r+b") as f:
            if _is_json_object(tail):  # the record is whole, only its newline is missing (read checks its fields)
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
        """Check ``record`` (a whole answer of the current schema) and write it; a bad record writes nothing."""
        if self.lock is not None:
            self.lock.check()
        where = f"{self.path}: the answer to append"
        check_record(dict(record), where)
        if record["schema"] != SCHEMA_VERSION:
            raise AnswerRecordError(f"{where}: new answers are written in schema {SCHEMA_VERSION}, got schema "
                                    f"{record['schema']}")
        line = json.dumps(record, ensure_ascii=False) + "\n"
        new = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        if new:
            _fsync_dir(self.path.parent)

    def read(self) -> list[dict]:
        return read_answers(self.path)


# ---------------------------------------------------------------------------------------------- session lock

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
        me = {"pid": os.getpid(), "host": this_host(), "token": self.token,
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
