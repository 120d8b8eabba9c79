"""The fool-rate game: human evaluation of super-resolution, as in SR3 (Saharia et al. 2021, Sec. 4.1) and the
VGG-SR paper (Sec. 3.4 and 4.5). A player sees the low-res image in the centre and two upscaled candidates, one
real and one generated, for a few seconds (5 in the VGG-SR paper); then the candidates are hidden and the player
picks the one they think is real. The fool rate of a model is the share of its trials in which the player
picked the generated image; a perfect generator scores 50%.

This module holds everything but the widgets (`fastdiff.foolrate_widget`):

- `GameSources`: the image folders (``real/``, ``generated/`` or ``generated/<model>/``, optional ``lr/``),
  checked for matching names and sizes;
- `plan_trials`: the trial order, with balanced real sides and models interleaved round by round;
- `AnswerLog`: the JSONL answers file, one line per answer, flushed and fsynced before the game moves on;
- `FoolRateGame`: the game as a state machine with an injectable clock and timer (tests drive it directly);
- `fool_rate_table`: fool rate per model with n and a 95% Wilson interval, beside the paper's rates.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import secrets
import threading
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data import IMAGE_SUFFIXES
from .utils import to_uint8

SCHEMA_VERSION = 1
SIDES = ("left", "right")
RECORD_FIELDS = ("schema", "session", "player", "trial", "n_trials", "model", "image_id", "real_side", "choice",
                 "fooled", "response_s", "show_s", "utc")

# VGG-SR paper, Fig. 8 / Sec. 4.5: FFHQ 32x32 -> 128x128, 10 participants, 2000 denoising steps. The paper gives
# neither the number of trials nor intervals.
PAPER_FOOL_RATES = {"original (66M)": 0.40, "small + VGG (9M)": 0.36, "small (9M)": 0.32}
PAPER_SOURCE = "VGG-SR paper, Fig. 8: FFHQ 32->128, 10 participants, 5 s per trial"
# The game runs no model; the profiles differ only in session length and the size of the offline demo.
PROFILES = {"quick": {"trials_per_model": 10, "demo_images": 24}, "full": {"trials_per_model": 30, "demo_images": 64}}


class GameDataError(ValueError):
    """The image folders cannot be played: missing, empty, mismatched names or sizes. The message says which."""


# ----------------------------------------------------------------------------------------------- image folders

def _image_files(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise GameDataError(f"{what} folder {folder} does not exist")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        if path.stem in files:
            raise GameDataError(f"{what} folder {folder} has two images named {path.stem!r}: "
                                f"{files[path.stem].name} and {path.name}")
        files[path.stem] = path
    if not files:
        raise GameDataError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise GameDataError(f"cannot read image {path}: {e}") from e


def _describe(names: set[str], limit: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass
class GameSources:
    """The folders a game is played on. ``models`` maps a model name to its folder of generated images; every
    folder holds one image per name (file stem), and the real and generated images of a name share one size."""
    real: dict[str, Path]
    models: dict[str, dict[str, Path]]
    lr: dict[str, Path] | None
    names: list[str]

    @classmethod
    def from_folders(cls, real: str | Path, generated: str | Path | dict[str, str | Path],
                     lr: str | Path | None = None) -> "GameSources":
        """``generated`` is one folder (model name: the folder's name), a folder whose sub-folders are the models
        (``generated/<model>/``), or a dict {model: folder}. Each generated folder must hold exactly the names of
        ``real`` (file extensions may differ); ``lr`` (optional) too, with images smaller than the real ones."""
        real_files = _image_files(Path(real), "real")
        if isinstance(generated, dict):
            model_dirs = {str(m): Path(d) for m, d in generated.items()}
        else:
            generated = Path(generated)
            subdirs = sorted(p for p in generated.iterdir() if p.is_dir()) if generated.is_dir() else []
            model_dirs = {p.name: p for p in subdirs} or {generated.name: generated}
        if not model_dirs:
            raise GameDataError("no generated folders given")
        models = {m: _image_files(d, f"generated ({m})") for m, d in model_dirs.items()}
        lr_files = _image_files(Path(lr), "lr") if lr else None

        names = set(real_files)
        for what, files in [*((f"generated ({m})", f) for m, f in models.items()), ("lr", lr_files)]:
            if files is None:
                continue
            if set(files) != names:
                missing, extra = names - set(files), set(files) - names
                raise GameDataError(
                    f"the {what} folder does not match real/ name for name: "
                    + (f"missing {_describe(missing)}" if missing else "")
                    + ("; " if missing and extra else "") + (f"not in real/: {_describe(extra)}" if extra else ""))
        for name in sorted(names):
            size = _image_size(real_files[name])
            for m, files in models.items():
                if (s := _image_size(files[name])) != size:
                    raise GameDataError(f"{name}: the real image is {size[0]}x{size[1]} but the {m} image "
                                        f"{files[name].name} is {s[0]}x{s[1]}; candidates must have one size")
            if lr_files is not None:
                w, h = _image_size(lr_files[name])
                if w >= size[0] or h >= size[1]:
                    raise GameDataError(f"{name}: the lr image is {w}x{h}, not smaller than the real {size[0]}x{size[1]}")
        return cls(real=real_files, models=models, lr=lr_files, names=sorted(names))

    def load(self, kind: str, name: str, model: str | None = None):
        """One image as a PIL RGB image; ``kind`` is "real", "generated" (with ``model``) or "lr"."""
        from PIL import Image
        files = {"real": self.real, "lr": self.lr, "generated": self.models.get(model or "")}.get(kind)
        if files is None:
            raise KeyError(f"no {kind} images" + (f" for model {model!r}" if model else ""))
        with Image.open(files[name]) as im:
            return im.convert("RGB")


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write one image in [-1, 1], (C, H, W), as an 8-bit PNG."""
    from PIL import Image
    array = to_uint8(image).permute(1, 2, 0).numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
    return path


def write_game_folders(root: str | Path, real: torch.Tensor, generated: dict[str, torch.Tensor],
                       lr: torch.Tensor | None = None, *, names: list[str] | None = None) -> Path:
    """Write tensors (N, C, H, W) in [-1, 1] into the layout `GameSources.from_folders` reads:
    ``root/real/<name>.png``, ``root/generated/<model>/<name>.png`` and ``root/lr/<name>.png``."""
    root = Path(root)
    names = names or [f"{i:04d}" for i in range(len(real))]
    for model, images in generated.items():
        if images.shape != real.shape:
            raise GameDataError(f"model {model!r}: generated images {tuple(images.shape)} do not match "
                                f"the real images {tuple(real.shape)}")
    for i, name in enumerate(names):
        save_image(real[i], root / "real" / f"{name}.png")
        for model, images in generated.items():
            save_image(images[i], root / "generated" / model / f"{name}.png")
        if lr is not None:
            save_image(lr[i], root / "lr" / f"{name}.png")
    return root


def demo_folders(root: str | Path, *, n: int = 24, patch_size: int = 64, scale: int = 4, seed: int = 0) -> Path:
    """Offline demo material in the game's layout: ``n`` real photo patches (scikit-image's bundled photos),
    their antialiased-bicubic LR images, and two classical upscalings of the LR as the "generated" candidates,
    ``bicubic`` and ``nearest``. These are interpolation baselines, not diffusion outputs; study 01 writes its
    SR models' outputs in the same layout."""
    import torch.nn.functional as F
    from .data import downsample, photo_patches
    patches = photo_patches(patch_size)
    textured = torch.nonzero(patches.std(dim=(1, 2, 3)) > 0.15).flatten()  # skip flat sky and empty space
    if len(textured) < n:
        raise GameDataError(f"only {len(textured)} textured {patch_size}x{patch_size} photo patches; ask for fewer")
    pick = textured[torch.randperm(len(textured), generator=torch.Generator().manual_seed(seed))[:n]]
    real = patches[pick]
    lr = downsample(real, scale)
    generated = {mode: F.interpolate(lr, scale_factor=scale, mode=mode).clamp(-1, 1) for mode in ("bicubic", "nearest")}
    return write_game_folders(root, real, generated, lr, names=[f"photo{int(i):03d}" for i in pick])


def game_sources(*, game_dir: str = "", real_dir: str = "", generated_dir: str = "", lr_dir: str = "",
                 demo_root: str | Path = "demo", demo_images: int = 24, seed: int = 0) -> tuple[GameSources, str]:
    """The notebook's choice of images, with a line saying where they came from: ``game_dir`` in the layout
    `write_game_folders` writes (``real/``, ``generated/<model>/``, optional ``lr/``; study 01 writes its outputs
    so), else the three folders given one by one, else the offline demo (`demo_folders`) under ``demo_root``."""
    if game_dir:
        root = Path(game_dir)
        lr = root / "lr"
        sources = GameSources.from_folders(root / "real", root / "generated", lr if lr.is_dir() else None)
        return sources, f"folders under {root}"
    if real_dir or generated_dir:
        if not (real_dir and generated_dir):
            raise GameDataError("give both real_dir and generated_dir (lr_dir is optional), or game_dir, "
                                "or none of them for the offline demo")
        return GameSources.from_folders(real_dir, generated_dir, lr_dir or None), \
            f"real {real_dir}, generated {generated_dir}" + (f", lr {lr_dir}" if lr_dir else "")
    root = demo_folders(demo_root, n=demo_images, seed=seed)
    return GameSources.from_folders(root / "real", root / "generated", root / "lr"), (
        f"offline demo: {demo_images} 64x64 patches of scikit-image's bundled photos (real), 16x16 LR by "
        f"antialiased bicubic; candidates are bicubic and nearest-neighbour upscalings (interpolation baselines, "
        f"not diffusion models)")


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
    if trials_per_model < 1:
        raise ValueError(f"trials_per_model must be at least 1, got {trials_per_model}")
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


def session_seed(session: str) -> int:
    """A session's plan is seeded by its id, so a resumed session replays the same plan."""
    return zlib.crc32(session.encode())


def new_session_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


# ------------------------------------------------------------------------------------------------ answers log

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
    the log before the game moves on. ``clock`` (seconds, monotonic) and ``timer(seconds, callback) -> cancel``
    are injectable; tests pass fakes and fire the timer themselves. Listeners added with `on_change` are called
    after every transition (the widget redraws there)."""

    def __init__(self, trials: list[Trial], log: AnswerLog, *, session: str, player: str, show_s: float = 5.0,
                 answer_while_showing: bool = False, clock: Callable[[], float] = time.monotonic,
                 timer: Callable = threading_timer, answered: set[int] = frozenset()):
        if show_s <= 0:
            raise ValueError(f"show_s must be positive, got {show_s}")
        if not trials:
            raise ValueError("no trials to play")
        self.trials, self.log, self.session, self.player = trials, log, session, player
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
                "schema": SCHEMA_VERSION, "session": self.session, "player": self.player,
                "trial": trial.index, "n_trials": len(self.trials), "model": trial.model, "image_id": trial.image_id,
                "real_side": trial.real_side, "choice": side, "fooled": side != trial.real_side,
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
                 **game_kwargs) -> FoolRateGame:
    """Start a session, or resume one: with the ``session`` id of an earlier session in ``answers_file`` the
    game skips the trials answered there and goes on with the rest of the same plan. The plan is seeded by the
    session id (or ``seed``); if the folders or settings changed so that the recorded answers no longer match the
    plan, this stops with an error rather than mixing two plans in one session."""
    session = session or new_session_id()
    log = AnswerLog(answers_file)
    trials = plan_trials(sources.names, list(sources.models), trials_per_model,
                         seed=session_seed(session) if seed is None else seed, distinct_images=distinct_images)
    answered = set()
    for r in log.read():
        if r["session"] != session:
            continue
        i = r["trial"]
        if not (0 <= i < len(trials)) or (trials[i].model, trials[i].image_id, trials[i].real_side) != \
                (r["model"], r["image_id"], r["real_side"]) or r["n_trials"] != len(trials):
            raise ValueError(f"session {session!r} in {answers_file} was played on another plan (trial {i}: "
                             f"{r['model']}/{r['image_id']}); the folders, models, trials_per_model or seed changed. "
                             f"Restore them to resume, or start a new session (session=None)")
        answered.add(i)
    return FoolRateGame(trials, log, session=session, player=player, answered=answered, **game_kwargs)


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


def fool_rate_table(records: list[dict], *, by: str = "model", confidence: float = 0.95):
    """Per ``by`` (model, player, ...): n trials, times fooled, fool rate and its Wilson interval, and the
    median response time. A pandas DataFrame, one row per group, sorted by fool rate."""
    import pandas as pd
    rows = []
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r[by], []).append(r)
    for key, rs in groups.items():
        k, n = sum(bool(r["fooled"]) for r in rs), len(rs)
        low, high = wilson_interval(k, n, confidence)
        rows.append({by: key, "n": n, "fooled": k, "fool_rate": k / n, "ci_low": low, "ci_high": high,
                     "median_response_s": float(np.median([r["response_s"] for r in rs])),
                     "players": len({r["player"] for r in rs}), "sessions": len({r["session"] for r in rs})})
    columns = [by, "n", "fooled", "fool_rate", "ci_low", "ci_high", "median_response_s", "players", "sessions"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("fool_rate", ascending=False, ignore_index=True)


def with_paper_rates(table, paper: dict[str, float] = PAPER_FOOL_RATES):
    """``table`` (from `fool_rate_table`) with the paper's fool rates as extra rows, labelled by source."""
    import pandas as pd
    ours = table.assign(source="measured here")
    theirs = pd.DataFrame([{"model": m, "fool_rate": r, "source": PAPER_SOURCE} for m, r in paper.items()])
    return pd.concat([ours, theirs], ignore_index=True)[["source", *[c for c in ours.columns if c != "source"]]]
