"""The fool-rate game: human evaluation of super-resolution, as in SR3 (Saharia et al. 2021, Sec. 4.1) and the
VGG-SR paper (Sec. 3.4 and 4.5). A player sees the low-res image in the centre and two upscaled candidates, one
real and one generated, for a few seconds (5 in the VGG-SR paper); then the candidates are hidden and the player
picks the one they think is real. The fool rate of a model is the share of its trials in which the player
picked the generated image; a perfect generator scores 50%.

This module holds the game without its images and widgets (`fastdiff.measure.game_images` reads the image
folders, `fastdiff.measure.foolrate_widget` draws the game):

- `plan_trials`: the trial order, with balanced real sides and models interleaved round by round;
- (`fastdiff.measure.answers`: the JSONL answers file, one line per answer, flushed and fsynced before the game
  moves on, one writer per session, every record checked on write and on read);
- `image_set_fingerprint`: what a model's trials show, recorded in every answer so that answers on different
  images are never pooled;
- `FoolRateGame`: the game as a state machine with an injectable clock and timer (tests drive it directly);
- `fool_rate_table`: fool rate per model, display time and image set, with n and a 95% Wilson interval, beside
  the paper's rates.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import math
import secrets
import threading
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..checks import check_int, check_number
from .answers import SCHEMA_VERSION, SIDES, AnswerLog, SessionLock, is_fooled, this_host, unique_answers
from .game_images import GameDataError, GameSources


# ----------------------------------------------------------------------------------------------------- trials

@dataclass(frozen=True)
class Trial:
    index: int
    model: str
    image_id: str
    real_side: str


def plan_trials(names: list[str], models: list[str], trials_per_model: int, *, seed: int,
                distinct_images: bool = True) -> list[Trial]:
    """The order of play. Each model gets ``trials_per_model`` images; the real side is left in exactly half of a
    model's trials (one side gets the odd one out, at random); trials come in rounds with one trial per model in
    a random order, so models are interleaved and balanced over the session. With ``distinct_images`` no image
    is shown twice in a session (a player who saw the real image once would recognise it)."""
    check_int("trials_per_model", trials_per_model)
    if not models:
        raise ValueError("no models to play")
    rng = np.random.default_rng(seed)
    needed = trials_per_model * (len(models) if distinct_images else 1)
    if needed > len(names):
        raise GameDataError(f"{trials_per_model} trials for each of {len(models)} model(s) need {needed} distinct "
                            f"images but the folders hold {len(names)}; use fewer trials"
                            + (" or distinct_images=False" if distinct_images else ""))
    order = [names[i] for i in rng.permutation(len(names))]
    per_model = {}
    for k, model in enumerate(models):
        images = order[k * trials_per_model:(k + 1) * trials_per_model] if distinct_images else \
            [names[i] for i in rng.permutation(len(names))[:trials_per_model]]
        sides = list(SIDES) * (trials_per_model // 2) + ([SIDES[rng.integers(2)]] if trials_per_model % 2 else [])
        per_model[model] = list(zip(images, [sides[i] for i in rng.permutation(len(sides))]))
    trials = []
    for r in range(trials_per_model):
        for m in rng.permutation(len(models)):
            image_id, side = per_model[models[m]][r]
            trials.append(Trial(len(trials), models[m], image_id, side))
    return trials


def plan_summary(trials: list[Trial]):
    """Per model: trials, and how many have the real image on the left and on the right."""
    import pandas as pd
    rows = {}
    for t in trials:
        row = rows.setdefault(t.model, {"model": t.model, "trials": 0, "real_left": 0, "real_right": 0})
        row["trials"] += 1
        row[f"real_{t.real_side}"] += 1
    return pd.DataFrame(list(rows.values())).sort_values("model", ignore_index=True)


def practice_trial(sources: GameSources, trials: list[Trial], *, seed: int = 0) -> Trial | None:
    """A pair from an image the session will not show (None if every image is in the plan), to show a player
    what a trial looks like, answer included, before they play."""
    played = {t.image_id for t in trials}
    spare = [n for n in sources.names if n not in played]
    if not spare:
        return None
    rng = np.random.default_rng(seed)
    return Trial(-1, list(sources.models)[0], spare[rng.integers(len(spare))], SIDES[rng.integers(2)])


def image_set_fingerprint(sources: GameSources, model: str) -> str:
    """What the trials of ``model`` show: the first 16 hex digits of a sha256 over every name's real, generated
    and (when given) low-res image file, names and bytes. A folder of the same name holding other images, other
    real images or other low-res inputs give another fingerprint, so their answers are never pooled."""
    digest = hashlib.sha256()
    for name in sources.names:
        for kind, files in (("real", sources.real), ("generated", sources.models[model]), ("lr", sources.lr)):
            if files is not None:
                data = files[name].read_bytes()
                digest.update(f"{kind}/{name}:{len(data)}\n".encode())
                digest.update(data)
    return digest.hexdigest()[:16]


def session_seed(session: str) -> int:
    """A session's plan is seeded by its id, so a resumed session replays the same plan."""
    return zlib.crc32(session.encode())


def new_session_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


# ---------------------------------------------------------------------------------------------- state machine

def threading_timer(seconds: float, callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` after ``seconds`` in a daemon thread; returns a function that cancels it."""
    t = threading.Timer(seconds, callback)
    t.daemon = True
    t.start()
    return t.cancel


class FoolRateGame:
    """One player's session as a state machine:

        ready --start()--> showing --(show_s elapse)--> hidden --choose(side)--> ready ... --> finished

    The candidates are visible only in ``showing``. As in the paper the player answers after they are hidden;
    with ``answer_while_showing=True`` an answer is also taken during the display. Every answer is appended to
    the log before the game moves on, with the display time, this machine's name (``host``) and the fingerprint
    of the model's images (``image_sets``, model -> `image_set_fingerprint`). ``clock`` (seconds, monotonic) and
    ``timer(seconds, callback) -> cancel`` are injectable; tests pass fakes and fire the timer themselves.
    Listeners added with `on_change` are called after every transition (the widget redraws there)."""

    def __init__(self, trials: list[Trial], log: AnswerLog, *, session: str, player: str, image_sets: dict[str, str],
                 host: str | None = None, show_s: float = 5.0, answer_while_showing: bool = False,
                 clock: Callable[[], float] = time.monotonic, timer: Callable = threading_timer,
                 answered: set[int] = frozenset()):
        check_number("show_seconds", show_s, positive=True)
        if not isinstance(answer_while_showing, bool):
            raise ValueError(f"answer_while_showing must be True or False, got {answer_while_showing!r}")
        if not trials:
            raise ValueError("no trials to play")
        unknown = sorted({t.model for t in trials} - set(image_sets))
        if unknown:
            raise ValueError(f"no image-set fingerprint for the models {unknown}; pass image_sets for every model")
        self.trials, self.log, self.session, self.player = trials, log, session, player
        self.image_sets, self.host = dict(image_sets), host or this_host()
        self.show_s, self.answer_while_showing = float(show_s), answer_while_showing
        self.clock, self.timer = clock, timer
        self.answered = set(answered)
        self._lock = threading.RLock()
        self._listeners: list[Callable[[FoolRateGame], None]] = []
        self._cancel_timer: Callable[[], None] | None = None
        self._shown_at = 0.0
        self.position = self._next_position(0)
        self.state = "finished" if self.position is None else "ready"
        self.last_record: dict | None = None

    # -- queries
    @property
    def trial(self) -> Trial | None:
        """The trial being shown, or the one `start` will show next."""
        return None if self.position is None else self.trials[self.position]

    @property
    def n_answered(self) -> int:
        return len(self.answered)

    @property
    def can_choose(self) -> bool:
        return self.state == "hidden" or (self.state == "showing" and self.answer_while_showing)

    def on_change(self, listener: Callable[["FoolRateGame"], None]) -> None:
        self._listeners.append(listener)

    # -- transitions
    def start(self) -> Trial:
        """Show the current trial's candidates and start the display timer."""
        with self._lock:
            if self.state != "ready":
                raise RuntimeError(f"start() needs state 'ready', the game is {self.state!r}")
            self.state = "showing"
            self._shown_at = self.clock()
            position = self.position
            self._cancel_timer = self.timer(self.show_s, lambda: self._hide(position))
            trial = self.trial
        self._changed()
        return trial

    def tick(self) -> None:
        """Hide the candidates if their time is up by the clock (for callers that poll instead of a timer)."""
        if self.state == "showing" and self.clock() - self._shown_at >= self.show_s:
            self._hide(self.position)

    def _hide(self, position: int | None) -> None:
        with self._lock:
            if self.state != "showing" or position != self.position:  # a stale timer of an answered trial
                return
            self.state = "hidden"
        self._changed()

    def choose(self, side: str) -> dict:
        """Record the player's pick (the side they think is real), append it to the log, move to the next trial."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        with self._lock:
            if not self.can_choose:
                raise RuntimeError(f"no answer is taken in state {self.state!r}"
                                   + (" (the candidates are still shown)" if self.state == "showing" else ""))
            trial = self.trial
            record = {
                "schema": SCHEMA_VERSION, "session": self.session, "player": self.player, "host": self.host,
                "trial": trial.index, "n_trials": len(self.trials), "model": trial.model,
                "image_set": self.image_sets[trial.model], "image_id": trial.image_id,
                "real_side": trial.real_side, "choice": side, "fooled": is_fooled(side, trial.real_side),
                "response_s": round(self.clock() - self._shown_at, 4), "show_s": self.show_s,
                "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
            }
            self.log.append(record)  # durable before the game moves on
            if self._cancel_timer is not None:
                self._cancel_timer()
                self._cancel_timer = None
            self.answered.add(trial.index)
            self.last_record = record
            self.position = self._next_position(self.position + 1)
            self.state = "finished" if self.position is None else "ready"
        self._changed()
        return record

    def _next_position(self, start: int) -> int | None:
        return next((i for i in range(start, len(self.trials)) if self.trials[i].index not in self.answered), None)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener(self)


def open_session(sources: GameSources, answers_file: str | Path, *, player: str, session: str | None = None,
                 trials_per_model: int = 10, seed: int | None = None, distinct_images: bool = True,
                 host: str | None = None, **game_kwargs) -> FoolRateGame:
    """Start a session, or resume one: with the ``session`` id of an earlier session in ``answers_file`` the
    game skips the trials answered there on this machine (``host``, by default this machine's name) and goes on
    with the rest of the same plan. The plan is seeded by the session id (or ``seed``); if the folders, their
    images or the settings changed so that the recorded answers no longer match the plan, this stops with an
    error rather than mixing two plans in one session. Answers of the same session id from another host (files
    of two machines concatenated) are another game and are left alone."""
    if not isinstance(player, str) or not player.strip():
        raise ValueError(f"player must be a non-empty name, got {player!r}")
    if session is not None and (not isinstance(session, str) or not session.strip()):
        raise ValueError(f"session must be the id of an earlier session or None, got {session!r}")
    session, host = session or new_session_id(), host or this_host()
    log = AnswerLog(answers_file)                  # fails now, not at the first click, if it cannot be written
    trials = plan_trials(sources.names, list(sources.models), trials_per_model,
                         seed=session_seed(session) if seed is None else seed, distinct_images=distinct_images)
    image_sets = {m: image_set_fingerprint(sources, m) for m in sources.models}
    mine = [r for r in log.read() if r["session"] == session and r["host"] in (host, None)]  # None: schema 1
    answered = {_resumed_trial(r, trials, image_sets, player, answers_file) for r in mine}
    log.lock = SessionLock(log.path, session).acquire()   # one writer per session
    return FoolRateGame(trials, log, session=session, player=player, image_sets=image_sets, host=host,
                        answered=answered, **game_kwargs)


def _resumed_trial(r: dict, trials: list[Trial], image_sets: dict[str, str], player: str, answers_file) -> int:
    """The trial a recorded answer of the resumed session answered, checked against the plan being resumed."""
    session, i = r["session"], r["trial"]
    if r["player"] != player:
        raise ValueError(f"session {session!r} in {answers_file} belongs to player {r['player']!r}; "
                         f"{player!r} cannot continue it. Start a new session (session=None) for {player!r}")
    if not (0 <= i < len(trials)) or (trials[i].model, trials[i].image_id, trials[i].real_side) != \
            (r["model"], r["image_id"], r["real_side"]) or r["n_trials"] != len(trials):
        raise ValueError(f"session {session!r} in {answers_file} was played on another plan (trial {i}: "
                         f"{r['model']}/{r['image_id']}); the folders, models, trials_per_model or seed changed. "
                         f"Restore them to resume, or start a new session (session=None)")
    if r["image_set"] is not None and r["image_set"] != image_sets[r["model"]]:
        raise ValueError(f"session {session!r} in {answers_file} was played on other images of model "
                         f"{r['model']!r} (image set {r['image_set']}, now {image_sets[r['model']]}); restore "
                         f"the images to resume, or start a new session (session=None)")
    return i


# ---------------------------------------------------------------------------------------------------- results

def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (Wilson 1927); (nan, nan) when n = 0."""
    if n == 0:
        return math.nan, math.nan
    from statistics import NormalDist
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


UNKNOWN_IMAGE_SET = "unknown (schema 1)"


def _grouping(by: str) -> tuple[str, ...]:
    """The columns a table groups by: ``by``, the display time always, and the image set when models are
    compared (a per-player table pools the models, that is its point, but never display times)."""
    return (by, "show_s", "image_set") if by == "model" else (by, "show_s")


def fool_rate_table(records: list[dict], *, by: str = "model", confidence: float = 0.95):
    """Per ``by`` (model, player, ...), display time ``show_s`` and, per model, image set (`image_set_fingerprint`;
    "unknown (schema 1)" for answers that did not record it): n trials, times fooled (derived from the choice and
    the real side), fool rate and its Wilson interval, the median response time, and how many players and sessions
    (each counted per origin). A pandas DataFrame, one row per group, sorted by fool rate; answers played at other
    display times or on other images are never pooled, and a warning names a ``by`` value that spans several rows.
    ``records`` come from `read_answers`; each answer counts once (`unique_answers`), and
    ``table.attrs["duplicates_dropped"]`` says how many repeats were left out."""
    import pandas as pd
    records, repeats = unique_answers(records)
    if repeats:
        r = repeats[0]
        warnings.warn(f"{len(repeats)} duplicate answers (the same session, player, origin and trial answered more "
                      f"than once, e.g. trial {r['trial']} of session {r['session']!r} by {r['player']!r} from "
                      f"{r['origin']}) were left out: each trial counts once, its first answer kept", stacklevel=2)
    keys = _grouping(by)
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    rows = [{**dict(zip(keys, key)), **_rate_row(rs, confidence)} for key, rs in groups.items()]
    columns = [*keys, "n", "fooled", "fool_rate", "ci_low", "ci_high", "median_response_s", "players", "sessions"]
    table = pd.DataFrame(rows, columns=columns).sort_values("fool_rate", ascending=False, kind="stable",
                                                            ignore_index=True)
    if "image_set" in keys:
        table["image_set"] = table["image_set"].fillna(UNKNOWN_IMAGE_SET)
    _warn_split(table, keys)
    table.attrs["duplicates_dropped"] = len(repeats)
    return table


def _rate_row(rs: list[dict], confidence: float) -> dict:
    k, n = sum(is_fooled(r["choice"], r["real_side"]) for r in rs), len(rs)
    low, high = wilson_interval(k, n, confidence)
    return {"n": n, "fooled": k, "fool_rate": k / n, "ci_low": low, "ci_high": high,
            "median_response_s": float(np.median([r["response_s"] for r in rs])),
            "players": len({(r["origin"], r["player"]) for r in rs}),
            "sessions": len({(r["origin"], r["session"]) for r in rs})}


def _warn_split(table, keys: tuple[str, ...]) -> None:
    by, kept_apart = keys[0], list(keys[1:])
    for value, rows in table.groupby(by, sort=False):
        if len(rows) > 1:
            settings = "; ".join(" ".join(f"{k}={v}" for k, v in zip(kept_apart, row))
                                 for row in rows[kept_apart].itertuples(index=False))
            warnings.warn(f"{by} {value!r} was played in {len(rows)} settings ({settings}): each is its own row, "
                          f"not pooled", stacklevel=3)


def with_paper_rates(table, paper: dict[str, float], source: str, *, show_s: float | None = None):
    """``table`` (from `fool_rate_table`) with a paper's fool rates as extra rows, labelled by ``source``, with
    the paper's display time ``show_s`` where it gives one."""
    import pandas as pd
    ours = table.assign(source="measured here")
    theirs = pd.DataFrame([{"model": m, "show_s": show_s, "fool_rate": r, "source": source} for m, r in paper.items()])
    return pd.concat([ours, theirs], ignore_index=True)[["source", *[c for c in ours.columns if c != "source"]]]
