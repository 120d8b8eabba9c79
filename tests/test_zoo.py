"""The zoo: an exported entry loads back bit for bit (in half precision) with its provenance, a changed file is
refused, `fastdiff train NAME` trains from a recipe, resumes exactly after the process is killed, and exports;
`fastdiff zoo` lists every entry. Also: the shipped entries load and match their index."""
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fastdiff import zoo
from fastdiff.checkpoint import load_checkpoint
from fastdiff.cli import main
from fastdiff.data import load_dataset
from fastdiff.studies import common
from fastdiff.train import TrainConfig
from fastdiff.unet import build_unet

ROOT = Path(__file__).resolve().parents[1]


def tiny_recipe(steps=6):
    return common.Recipe(name="test/tiny", description="a tiny U-Net for the tests",
                         build=common.seeded(lambda: build_unet("tiny")),
                         data=lambda: torch.nn.functional.interpolate(load_dataset("mnist-builtin", image_size=32)[:64],
                                                                      size=8, mode="area"),
                         data_label="64 digits at 8x8", schedule="linear",
                         train=TrainConfig(steps=steps, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=1))


@pytest.fixture
def recipes(monkeypatch):
    monkeypatch.setattr(common, "recipes", lambda: {"test/tiny": tiny_recipe()})


def test_train_exports_an_entry_that_loads_with_its_provenance(recipes, tmp_path, capsys):
    out = common.train_recipe("test/tiny", device="cpu", checkpoint_dir=tmp_path / "ckpt", zoo_dir=tmp_path / "zoo",
                              progress=False)
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
    from fastdiff.studies import common
    common.recipes = lambda: {{"test/tiny": tiny_recipe(steps=400)}}
    common.train_recipe("test/tiny", device="cpu", checkpoint_dir={ckpt!r}, zoo_dir={zoo!r}, progress=False)
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
    monkeypatch.setattr(common, "recipes", lambda: {"test/tiny": tiny_recipe(steps=400)})
    resumed = common.train_recipe("test/tiny", device="cpu", checkpoint_dir=tmp_path / "ckpt",
                                  zoo_dir=tmp_path / "zoo", progress=False)
    straight = common.train_recipe("test/tiny", device="cpu", checkpoint_dir=tmp_path / "straight",
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
    assert total < 45 * 2**20, f"the zoo holds {total / 2**20:.1f} MB"


def test_the_zoo_holds_every_model_the_quick_notebooks_load():
    """What the notebooks' quick profiles load with weights="zoo" is in the shipped index (else nbval, and every
    reader, meets a ZooError instead of a trained model)."""
    from fastdiff.studies import adaptive_layer_skipping, continuous_unet, diffusion_basics, swindiffuser
    from fastdiff.studies import vgg_conditioned_sr as vggsr
    needed = {diffusion_basics.ZOO_MODEL, *adaptive_layer_skipping.ZOO_MODELS.values(),
              *(vggsr.ZOO_MODELS[v] for v in vggsr.get_profile("quick").variants),
              *(continuous_unet.ZOO_MODELS[m] for m in continuous_unet.get_profile("quick").models),
              *(swindiffuser.ZOO_MODELS[m] for m in swindiffuser.get_profile("quick").models)}
    missing = sorted(needed - set(zoo.entries()))
    assert not missing, f"not in the zoo: {missing} (train them with `fastdiff train NAME`)"
