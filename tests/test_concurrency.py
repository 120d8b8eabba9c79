"""Processes meeting the same files: a second `fastdiff train` of one checkpoint stops with a message naming the
first (which goes on undisturbed); concurrent zoo exports lose no entry; SIGTERM and SIGHUP (``timeout``, ``kill``,
schedulers, a closed terminal) save like Ctrl-C; a full disk while saving says so and keeps the previous
checkpoint."""
import errno
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastdiff import files, zoo
from fastdiff.checkpoint import load_checkpoint
from fastdiff.diffusion import make_schedule
from fastdiff.cli import main
from fastdiff.files import DiskFullError
from fastdiff.studies import zoo_recipes
from fastdiff.train import train

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from test_zoo import tiny_recipe  # noqa: E402

# `fastdiff train test/tiny` in a child process that prints "step" after every training step
TRAINER = textwrap.dedent("""
    import dataclasses, sys
    sys.path.insert(0, {tests!r})
    from test_zoo import tiny_recipe
    from fastdiff import train as T
    from fastdiff.cli import main
    from fastdiff.studies import zoo_recipes
    r = tiny_recipe(steps=2000)
    r.train = dataclasses.replace(r.train, checkpoint_every={every})
    zoo_recipes.recipes = lambda: {{"test/tiny": r}}
    update = T.ema_update
    def ema_update(*args):
        update(*args)
        print("step", flush=True)
    T.ema_update = ema_update
    sys.exit(main(["train", "test/tiny", "--device", "cpu", "--checkpoints", {ckpt!r}, "--no-export"]))
""")


def start_trainer(tmp_path, every=1000, steps_before=3):
    """A child `fastdiff train` of test/tiny, returned after it has made ``steps_before`` steps."""
    script = TRAINER.format(tests=str(TESTS), ckpt=str(tmp_path / "ckpt"), every=every)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(steps_before):
        assert proc.stdout.readline().strip() == "step", proc.stderr.read()
    return proc


def stop(proc, sig=signal.SIGTERM):
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.splitlines().count("step"), out + err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_like_ctrl_c(tmp_path, sig):
    proc = start_trainer(tmp_path)
    code, more_steps, err = stop(proc, sig)
    name = signal.Signals(sig).name
    assert code == 128 + sig, err
    assert f"training stopped by {name}" in err and f"interrupted ({name}) after step" in err
    saved = load_checkpoint(tmp_path / "ckpt" / "test_tiny.pt")["step"]
    assert saved == 3 + more_steps     # every step made is in the checkpoint (none since a periodic save is lost)


def test_a_second_trainer_of_the_same_checkpoint_stops_with_a_message_and_the_first_goes_on(tmp_path, monkeypatch,
                                                                                            capsys):
    first = start_trainer(tmp_path, every=1)
    try:
        monkeypatch.setattr(zoo_recipes, "recipes", lambda: {"test/tiny": tiny_recipe(steps=2000)})
        code = main(["train", "test/tiny", "--device", "cpu", "--checkpoints", str(tmp_path / "ckpt"), "--no-export"])
        err = capsys.readouterr().err
        assert code == 2
        assert f"the checkpoint {tmp_path / 'ckpt' / 'test_tiny.pt'} (recipe test/tiny) is in use by process " \
               f"{first.pid}" in err
        assert first.stdout.readline().strip() == "step"          # the first one goes on, undisturbed
        assert first.poll() is None
    finally:
        code, more_steps, err = stop(first)
    assert code == 128 + signal.SIGTERM, err
    assert load_checkpoint(tmp_path / "ckpt" / "test_tiny.pt")["step"] >= 4


EXPORTER = textwrap.dedent("""
    import sys
    from fastdiff import zoo
    from fastdiff.checkpoint import load_checkpoint
    ckpt = load_checkpoint({ckpt!r})
    for i in range({n}):
        zoo.export(f"{{sys.argv[1]}}/m{{i}}", ckpt, data="digits", device="cpu", zoo_dir={zoo!r}, git_commit="test")
""")


def test_concurrent_exports_of_different_entries_lose_none(tmp_path):
    ckpt = tmp_path / "tiny.pt"
    recipe = tiny_recipe(steps=1)
    train(recipe.build(), recipe.data(), make_schedule("linear"), recipe.train, checkpoint=ckpt, progress=False)
    script = EXPORTER.format(ckpt=str(ckpt), zoo=str(tmp_path / "zoo"), n=6)
    procs = [subprocess.Popen([sys.executable, "-c", script, who]) for who in ("a", "b", "c")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert sorted(zoo.entries(tmp_path / "zoo")) == sorted(f"{w}/m{i}" for w in "abc" for i in range(6))
    assert not list((tmp_path / "zoo").glob(".*.lock"))


def test_a_full_disk_while_training_says_so_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    recipe = tiny_recipe(steps=6)         # a checkpoint every step
    saves = []
    fsync = files.os.fsync

    def fsync_until_the_disk_is_full(fd):
        saves.append(fd)
        if len(saves) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)
    monkeypatch.setattr(files.os, "fsync", fsync_until_the_disk_is_full)
    with pytest.raises(DiskFullError, match=r"checkpoint not saved at step 4 \(it still holds step 3\): cannot write "
                                            r".*c.pt: the disk is full .*the previous version is intact"):
        train(recipe.build(), recipe.data(), make_schedule("linear"), recipe.train, checkpoint=tmp_path / "c.pt",
              progress=False)
    monkeypatch.setattr(files.os, "fsync", fsync)
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_a_damaged_sessions_log_is_named_and_nothing_is_overwritten(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo_recipes, "recipes", lambda: {"test/tiny": tiny_recipe(steps=2)})
    log = tmp_path / "test_tiny.sessions.json"
    log.write_text('[{"git_commit": "abc", "device"')          # torn by a crash of an older fastdiff
    with pytest.raises(ValueError, match=r"the sessions log .*test_tiny.sessions.json is damaged .*Restore it, or "
                                         r"delete it"):
        zoo_recipes.train_recipe("test/tiny", device="cpu", checkpoint_dir=tmp_path, export=False, progress=False)
    assert log.read_text() == '[{"git_commit": "abc", "device"'
    log.unlink()
    zoo_recipes.train_recipe("test/tiny", device="cpu", checkpoint_dir=tmp_path, export=False, progress=False)
    assert len(json.loads(log.read_text())) == 1
