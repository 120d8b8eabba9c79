"""The fool-rate game without a browser: folders, plan, state machine driven by simulated clicks with a fake
clock and timer, the answers log (torn lines, resume), a kernel killed mid-session, and the statistics."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastdiff.measure import answers as answers_module, foolrate
from fastdiff.measure.answers import AnswerLog, AnswerRecordError, read_answers
from fastdiff.measure.foolrate import (fool_rate_table, image_set_fingerprint, open_session, plan_trials,
                                       wilson_interval)
from fastdiff.measure.game_images import GameDataError, GameSources, write_game_folders
from fastdiff.studies import fool_rate_game


class FakeTime:
    """An injectable clock and timer: time moves only when a test says so, and due timers fire then."""

    def __init__(self):
        self.now = 100.0
        self.pending = []

    def clock(self):
        return self.now

    def timer(self, seconds, callback):
        entry = [self.now + seconds, callback, True]
        self.pending.append(entry)
        return lambda: entry.__setitem__(2, False)

    def advance(self, seconds):
        self.now += seconds
        for entry in [e for e in self.pending if e[0] <= self.now and e[2]]:
            entry[2] = False
            entry[1]()


def _images(seed):
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(12, 3, 8, 8, generator=g) * 2 - 1
    return real, {"small": real.flip(-1), "original": -real}, real[:, :, ::2, ::2]


@pytest.fixture
def folders(tmp_path):
    return write_game_folders(tmp_path / "game", *_images(seed=0))


@pytest.fixture
def sources(folders):
    return GameSources.from_folders(folders / "real", folders / "generated", folders / "lr")


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Table I: 0/10 -> (0, 0.2775); 81/263 -> (0.2553, 0.3662); 15/148 -> (0.0624, 0.1605)
    for (k, n), (low, high) in {(0, 10): (0.0, 0.2775), (81, 263): (0.2553, 0.3662),
                                (15, 148): (0.0624, 0.1605)}.items():
        got = wilson_interval(k, n)
        assert got == pytest.approx((low, high), abs=1e-4)
    assert all(v != v for v in wilson_interval(0, 0))  # nan when there is no trial


def test_plan_balances_sides_interleaves_models_and_is_seeded():
    names = [f"im{i}" for i in range(40)]
    models = ["a", "b", "c"]
    for per_model in (7, 8):
        trials = plan_trials(names, models, per_model, seed=3)
        assert [t.index for t in trials] == list(range(3 * per_model))
        for m in models:
            sides = [t.real_side for t in trials if t.model == m]
            assert len(sides) == per_model and abs(sides.count("left") - sides.count("right")) == per_model % 2
        for r in range(per_model):  # every round shows each model once
            assert sorted(t.model for t in trials[3 * r:3 * r + 3]) == models
        assert len({t.image_id for t in trials}) == len(trials)  # no image twice in a session
    assert plan_trials(names, models, 8, seed=3) == plan_trials(names, models, 8, seed=3)
    assert plan_trials(names, models, 8, seed=3) != plan_trials(names, models, 8, seed=4)
    with pytest.raises(GameDataError, match="need 45 distinct images but the folders hold 40"):
        plan_trials(names, models, 15, seed=0)
    assert len(plan_trials(names, models, 15, seed=0, distinct_images=False)) == 45


def test_sides_are_balanced_across_many_sessions():
    names = [f"im{i}" for i in range(10)]
    lefts = sum(t.real_side == "left" for s in range(200) for t in plan_trials(names, ["a"], 5, seed=s))
    assert 400 <= lefts <= 600  # 1000 trials, the odd one of each session at random


def test_folder_layouts(folders):
    subdirs = GameSources.from_folders(folders / "real", folders / "generated")
    assert sorted(subdirs.models) == ["original", "small"] and subdirs.lr is None and len(subdirs.names) == 12
    single = GameSources.from_folders(folders / "real", folders / "generated" / "small")
    assert list(single.models) == ["small"]
    mapping = GameSources.from_folders(folders / "real", {"mine": folders / "generated" / "original"})
    assert list(mapping.models) == ["mine"]
    assert mapping.load("generated", "0003", "mine").size == (8, 8)


def test_folder_errors_say_what_is_wrong(folders, tmp_path):
    real, gen, lr = folders / "real", folders / "generated", folders / "lr"
    with pytest.raises(GameDataError, match="does not exist"):
        GameSources.from_folders(tmp_path / "nope", gen)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GameDataError, match="holds no images"):
        GameSources.from_folders(real, tmp_path / "empty")
    (gen / "small" / "0004.png").rename(gen / "small" / "extra.png")
    with pytest.raises(GameDataError, match=r"generated \(small\) folder does not match.*missing 0004.*extra"):
        GameSources.from_folders(real, gen)
    (gen / "small" / "extra.png").rename(gen / "small" / "0004.png")
    Image.new("RGB", (9, 8)).save(gen / "original" / "0002.png")
    with pytest.raises(GameDataError, match="0002: the real image is 8x8 but the original image 0002.png is 9x8"):
        GameSources.from_folders(real, gen)
    Image.new("RGB", (8, 8)).save(gen / "original" / "0002.png")
    Image.new("RGB", (8, 8)).save(lr / "0001.png")
    with pytest.raises(GameDataError, match="0001: the lr image is 8x8, not smaller"):
        GameSources.from_folders(real, gen, lr)
    Image.new("RGB", (8, 8)).save(real / "0001.jpg")
    with pytest.raises(GameDataError, match="two images named '0001'"):
        GameSources.from_folders(real, gen)
    (real / "0001.jpg").unlink()
    (real / "0005.png").write_bytes(b"not a png")
    with pytest.raises(GameDataError, match="cannot read image"):
        GameSources.from_folders(real, gen)


def test_generated_tensors_must_match_real(tmp_path):
    with pytest.raises(GameDataError, match="model 'x'"):
        write_game_folders(tmp_path, torch.zeros(2, 3, 8, 8), {"x": torch.zeros(2, 3, 4, 4)})


def play(game, fake, choose=lambda trial: "left", wait=5.0):
    game.start()
    fake.advance(wait)
    return game.choose(choose(game.trial))


def test_state_machine_hides_after_show_time_and_records_each_answer(sources, tmp_path):
    fake = FakeTime()
    log_path = tmp_path / "answers.jsonl"
    game = open_session(sources, log_path, player="ann", session="s1", trials_per_model=3, show_s=5.0,
                        clock=fake.clock, timer=fake.timer)
    assert game.state == "ready" and game.n_answered == 0 and len(game.trials) == 6
    with pytest.raises(RuntimeError, match="state 'ready'"):
        game.choose("left")
    game.start()
    assert game.state == "showing" and not game.can_choose
    with pytest.raises(RuntimeError, match="still shown"):
        game.choose("left")
    fake.advance(4.99)
    assert game.state == "showing"
    fake.advance(0.01)
    assert game.state == "hidden" and game.can_choose
    fake.advance(1.5)
    trial = game.trial
    record = game.choose("right")
    assert record["response_s"] == pytest.approx(6.5) and record["fooled"] == (trial.real_side == "left")
    assert set(record) == set(answers_module.RECORD_FIELDS)
    assert read_answers(log_path) == [{**record, "origin": record["host"]}]
    with pytest.raises(ValueError, match="side must be one of"):
        game.start(), fake.advance(5), game.choose("middle")
    game.choose("left")
    while game.state != "finished":
        play(game, fake, lambda t: t.real_side)  # a player who is never fooled
    answers = read_answers(log_path)
    assert [a["trial"] for a in answers] == list(range(6))
    assert sum(a["fooled"] for a in answers[2:]) == 0
    with pytest.raises(RuntimeError):
        game.start()


def test_stale_timer_and_polling_and_answers_during_display(sources, tmp_path):
    fake = FakeTime()
    game = open_session(sources, tmp_path / "a.jsonl", player="p", session="s", trials_per_model=2,
                        answer_while_showing=True, clock=fake.clock, timer=fake.timer)
    game.start()
    game.choose("left")  # allowed while showing
    game.start()
    fake.advance(5.0)  # the first trial's timer was cancelled; only the second one fires
    assert game.state == "hidden" and game.trials[game.position].index == 1
    polled = open_session(sources, tmp_path / "b.jsonl", player="p", session="s", trials_per_model=1,
                          clock=fake.clock, timer=lambda s, cb: (lambda: None))  # a timer that never fires
    polled.start()
    fake.advance(5.0)
    assert polled.state == "showing"
    polled.tick()
    assert polled.state == "hidden"


def test_widget_driven_by_simulated_clicks(sources, tmp_path):
    from fastdiff.measure.foolrate_widget import FoolRateView
    fake = FakeTime()
    game = open_session(sources, tmp_path / "a.jsonl", player="p", session="w", trials_per_model=2,
                        clock=fake.clock, timer=fake.timer)
    view = FoolRateView(game, sources, display_px=32, reveal=True)
    blank = view.left.value
    assert view.button_left.disabled and view.button_right.disabled and not view.button_next.disabled
    view.button_left.click()  # disabled in the browser; a stray call is ignored too
    assert game.n_answered == 0
    view.button_next.click()
    assert game.state == "showing" and view.left.value != blank and view.right.value != blank
    shown = Image.open(__import__("io").BytesIO(view.left.value))
    assert shown.size == (32, 32)  # 8x8 enlarged 4x by nearest neighbour
    fake.advance(5)
    assert view.left.value == blank and view.right.value == blank and not view.button_left.disabled
    view.button_right.click()
    assert game.n_answered == 1 and "Answer 1 recorded" in view.status.value and "real one was on" in view.status.value
    for _ in range(3):
        view.button_next.click(), fake.advance(5), view.button_left.click()
    assert game.state == "finished" and "Session finished: 4 answers" in view.status.value
    assert view.button_next.disabled and view.button_left.disabled
    assert [r["choice"] for r in read_answers(tmp_path / "a.jsonl")] == ["right", "left", "left", "left"]


def test_resume_continues_the_same_plan(sources, tmp_path):
    fake = FakeTime()
    log = tmp_path / "a.jsonl"
    kw = dict(player="p", session="lecture-1", trials_per_model=4, clock=fake.clock, timer=fake.timer)
    first = open_session(sources, log, **kw)
    for _ in range(3):
        play(first, fake)
    other = open_session(sources, log, **{**kw, "session": "other"})  # a second session in the same file
    play(other, fake)
    resumed = open_session(sources, log, **kw)
    assert resumed.trials == first.trials and resumed.n_answered == 3 and resumed.trial.index == 3
    while resumed.state != "finished":
        play(resumed, fake)
    mine = [a["trial"] for a in read_answers(log) if a["session"] == "lecture-1"]
    assert sorted(mine) == list(range(8))
    with pytest.raises(ValueError, match="another plan"):
        open_session(sources, log, **{**kw, "trials_per_model": 3})


def test_truncated_last_line_is_tolerated_and_repaired(sources, tmp_path):
    fake = FakeTime()
    log = tmp_path / "a.jsonl"
    game = open_session(sources, log, player="p", session="s", trials_per_model=3, clock=fake.clock, timer=fake.timer)
    for _ in range(2):
        play(game, fake)
    whole = log.read_bytes()
    next_line = json.dumps({**game.last_record, "trial": 2}).encode()
    log.write_bytes(whole + next_line[:25])  # killed while the third line was being written
    with pytest.warns(UserWarning, match="truncated last line"):
        assert len(read_answers(log)) == 2
    with pytest.warns(UserWarning, match="cut short"):
        resumed = open_session(sources, log, player="p", session="s", trials_per_model=3, clock=fake.clock,
                               timer=fake.timer)
    assert log.read_bytes() == whole and (tmp_path / "a.jsonl.torn").read_bytes() == next_line[:25] + b"\n"
    assert resumed.n_answered == 2
    while resumed.state != "finished":
        play(resumed, fake)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [a["trial"] for a in read_answers(log)] == list(range(6))
    # a whole record that only lacks its newline is kept, not trimmed
    log.write_bytes(log.read_bytes().rstrip(b"\n"))
    AnswerLog(log)
    assert log.read_bytes().endswith(b"}\n") and len(read_answers(log)) == 6


def test_damaged_log_lines_are_errors(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_text('{"broken\n{"schema": 1}\n')
    with pytest.raises(ValueError, match="a.jsonl, line 1: not a JSON answer record(.|\n)*line 2: the record lacks"):
        read_answers(log)
    log.write_text(json.dumps({"schema": 99}) + "\n")
    with pytest.raises(ValueError, match="line 1: answer record schema 99 is newer"):
        read_answers(log)
    log.write_text(json.dumps({"schema": 1, "model": "x"}) + "\n")
    with pytest.raises(ValueError, match="lacks"):
        read_answers(log)


KERNEL_PLAYER = """
import os, sys
sys.path.insert(0, {root!r})
from fastdiff.measure.foolrate import open_session
from fastdiff.measure.game_images import GameSources
src = GameSources.from_folders({folders!r} + "/real", {folders!r} + "/generated", {folders!r} + "/lr")
now = [0.0]
game = open_session(src, {log!r}, player="room", session="killed", trials_per_model=4,
                    clock=lambda: now[0], timer=lambda s, cb: (lambda: None))
for _ in range(3):
    game.start(); now[0] += 6; game.tick(); game.choose("left")
game.start()  # the fourth pair is on screen when the kernel dies
print("played", game.n_answered, os.getpid(), flush=True)
"""


def test_kernel_killed_mid_session_loses_no_answer(sources, folders, tmp_path):
    """A real IPython kernel plays three answers, shows the fourth pair, and is killed with SIGKILL; every answer
    it recorded is on disk and the session resumes at the fourth trial."""
    from jupyter_client.manager import start_new_kernel
    log = tmp_path / "answers.jsonl"
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        code = KERNEL_PLAYER.format(root=str(Path(foolrate.__file__).parents[2]),
                                    folders=str(folders), log=str(log))
        outputs = []
        reply = kc.execute_interactive(code, timeout=120, output_hook=lambda m: outputs.append(m))
        assert reply["content"]["status"] == "ok", reply["content"]
        text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        assert text.startswith("played 3")
        pid = int(text.split()[2])
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not km.is_alive():
                break
            time.sleep(0.05)
        assert not km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    answers = read_answers(log)
    assert [a["trial"] for a in answers] == [0, 1, 2] and {a["session"] for a in answers} == {"killed"}
    fake = FakeTime()
    resumed = open_session(sources, log, player="room", session="killed", trials_per_model=4, clock=fake.clock,
                           timer=fake.timer)
    assert resumed.n_answered == 3 and resumed.trial.index == 3


def test_one_writer_per_session_and_each_trial_counts_once(sources, tmp_path):
    """Two games on one session (two kernels on one id, or a second player on the first player's id) are refused,
    a superseded game in the same process stops writing, and analysis counts each (session, trial) once."""
    log = tmp_path / "answers.jsonl"
    fake = FakeTime()
    first = open_session(sources, log, player="ann", session="s1", trials_per_model=4, clock=fake.clock,
                         timer=fake.timer)
    first.start(); fake.advance(6); first.choose("left")
    with pytest.raises(ValueError, match="session 's1' .* belongs to player 'ann'; 'bob' cannot continue it"):
        open_session(sources, log, player="bob", session="s1", trials_per_model=4)
    # another live process holds the lock: refused with its pid
    lock = next(tmp_path.glob("answers.jsonl.s1.lock"))
    holder = json.loads(lock.read_text())
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.write_text(json.dumps({**holder, "pid": other.pid, "token": "other"}))
        with pytest.raises(answers_module.SessionInUseError, match=f"being played by process {other.pid}"):
            open_session(sources, log, player="ann", session="s1", trials_per_model=4)
    finally:
        other.kill()
        other.wait()
    # the holder died (a killed kernel): its lock is taken over, and the older game in this process is superseded
    second = open_session(sources, log, player="ann", session="s1", trials_per_model=4, clock=fake.clock,
                          timer=fake.timer)
    assert second.n_answered == 1
    first.start(); fake.advance(6)
    with pytest.raises(answers_module.SessionInUseError, match="opened again elsewhere"):
        first.choose("left")
    second.start(); fake.advance(6); second.choose("right")
    records = read_answers(log)
    assert len(records) == 2 and [r["trial"] for r in records] == [0, 1]
    # duplicates written by an older fastdiff (no lock) are counted once, and said
    with open(log, "a") as f:
        f.write(json.dumps({k: v for k, v in records[0].items() if k != "origin"}) + "\n")
    with pytest.warns(UserWarning, match="1 duplicate answers"):
        table = fool_rate_table(read_answers(log))
    assert table["n"].sum() == 2 and table.attrs["duplicates_dropped"] == 1


@pytest.mark.parametrize("where", ["a folder", "under a file", "read-only"])
def test_an_answers_file_that_cannot_be_written_fails_when_the_session_opens(sources, tmp_path, where):
    if where == "a folder":
        target = tmp_path / "answers.jsonl"
        target.mkdir()
    elif where == "under a file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "answers.jsonl"
    elif os.geteuid() == 0:                 # root ignores file modes: /proc is a place nobody may create files
        target = Path("/proc/answers.jsonl")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "answers.jsonl"
    with pytest.raises(answers_module.AnswersFileError, match="cannot be written .*choose another answers_file"):
        open_session(sources, target, player="ann", trials_per_model=2)


def test_the_widget_escapes_names_and_shows_errors_to_the_player(sources, tmp_path):
    from fastdiff.measure.foolrate_widget import FoolRateView
    fake = FakeTime()
    game = open_session(sources, tmp_path / "a.jsonl", player="<script>alert(1)</script>", session="x<b>",
                        trials_per_model=2, clock=fake.clock, timer=fake.timer)
    view = FoolRateView(game, sources)
    assert "<script>" not in view.title.value and "&lt;script&gt;" in view.title.value and "x&lt;b&gt;" in view.title.value
    view.button_next.click()
    fake.advance(6)
    (tmp_path / "a.jsonl.x_b_.lock").unlink()          # the session's lock vanished: the answer cannot be recorded
    view.button_left.click()
    assert "The game stopped" in view.status.value and "SessionInUseError" in view.status.value
    assert view.button_left.disabled and view.button_right.disabled and view.button_next.disabled


def play_session(sources, log, fake, *, host, session="lecture", player="player-1", trials_per_model=3, **kw):
    """A whole session by a player who is fooled on every third trial; the records the game wrote."""
    game = open_session(sources, log, player=player, session=session, trials_per_model=trials_per_model, host=host,
                        clock=fake.clock, timer=fake.timer, **kw)
    fooling = {"left": "right", "right": "left"}
    records = []
    while game.state != "finished":
        records.append(play(game, fake, lambda t: fooling[t.real_side] if t.index % 3 == 0 else t.real_side))
    return records


def test_a_game_played_and_read_back_gives_the_same_table(sources, tmp_path):
    import pandas as pd
    fake = FakeTime()
    played = play_session(sources, tmp_path / "a.jsonl", fake, host="laptop-a", show_s=2.5)
    assert {r["image_set"] for r in played if r["model"] == "small"} == {image_set_fingerprint(sources, "small")}
    assert {(r["host"], r["show_s"], r["schema"]) for r in played} == {("laptop-a", 2.5, 2)}
    in_memory = fool_rate_table([{**r, "origin": r["host"]} for r in played])
    read_back = fool_rate_table(read_answers(tmp_path / "a.jsonl"))
    pd.testing.assert_frame_equal(read_back, in_memory)
    assert read_back["n"].sum() == 6 and read_back["fooled"].sum() == 2 and set(read_back["show_s"]) == {2.5}
    rows = fool_rate_game.collect_results(read_back, images_from="test folders", show_seconds=2.5).rows
    measured = {r.variant: r.setting for r in rows if r.value is not None}
    small = measured["small"]
    assert (small["show_s"], small["image_set"]) == (2.5, image_set_fingerprint(sources, "small"))


def test_one_session_id_on_two_hosts_keeps_both_players_answers(sources, tmp_path):
    """Two laptops play session "lecture" as "player-1"; their answers files, concatenated, keep all 12 answers,
    and each laptop resumes only its own game."""
    fake = FakeTime()
    a = play_session(sources, tmp_path / "a.jsonl", fake, host="laptop-a")
    b = play_session(sources, tmp_path / "b.jsonl", fake, host="laptop-b")
    both = tmp_path / "both.jsonl"
    both.write_bytes((tmp_path / "a.jsonl").read_bytes() + (tmp_path / "b.jsonl").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no answer is dropped as a duplicate
        table = fool_rate_table(read_answers(both))
    assert table["n"].sum() == len(a) + len(b) == 12 and set(table["sessions"]) == {2}
    assert table.attrs["duplicates_dropped"] == 0
    partly = tmp_path / "partly.jsonl"
    partly.write_text("".join(json.dumps(r) + "\n" for r in a[:2] + b))
    resumed = open_session(sources, partly, player="player-1", session="lecture", trials_per_model=3, host="laptop-a")
    assert resumed.n_answered == 2 and resumed.trial.index == 2


def test_the_image_set_fingerprint_tells_image_sets_apart(sources, folders, tmp_path):
    same = GameSources.from_folders(folders / "real", folders / "generated", folders / "lr")
    assert image_set_fingerprint(same, "small") == image_set_fingerprint(sources, "small")
    assert image_set_fingerprint(sources, "small") != image_set_fingerprint(sources, "original")
    other = write_game_folders(tmp_path / "other", *_images(seed=1))   # another run: a folder of the same name
    other_sources = GameSources.from_folders(other / "real", other / "generated", other / "lr")
    assert image_set_fingerprint(other_sources, "small") != image_set_fingerprint(sources, "small")
    fake = FakeTime()
    log = tmp_path / "a.jsonl"
    game = open_session(sources, log, player="p", session="s", trials_per_model=3, clock=fake.clock, timer=fake.timer)
    play(game, fake)
    with pytest.raises(ValueError, match="was played on other images of model '(small|original)'"):
        open_session(other_sources, log, player="p", session="s", trials_per_model=3)


def test_a_schema_1_session_resumes_and_goes_on_in_schema_2(sources, tmp_path):
    fake = FakeTime()
    log = tmp_path / "a.jsonl"
    played = play_session(sources, log, fake, host=None, session="old")
    old = [{**{k: v for k, v in r.items() if k not in ("host", "image_set")}, "schema": 1} for r in played[:2]]
    log.write_text("".join(json.dumps(r) + "\n" for r in old))
    with pytest.warns(UserWarning, match="2 answers of schema 1"):
        resumed = open_session(sources, log, player="player-1", session="old", trials_per_model=3,
                               clock=fake.clock, timer=fake.timer)
    assert resumed.n_answered == 2
    record = play(resumed, fake)
    assert record["schema"] == 2 and record["image_set"] == image_set_fingerprint(sources, record["model"])


def test_a_damaged_answers_file_stops_the_game_naming_the_line(sources, tmp_path):
    fake = FakeTime()
    log = tmp_path / "answers.jsonl"
    played = play_session(sources, log, fake, host="lab")
    log.write_text("".join(json.dumps({**r, "trial": str(r["trial"])} if i == 1 else r) + "\n"
                           for i, r in enumerate(played)))
    with pytest.raises(AnswerRecordError, match="answers.jsonl, line 2: field 'trial' must be an integer >= 0, "
                                                "got the string '1'"):
        open_session(sources, log, player="player-1", trials_per_model=3)


@pytest.mark.parametrize("raw, checked", [
    (dict(), dict(trials_per_model=10, show_seconds=5.0, answer_while_showing=False, reveal=False)),
    (dict(reveal="false", answer_while_showing="TRUE"), dict(reveal=False, answer_while_showing=True)),
    (dict(reveal=True, trials_per_model=3, show_seconds=2), dict(reveal=True, trials_per_model=3, show_seconds=2.0)),
    (dict(trials_per_model=None, show_seconds=None), dict(trials_per_model=10, show_seconds=5.0)),
])
def test_notebook_06_parameters_are_read_strictly(raw, checked):
    P = fool_rate_game.game_parameters("quick", **raw)
    assert {k: P[k] for k in checked} == checked and type(P["reveal"]) is bool
    assert fool_rate_game.game_parameters("full")["trials_per_model"] == 30


@pytest.mark.parametrize("raw, message", [
    (dict(reveal="no"), "reveal must be True or False, got 'no'; papermill's -p passes text such as `false` as a string: "
                       "use -p reveal False"),
    (dict(reveal=0), "reveal must be True or False, got 0"),
    (dict(answer_while_showing="yes"), "answer_while_showing must be True or False, got 'yes'; papermill's -p "
                                       "passes text such as `false` as a string: use -p answer_while_showing False or "
                                       "-y 'answer_while_showing: false'"),
    (dict(trials_per_model=0), "trials_per_model must be an integer >= 1, got 0"),
    (dict(trials_per_model=-2), "trials_per_model must be an integer >= 1, got -2"),
    (dict(trials_per_model=2.5), "trials_per_model must be an integer >= 1, got 2.5"),
    (dict(trials_per_model="5"), "trials_per_model must be an integer >= 1, got '5'"),
    (dict(show_seconds=0), "show_seconds must be a finite number > 0, got 0"),
    (dict(show_seconds="5"), "show_seconds must be a finite number > 0, got '5'"),
])
def test_notebook_06_parameters_that_papermill_mangles_are_errors(raw, message):
    import re
    with pytest.raises(ValueError, match=re.escape(message)):
        fool_rate_game.game_parameters("quick", **raw)


def test_the_widget_refuses_a_reveal_that_is_not_a_boolean(sources, tmp_path):
    from fastdiff.measure.foolrate_widget import FoolRateView
    game = open_session(sources, tmp_path / "a.jsonl", player="p", trials_per_model=1)
    with pytest.raises(ValueError, match="reveal must be True or False, got 'false'"):
        FoolRateView(game, sources, reveal="false")
