"""The zoo: an exported entry loads back bit for bit (in half precision) with its provenance, a changed file is
refused, `fastdiff train NAME` trains from a recipe, resumes exactly after the process is killed, and exports;
`fastdiff zoo` lists every entry. Also: the shipped entries load and match their index."""
import dataclasses
import hashlib
import json
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch

from fastdiff import zoo
from fastdiff.checkpoint import load_checkpoint
from fastdiff.cli import main
from fastdiff.data import load_dataset
from fastdiff.recipes import Recipe, seeded
from fastdiff.studies import zoo_recipes
from fastdiff.train import TrainConfig
from fastdiff.unet import build_unet

ROOT = Path(__file__).resolve().parents[1]


def tiny_recipe(steps=6):
    return Recipe(name="test/tiny", description="a tiny U-Net for the tests",
                         build=seeded(lambda: build_unet("tiny")),
                         data=lambda: torch.nn.functional.interpolate(load_dataset("mnist-builtin", image_size=32)[:64],
                                                                      size=8, mode="area"),
                         data_label="64 digits at 8x8", schedule="linear",
                         train=TrainConfig(steps=steps, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=1))


@pytest.fixture
def recipes(monkeypatch):
    monkeypatch.setattr(zoo_recipes, "recipes", lambda: {"test/tiny": tiny_recipe()})


def test_train_exports_an_entry_that_loads_with_its_provenance(recipes, tmp_path, capsys):
    out = zoo_recipes.train_recipe("test/tiny", device="cpu", checkpoint_dir=tmp_path / "ckpt",
                                   zoo_dir=tmp_path / "zoo", progress=False)
    e = out["entry"]
    assert e.steps == 6 and e.batch_size == 4 and e.sessions == 1 and e.stored_dtype == "fp16"
    assert e.sha256 == zoo.sha256_of(tmp_path / "zoo" / e.file) and e.parameters == sum(
        p.numel() for p in build_unet("tiny").parameters())
    model, loaded = zoo.load("test/tiny", zoo_dir=tmp_path / "zoo")
    assert "zoo:test/tiny" in capsys.readouterr().out and loaded == e
    ema = out["result"]["ema"].state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, ema[k].half().float())          # the EMA weights, stored in half precision
    curves = zoo.curves("test/tiny", zoo_dir=tmp_path / "zoo")
    assert [h["step"] for h in curves["history"]] == list(range(1, 7))
    rows = zoo.table(tmp_path / "zoo")
    assert rows[0]["name"] == "test/tiny" and rows[0]["sha256"] == e.sha256[:12]
    (tmp_path / "zoo" / e.file).write_bytes((tmp_path / "zoo" / e.file).read_bytes()[:-10] + b"0123456789")
    with pytest.raises(zoo.ZooError, match="does not match its recorded sha256"):
        zoo.load("test/tiny", zoo_dir=tmp_path / "zoo")


KILLED_TRAINER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_zoo import tiny_recipe
    from fastdiff.studies import zoo_recipes
    zoo_recipes.recipes = lambda: {{"test/tiny": tiny_recipe(steps=400)}}
    zoo_recipes.train_recipe("test/tiny", device="cpu", checkpoint_dir={ckpt!r}, zoo_dir={zoo!r}, progress=False)
""")


def test_fastdiff_train_resumes_exactly_after_a_kill(tmp_path, monkeypatch):
    """kill -9 in the middle of `fastdiff train`: the next run resumes from the last checkpoint and ends with the
    weights of a run that was never interrupted."""
    script = KILLED_TRAINER.format(tests=str(Path(__file__).parent), ckpt=str(tmp_path / "ckpt"), zoo=str(tmp_path / "zoo"))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    ckpt = tmp_path / "ckpt" / "test_tiny.pt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(ckpt)["step"] >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert 5 <= killed_at < 400, killed_at
    monkeypatch.setattr(zoo_recipes, "recipes", lambda: {"test/tiny": tiny_recipe(steps=400)})
    resumed = zoo_recipes.train_recipe("test/tiny", device="cpu", checkpoint_dir=tmp_path / "ckpt",
                                       zoo_dir=tmp_path / "zoo", progress=False)
    straight = zoo_recipes.train_recipe("test/tiny", device="cpu", checkpoint_dir=tmp_path / "straight",
                                        zoo_dir=tmp_path / "zoo2", progress=False)
    assert resumed["result"]["resumed_from"] == killed_at and resumed["entry"].sessions == 2
    for a, b in zip(resumed["result"]["model"].state_dict().values(), straight["result"]["model"].state_dict().values()):
        assert torch.equal(a, b)
    assert "resumed over 2 sessions" in resumed["entry"].provenance


def test_the_command_line_trains_in_pieces_and_lists_the_zoo(recipes, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path / "zoo")
    assert main(["train"]) == 0 and "test/tiny" in capsys.readouterr().out
    assert main(["train", "test/tiny", "--steps", "3", "--checkpoints", str(tmp_path / "c")]) == 0
    assert "trained to step 3" in capsys.readouterr().out and not (tmp_path / "zoo").exists()
    assert main(["train", "test/tiny", "--checkpoints", str(tmp_path / "c")]) == 0
    assert "exported zoo:test/tiny" in capsys.readouterr().out
    assert main(["zoo"]) == 0
    listing = capsys.readouterr().out
    assert "test/tiny" in listing and "sessions" in listing
    assert main(["zoo", "--json"]) == 0 and json.loads(capsys.readouterr().out)["test/tiny"]["sessions"] == 2


def test_every_shipped_entry_matches_its_index_and_loads():
    """The zoo in the package: every file is present, matches its sha256, rebuilds through the registry, and the
    whole zoo stays small enough to live in git."""
    entries = zoo.entries()
    if not entries:
        pytest.skip("no zoo entries shipped yet")
    total = 0
    for name, e in entries.items():
        path = zoo.ZOO_DIR / e.file
        total += path.stat().st_size
        model, _ = zoo.load(name, verbose=False)
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == e.parameters
        assert e.git_commit and e.device and e.steps > 0 and e.wall_seconds > 0
    # 35 MB of study models + 5 MB of the progressive-distillation chain (six students, each the next one's
    # teacher: `distill/pd-*`) + 2.5 MB of report 07's trained speed-ups (CD students, the scale-shift); the seed
    # replicas of the spread of retraining are not shipped (benchmarks/seed_spread.py says how to get them)
    assert total < 44 * 2**20, f"the zoo holds {total / 2**20:.1f} MB"


def test_the_zoo_holds_every_model_the_quick_notebooks_load():
    """What the notebooks' quick profiles load with weights="zoo" is in the shipped index (else nbval, and every
    reader, meets a ZooError instead of a trained model)."""
    from fastdiff.studies import adaptive_layer_skipping, continuous_unet, diffusion_basics, patch_parallel_sr
    from fastdiff.studies import vgg_conditioned_sr as vggsr
    needed = {diffusion_basics.ZOO_MODEL, *adaptive_layer_skipping.ZOO_MODELS.values(),
              *(vggsr.ZOO_MODELS[v] for v in vggsr.get_profile("quick").variants),
              *(continuous_unet.ZOO_MODELS[m] for m in continuous_unet.get_profile("quick").models),
              *(patch_parallel_sr.ZOO_MODELS[m] for m in patch_parallel_sr.get_profile("quick").models)}
    missing = sorted(needed - set(zoo.entries()))
    assert not missing, f"not in the zoo: {missing} (train them with `fastdiff train NAME`)"


def test_seed_replicas_change_the_seed_and_nothing_else():
    """The spread of retraining: `<entry>-seed<k>` is its entry's recipe with seed k (other initial weights, another
    TrainConfig.seed), the same data, schedule, budget and description but for the seed."""
    every = zoo_recipes.recipes()
    replicas = [n for n in every if re.search(r"-seed\d+$", n)]
    assert {"skipping/baseline-plain-seed1", "skipping/zero-consistent-c2-seed2", "cunet/unet-seed1",
            "cunet/cunet-seed2"} <= set(replicas)
    for name in replicas:
        base, seed = re.fullmatch(r"(.*)-seed(\d+)", name).groups()
        a, b = every[base], every[name]
        assert b.train == dataclasses.replace(a.train, seed=int(seed)) and a.train.seed == 0
        assert (a.schedule, a.data_label) == (b.schedule, b.data_label)
        assert b.description == f"{a.description}, seed {seed}"
    a, b = every["cunet/unet"].build(), every["cunet/unet-seed1"].build()
    assert not torch.equal(next(a.parameters()), next(b.parameters()))
    assert torch.equal(next(a.parameters()), next(every["cunet/unet"].build().parameters()))


# ----------------------------------------------------------------------------------------- the index is checked

WEIGHTS = b"not really weights"


def zoo_with_entry(tmp_path, fmt=zoo.FORMAT, **changes) -> Path:
    """A zoo folder whose index holds entry 'x/y' (``changes``: fields replaced; None: field removed)."""
    (tmp_path / "x").mkdir(parents=True, exist_ok=True)
    (tmp_path / "x" / "y.pt").write_bytes(WEIGHTS)
    e = dataclasses.asdict(zoo.ZooEntry(
        name="x/y", file="x/y.pt", sha256=hashlib.sha256(WEIGHTS).hexdigest(), parameters=10, data="digits",
        steps=5, batch_size=4, wall_seconds=1.5, device="CPU: x", train_dtype="fp32", final_loss=0.1,
        git_commit="abc", trained_utc="2026-01-01T00:00:00+00:00"))
    e.update(changes)
    e = {k: v for k, v in e.items() if v is not None}
    (tmp_path / "index.json").write_text(json.dumps({"format": fmt, "entries": {"x/y": e}}))
    return tmp_path


def test_the_zoo_entry_fields_have_a_json_type_each():
    assert {f.type for f in dataclasses.fields(zoo.ZooEntry)} <= set(zoo._KINDS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zoo.entries()                                   # the shipped index: valid, nothing unknown


@pytest.mark.parametrize("changes, message", [
    (dict(sha256=None), "missing field 'sha256'"),
    (dict(steps="5"), "field 'steps' is str '5', not an integer"),
    (dict(wall_seconds=True), "field 'wall_seconds' is bool 'True', not a number"),
    (dict(recipe=[]), "field 'recipe' is list '[]', not an object"),
    (dict(name="x/z"), "its name field says 'x/z'"),
    (dict(sha256="abc"), "sha256 'abc' is not 64 hex digits"),
    (dict(file="../../etc/passwd"), "file '../../etc/passwd' is not a path inside the zoo folder")])
def test_an_index_entry_of_another_version_names_the_file_the_entry_and_the_field(tmp_path, changes, message):
    folder = zoo_with_entry(tmp_path, **changes)
    with pytest.raises(zoo.ZooError, match=re.escape(f"{folder / 'index.json'}, entry 'x/y': {message}") +
                       r".*\(written by another fastdiff version\?\); restore the index from git, or retrain with "
                       r"`fastdiff train x/y`"):
        zoo.entries(folder)
    with pytest.raises(zoo.ZooError, match=re.escape(message)):
        zoo.load("x/y", zoo_dir=folder)


def test_an_index_of_another_format_names_the_file(tmp_path):
    index = zoo_with_entry(tmp_path, fmt="fastdiff.zoo/2") / "index.json"
    with pytest.raises(zoo.ZooError, match=re.escape(f"{index} was written by another fastdiff version (format "
                                                     "'fastdiff.zoo/2'; this one reads 'fastdiff.zoo/1'): upgrade")):
        zoo.entries(tmp_path)
    for data, message in (([1, 2], "is not a fastdiff zoo index (fastdiff.zoo/1; it holds a list)"),
                          ({"format": zoo.FORMAT}, ": 'entries' is missing or not an object"),
                          ({"format": zoo.FORMAT, "entries": [1]}, ": 'entries' is missing or not an object")):
        index.write_text(json.dumps(data))
        with pytest.raises(zoo.ZooError, match=re.escape(f"{index}{'' if message[0] == ':' else ' '}{message}")):
            zoo.entries(tmp_path)
    index.write_text('{"format": "fastdiff.zoo/1", "entries": {"x/y": {"na')
    with pytest.raises(zoo.ZooError, match=re.escape(f"the zoo index {index} is not valid JSON")):
        zoo.entries(tmp_path)


def test_an_unknown_field_is_ignored_with_a_warning_and_missing_optional_fields_take_their_defaults(tmp_path):
    folder = zoo_with_entry(tmp_path, license="CC-BY", sessions=None, curves_file=None)
    with pytest.warns(zoo.ZooIndexWarning, match=re.escape(f"{folder / 'index.json'}, entry 'x/y': unknown field "
                                                           "'license' ignored (written by a newer fastdiff version?)")):
        e = zoo.entries(folder)["x/y"]
    assert e.sessions == 1 and e.curves_file == ""


def test_fastdiff_zoo_says_what_is_wrong_with_the_index_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(zoo, "ZOO_DIR", zoo_with_entry(tmp_path, parameters=None))
    assert main(["zoo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastdiff zoo: {tmp_path / 'index.json'}, entry 'x/y': missing field 'parameters'")
    assert len(err.splitlines()) == 1
    zoo_with_entry(tmp_path, license="CC-BY")
    assert main(["zoo"]) == 0
    out, err = capsys.readouterr()
    assert "x/y" in out and err == (f"fastdiff zoo: warning: {tmp_path / 'index.json'}, entry 'x/y': unknown field "
                                    "'license' ignored (written by a newer fastdiff version?)\n")


def test_loading_an_entry_whose_file_is_missing_or_changed_is_an_error(tmp_path):
    folder = zoo_with_entry(tmp_path)
    (folder / "x" / "y.pt").write_bytes(WEIGHTS + b"!")
    with pytest.raises(zoo.ZooError, match=re.escape(f"zoo file {folder / 'x' / 'y.pt'} does not match its recorded "
                                                     "sha256") + ".*Restore it from git, or retrain"):
        zoo.load("x/y", zoo_dir=folder)
    (folder / "x" / "y.pt").unlink()
    with pytest.raises(zoo.ZooError, match=re.escape(f"zoo entry 'x/y' is in the index but its file "
                                                     f"{folder / 'x' / 'y.pt'} is missing")):
        zoo.load("x/y", zoo_dir=folder)


def test_a_damaged_curves_file_names_it(tmp_path):
    folder = zoo_with_entry(tmp_path, curves_file="x/y.curves.json")
    (folder / "x" / "y.curves.json").write_text('{"history": [')
    with pytest.raises(zoo.ZooError, match=re.escape(f"the curves file {folder / 'x' / 'y.curves.json'} of zoo entry "
                                                     "'x/y' is not valid JSON")):
        zoo.curves("x/y", zoo_dir=folder)
    (folder / "x" / "y.curves.json").write_text('{"history": []}')
    with pytest.raises(zoo.ZooError, match="lacks its 'history' and 'evals' lists"):
        zoo.curves("x/y", zoo_dir=folder)
