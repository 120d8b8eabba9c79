"""Every entry point a user reaches (the command line, notebook parameters, the library functions a notebook
calls) given bad values: each must fail with a message that says what is wrong, not a stray TypeError or
IndexError from deep inside, and must not lose or damage anything."""
import json
import os

import pytest
import torch

from fastdiff.cli import main
from fastdiff.data import downsample, load_dataset
from fastdiff.diffusion import make_schedule, respace, space_timesteps
from fastdiff.measure import metrics
from fastdiff.measure.bench import interleaved, measure
from fastdiff.methods.layer_skipping import LayerSkippingUNet, k_of_t
from fastdiff.methods.vgg_features import VGGFeatureFusion, resolve_vgg_weights
from fastdiff.results import Results
from fastdiff.sampling import get_sampler, sample_ddim, sample_ddpm
from fastdiff.studies import adaptive_layer_skipping, diffusion_basics, fool_rate_game, vgg_conditioned_sr
from fastdiff.studies.common import setup
from fastdiff.train import TrainConfig, train
from fastdiff.unet import build_unet

CPU = torch.device("cpu")


def cli(capsys, *args):
    """(exit code, everything printed) of ``fastdiff <args>``; argparse's errors exit through SystemExit."""
    try:
        code = main(list(args))
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("args,message", [
    (["reproduce", "--only", ""], "names no notebook; give numbers or names, e.g. --only 00,02"),
    (["reproduce", "--only", ",,"], "names no notebook"),
    (["reproduce", "--only", "99"], "matches no notebook; available:"),
    (["reproduce", "--profile", "huge"], "invalid choice: 'huge'"),
    (["reproduce", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["weights", "--only", ""], "unknown pretrained file ''; known:"),
    (["weights", "--only", "resnet"], "unknown pretrained file 'resnet'"),
    (["train", "nosuch/model"], "no recipe 'nosuch/model'; known:"),
    (["train", "basics/quick-ddpm", "--steps", "0"], "--steps must be a positive integer, got 0"),
    (["train", "basics/quick-ddpm", "--steps", "two"], "invalid int value: 'two'"),
    (["nonsense"], "invalid choice: 'nonsense'"),
])
def test_the_command_line_says_what_is_wrong_in_one_line_with_exit_code_2(capsys, args, message):
    code, out = cli(capsys, *args)
    assert code == 2, out
    assert message in out
    assert len(out.strip().splitlines()) == 1, out                         # one line, not a traceback


def test_reproduce_refuses_an_output_path_it_cannot_use_before_running_anything(capsys, tmp_path):
    existing = tmp_path / "file.txt"
    existing.write_text("keep me")
    code, out = cli(capsys, "reproduce", "--out", str(existing))
    assert code == 2 and "is an existing file, not a folder" in out and existing.read_text() == "keep me"
    code, out = cli(capsys, "reproduce", "--out", "/proc/fastdiff-run")
    assert code == 2 and "cannot be written" in out and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("study,kw,message", [
    (diffusion_basics, dict(train_steps="abc"), "train_steps must be an integer >= 1, got 'abc'"),
    (diffusion_basics, dict(train_steps=2.5), "train_steps must be an integer >= 1, got 2.5"),
    (diffusion_basics, dict(train_steps=0), "train_steps must be an integer >= 1, got 0"),
    (diffusion_basics, dict(n_samples=0), "n_samples must be an integer >= 1, got 0"),
    (diffusion_basics, dict(fd_n="many"), "fd_n must be an integer >= 1, got 'many'"),
    (diffusion_basics, dict(ddim_steps="ten"), "ddim_steps must be integers, e.g. [100, 50]"),
    (diffusion_basics, dict(ddim_steps=[50, 0]), "ddim_steps must be integers in 1..1000"),
    (diffusion_basics, dict(fd_steps=5000), "fd_steps must be integers in 1..1000"),
    (diffusion_basics, dict(train_amp="none"), "train_amp='none'; choose one of ('fp32', 'bf16', 'fp16')"),
    (adaptive_layer_skipping, dict(quality_n=-3), "quality_n must be an integer >= 1, got -3"),
    (adaptive_layer_skipping, dict(train_steps="1e3"), "train_steps must be an integer >= 1, got '1e3'"),
    (vgg_conditioned_sr, dict(train_steps=[1]), "train_steps must be an integer >= 1, got [1]"),
    (vgg_conditioned_sr, dict(train_lr=-1.0), "train_lr must be a number > 0, got -1.0"),
    (vgg_conditioned_sr, dict(colour="red"), "unknown profile settings ['colour']"),
])
def test_notebook_parameters_are_checked_with_the_parameter_named(study, kw, message):
    with pytest.raises(ValueError) as e:
        study.get_profile("quick", **kw)
    assert message in str(e.value)
    with pytest.raises(ValueError, match="unknown profile 'medium'; choose one of"):
        study.get_profile("medium")


@pytest.mark.parametrize("kw,message", [
    (dict(seed=-1), "seed must be a non-negative integer, got -1"),
    (dict(seed="0"), "seed must be a non-negative integer, got '0'"),
    (dict(device="tpu"), "unknown device 'tpu'; use 'auto', 'cpu' or 'cuda'"),
    (dict(dtype="fp8"), "unknown dtype 'fp8'; use 'auto' or one of"),
])
def test_the_notebook_setup_cell_checks_its_parameters(tmp_path, kw, message):
    with pytest.raises(ValueError) as e:
        setup("00_test", **{"profile": "quick", "output_dir": tmp_path, **kw}, quiet=True)
    assert message in str(e.value)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="output_dir .* cannot be created"):
        setup("00_test", profile="quick", output_dir=tmp_path / "afile" / "out", quiet=True)


def test_papermill_parameter_errors_name_the_parameter(tmp_path):
    """The real path: papermill -p train_steps abc on notebook 00 stops in its setup cell with the message."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    from pathlib import Path
    nb = Path(__file__).resolve().parents[1] / "notebooks" / "00_diffusion_basics.ipynb"
    with pytest.raises(PapermillExecutionError) as e:
        pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters={"train_steps": "abc",
                            "output_dir": str(tmp_path)}, cwd=str(nb.parent), progress_bar=False, log_output=False)
    assert "train_steps must be an integer >= 1, got 'abc'" in str(e.value)


@pytest.mark.parametrize("call,message", [
    (lambda: make_schedule("quadratic"), "unknown schedule 'quadratic'; choose one of"),
    (lambda: make_schedule("linear", 1), "num_timesteps must be an integer >= 2, got 1"),
    (lambda: make_schedule("linear", 10.5), "num_timesteps must be an integer >= 2, got 10.5"),
    (lambda: space_timesteps(1000, "ddim0"), "'ddimN' needs a positive integer N"),
    (lambda: space_timesteps(1000, "ddimfifty"), "'ddimN' needs a positive integer N"),
    (lambda: space_timesteps(1000, 1001), "cannot keep 1001 of 1000 steps"),
    (lambda: space_timesteps(1000, 0), "cannot keep 0 of 1000 steps"),
    (lambda: space_timesteps(1000, 2.5), "bad timestep spec 2.5"),
    (lambda: space_timesteps(1000, "10,x"), "bad timestep spec '10,x'"),
    (lambda: respace(make_schedule("linear"), [5000]), "timesteps [5000] are not in the schedule"),
    (lambda: respace(make_schedule("linear"), []), "respace needs at least one timestep"),
    (lambda: get_sampler("euler"), "unknown sampler 'euler'; choose one of"),
    (lambda: sample_ddim(lambda x, t: x, torch.randn(1, 1, 4, 4), make_schedule("linear", 10), eta=2.0,
                         progress=False), "eta must be a number in [0, 1]"),
    (lambda: sample_ddim(lambda x, t: x, torch.randn(1, 1, 4, 4), make_schedule("linear", 10), eta="1",
                         progress=False), "eta must be a number in [0, 1]"),
    (lambda: sample_ddpm(lambda x, t: x, [[0.0]], make_schedule("linear", 10), progress=False),
     "x (the starting noise x_T) must be a float tensor"),
    (lambda: sample_ddpm(lambda x, t: x, torch.randn(1, 1, 4, 4), "linear", progress=False),
     "schedule must be a fastdiff.diffusion.Schedule"),
    (lambda: sample_ddim(lambda x, t: torch.full_like(x, float("nan")), torch.randn(1, 1, 4, 4),
                         make_schedule("linear", 10), progress=False),
     "the model returned NaN or inf at timestep t=9 (step 1 of 10)"),
])
def test_schedules_and_samplers_refuse_what_makes_no_sense(call, message):
    with pytest.raises((ValueError, FloatingPointError)) as e:
        call()
    assert message in str(e.value)


@pytest.mark.parametrize("call,message", [
    (lambda: build_unet("tiny", base_channels=0), "base_channels must be a positive integer, got 0"),
    (lambda: build_unet("tiny", num_res_blocks=0), "num_res_blocks must be a positive integer"),
    (lambda: build_unet("tiny", dropout=1.5), "dropout must be in [0, 1)"),
    (lambda: build_unet("tiny", image_size=7), "image_size 7 is not divisible by 2^1"),
    (lambda: build_unet("tiny", channel_mult=(1, 0)), "channel_mult must hold positive integers"),
    (lambda: build_unet("tiny")(torch.randn(1, 1, 8, 8), torch.tensor(3)), "t must be a tensor of shape (1,)"),
    (lambda: build_unet("tiny")(torch.randn(1, 3, 8, 8), torch.tensor([3])), "U-Net expects (batch, 1, H, W)"),
    (lambda: LayerSkippingUNet(build_unet("tiny"))(torch.randn(1, 1, 8, 8), torch.tensor([1]), k=2),
     "k must be in 0..1"),
    (lambda: LayerSkippingUNet(build_unet("tiny"))(torch.randn(1, 1, 8, 8), torch.tensor([1]), k="1"),
     "k must be an integer number of levels"),
    (lambda: LayerSkippingUNet(build_unet("tiny"), skip_type="skip"), "unknown skip_type 'skip'"),
    (lambda: k_of_t(0.5, 4, -1), "c must be a finite number >= 0"),
    (lambda: VGGFeatureFusion(build_unet("tiny", cond_channels=1), fusion="mul", vgg_weights="random",
                              lr_channels=1), "unknown fusion 'mul'"),
    (lambda: VGGFeatureFusion(build_unet("tiny", cond_channels=1), vgg_weights="random", lr_channels=1)(
        torch.randn(1, 1, 8, 8), torch.tensor([1]), lr=torch.randn(1, 1, 3, 3)), "LR size (3, 3) does not divide"),
    (lambda: resolve_vgg_weights("imagenet", if_missing="ignore"), "if_missing must be 'error' or 'random'"),
])
def test_models_refuse_bad_configs_and_inputs(call, message):
    with pytest.raises(ValueError) as e:
        call()
    assert message in str(e.value)


@pytest.mark.parametrize("call,message", [
    (lambda: load_dataset("imagenet", image_size=32), "unknown dataset 'imagenet'; choose one of"),
    (lambda: load_dataset("mnist-builtin", image_size=0), "image_size must be a positive integer, got 0"),
    (lambda: load_dataset("mnist-builtin", image_size=32, split="test"), "split must be 'train' or 'val'"),
    (lambda: load_dataset("folder:/nonexistent/faces", image_size=32), "image folder /nonexistent/faces does not exist"),
    (lambda: downsample(torch.zeros(1, 3, 8, 8), 0), "the SR scale must be a positive integer, got 0"),
    (lambda: downsample(torch.zeros(1, 3, 8, 8), 3), "image size 8x8 is not divisible by the SR scale 3"),
    (lambda: train(build_unet("tiny"), torch.zeros(0, 1, 8, 8), make_schedule("linear", 10), TrainConfig(steps=1)),
     "the training data is empty"),
    (lambda: train(build_unet("tiny"), torch.zeros(4, 1, 8, 8), make_schedule("linear", 10), TrainConfig(steps=1),
                   on_change="maybe"), "on_change must be 'error' or 'continue'"),
    (lambda: metrics.psnr(torch.full((1, 1, 8, 8), 255.0), torch.zeros(1, 1, 8, 8)), "must be in [-1, 1]"),
    (lambda: measure(lambda: None, device=CPU, repeats=0), "need repeats >= 1"),
    (lambda: interleaved({"a": lambda: None}, device=CPU, rounds=0), "need rounds >= 1"),
    (lambda: Results("x", device="", dtype="", dataset="", weights="").add("m", "v", "FID", 1.0),
     "unknown metric 'FID'"),
])
def test_data_training_and_measurement_refuse_bad_values(call, message):
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        call()
    assert message in str(e.value)


def test_the_fool_rate_game_checks_its_notebook_parameters(tmp_path):
    from fastdiff.measure.foolrate import open_session
    from fastdiff.measure.game_images import GameDataError, game_sources
    sources, _ = game_sources(demo_root=tmp_path / "demo", demo_images=4)
    answers = tmp_path / "a.jsonl"
    for kw, message in ((dict(player=""), "player must be a non-empty name"),
                        (dict(trials_per_model=0), "trials_per_model must be an integer >= 1, got 0"),
                        (dict(trials_per_model="5"), "trials_per_model must be an integer >= 1, got '5'"),
                        (dict(show_s=-1), "show_seconds must be a finite number > 0, got -1"),
                        (dict(show_s="abc"), "show_seconds must be a finite number > 0, got 'abc'"),
                        (dict(session=""), "session must be the id of an earlier session or None")):
        with pytest.raises(ValueError) as e:
            open_session(sources, answers, **{"player": "p", "trials_per_model": 2, **kw})
        assert message in str(e.value)
    with pytest.raises(GameDataError, match="need 20 distinct images but the folders hold 4"):
        open_session(sources, answers, player="p", trials_per_model=10)
    with pytest.raises(GameDataError, match="does not exist"):
        game_sources(game_dir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="unknown profile"):
        fool_rate_game.get_profile("long")
    assert not answers.exists() or answers.read_text() == ""              # nothing was written by the failures


def test_zoo_names_that_do_not_exist_say_how_to_get_them(tmp_path):
    from fastdiff import zoo
    with pytest.raises(zoo.ZooError, match="no zoo entry 'basics/none'.*fastdiff train basics/none"):
        zoo.load("basics/none", zoo_dir=tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(zoo.ZooError, match="is not valid JSON"):
        zoo.entries(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(zoo.ZooError, match="is not a fastdiff zoo index"):
        zoo.entries(tmp_path)
    assert os.path.exists(tmp_path / "index.json")
