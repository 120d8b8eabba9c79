"""Every entry point a user reaches (the command line, notebook parameters, the library functions a notebook
calls) given bad values: each must fail with a message that says what is wrong, not a stray TypeError or
IndexError from deep inside, and must not lose or damage anything."""
import json
import os
import re

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
from fastdiff.studies import (adaptive_layer_skipping, diffusion_basics, fool_rate_game, patch_parallel_sr,
                              vgg_conditioned_sr)
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


# ------------------------------------------------------------------- flags and counts from papermill (-p, -y, -r)

@pytest.mark.parametrize("value,parsed", [(True, True), (False, False), ("true", True), ("True", True),
                                          ("false", False), ("False", False)])
def test_flags_given_as_text_are_parsed_strictly(value, parsed):
    from fastdiff.checks import check_bool
    assert check_bool("resume", value) is parsed


@pytest.mark.parametrize("value", ["no", "0", "", " false", 0, 1, None, [False]])
def test_other_flag_values_are_refused_with_the_parameter_named(value):
    from fastdiff.checks import check_bool
    with pytest.raises(ValueError, match=rf"^resume must be True or False, got {re.escape(repr(value))}"):
        check_bool("resume", value)
    if isinstance(value, str):
        with pytest.raises(ValueError, match=r"papermill's -p passes text such as `false` as a string: use -p resume "
                                             r"False or -y 'resume: false'"):
            check_bool("resume", value)


def _fake_training(seen):
    def train_one(label, path, resume):
        seen.append({"checkpoint kept": path.exists(), "resume": resume})
        return {"ema": torch.nn.Identity(), "resumed_from": None, "step": 1,
                "history": [{"seconds": 60.0, "loss": 0.5}]}
    return train_one


def test_resume_false_as_text_trains_afresh_and_bad_text_stops_before_anything_is_deleted(tmp_path):
    """papermill -p resume false hands over the text "false", which is truthy: the old checkpoint was reused."""
    from fastdiff.recipes import zoo_or_train_each
    run = setup("03_test", profile="quick", output_dir=tmp_path, quiet=True)
    old = tmp_path / "03_m.pt"
    for resume, kept in (("false", False), ("true", True)):
        old.write_text("an earlier run's checkpoint")
        seen = []
        zoo_or_train_each({"m": "cunet/unet"}, weights="train", run=run, prefix="03", train_one=_fake_training(seen),
                          resume=resume)
        assert seen == [{"checkpoint kept": kept, "resume": kept}]
    with pytest.raises(ValueError, match="resume must be True or False, got 'no'; papermill's -p"):
        zoo_or_train_each({"m": "cunet/unet"}, weights="train", run=run, prefix="03", train_one=_fake_training([]),
                          resume="no")
    assert old.exists()


@pytest.mark.parametrize("entry", [
    lambda: diffusion_basics.get_model(diffusion_basics.get_profile("smoke"), weights="train", data=None,
                                       schedule=None, run=None, resume="yes"),
    lambda: adaptive_layer_skipping.get_models(adaptive_layer_skipping.get_profile("smoke"), weights="train",
                                               data=None, schedule=None, run=None, resume="yes"),
    lambda: vgg_conditioned_sr.get_models(vgg_conditioned_sr.get_profile("smoke"), weights="train", run=None,
                                          vgg_weights="random", train_hr=None, val_hr=None, val_labels=None,
                                          schedule=None, resume="yes"),
    lambda: patch_parallel_sr.get_models(patch_parallel_sr.get_profile("smoke"), weights="train", run=None, resume="yes"),
    lambda: train(build_unet("tiny"), torch.zeros(4, 1, 8, 8), make_schedule("linear", 10), TrainConfig(steps=1),
                  resume="yes"),
], ids=["00", "01", "02", "04", "train"])
def test_every_notebook_entry_point_that_takes_resume_checks_it_first(entry):
    with pytest.raises(ValueError, match="resume must be True or False, got 'yes'; papermill's -p passes text"):
        entry()


def test_notebook_05_compile_flag_accepts_papermills_text_and_refuses_the_rest():
    from fastdiff.studies import performance
    assert performance.get_profile("quick", compile="false").compile is False
    assert performance.get_profile("quick", compile=None).compile == performance.get_profile("quick").compile
    with pytest.raises(ValueError, match="compile must be True or False, got 'off'; papermill's -p"):
        performance.get_profile("quick", compile="off")
    with pytest.raises(ValueError, match=r"quality_n must be an integer >= 1, got 0"):
        performance.ladder(None, None, batch_size=2, device="cpu", quality_n=0)    # not silently one timing batch


@pytest.mark.parametrize("kw,message", [
    (dict(fd_n="200"), "fd_n must be an integer >= 1, got '200'"),
    (dict(fd_n=-5), "fd_n must be an integer >= 1, got -5"),
    (dict(n_samples=True), "n_samples must be an integer >= 1, got True"),
    (dict(train_steps=-1), "train_steps must be an integer >= 1, got -1"),
])
def test_counts_that_are_text_zero_or_negative_are_errors_not_the_profiles_value(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        diffusion_basics.get_profile("quick", **kw)


@pytest.mark.parametrize("kw,message", [
    (dict(device=None), "unknown device None; use 'auto', 'cpu' or 'cuda'"),
    (dict(output_dir=""), "output_dir must be a folder path (e.g. '../runs/interactive'), got ''"),
    (dict(output_dir=None), "output_dir must be a folder path"),
])
def test_the_setup_cell_refuses_a_missing_device_or_output_folder(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        setup("00_test", **{"profile": "quick", **kw}, quiet=True)


# ------------------------------------------------------------------------- images of another dtype or range

SR_TINY = dict(cond_channels=1)


@pytest.mark.parametrize("call,message", [
    (lambda: build_unet("tiny")(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), torch.tensor([3])),
     "x is uint8; the models take float images in [-1, 1]: convert with fastdiff.data.to_model_range"),
    (lambda: build_unet("tiny")(torch.zeros(1, 1, 8, 8, dtype=torch.float64), torch.tensor([3])),
     "x is float64 but the model's weights are float32: pass x.to(torch.float32)"),
    (lambda: build_unet("tiny")(torch.zeros(1, 1, 8, 8, dtype=torch.float16), torch.tensor([3])),
     "x is float16 but the model's weights are float32: pass x.to(torch.float32) (for bf16/fp16 compute keep "
     "float32 inputs under autocast"),
    (lambda: build_unet("tiny", **SR_TINY)(torch.zeros(1, 1, 8, 8), torch.tensor([3]),
                                           lr=torch.zeros(1, 1, 4, 4, dtype=torch.uint8)),
     "lr is uint8; the models take float images in [-1, 1]"),
    (lambda: sample_ddim(build_unet("tiny"), torch.randn(1, 1, 8, 8, dtype=torch.float64),
                         make_schedule("linear", 10), progress=False),
     "x is float64 but the model's weights are float32"),
    (lambda: sample_ddpm(build_unet("tiny"), torch.zeros(1, 1, 8, 8, dtype=torch.uint8),
                         make_schedule("linear", 10), progress=False),
     "x (the starting noise x_T) must be a float tensor (batch, ...), got uint8 (1, 1, 8, 8)"),
    (lambda: train(build_unet("tiny"), torch.full((4, 1, 8, 8), 200, dtype=torch.uint8), make_schedule("linear", 10),
                   TrainConfig(steps=1, batch_size=2)), "data is uint8; the models take float images in [-1, 1]"),
    (lambda: train(build_unet("tiny"), torch.rand(4, 1, 8, 8) * 255, make_schedule("linear", 10),
                   TrainConfig(steps=1, batch_size=2)),
     "data must be in [-1, 1] (the models' range), got values in [0."),
    (lambda: train(build_unet("tiny"), torch.rand(4, 1, 8, 8) * 255, make_schedule("linear", 10),
                   TrainConfig(steps=1, batch_size=2)),
     "[0, 255] pixels: convert them with fastdiff.data.to_model_range"),
    (lambda: train(build_unet("tiny"), torch.zeros(4, 1, 8, 8, dtype=torch.float64), make_schedule("linear", 10),
                   TrainConfig(steps=1, batch_size=2)), "data is float64 but the model's weights are float32"),
])
def test_images_of_another_dtype_or_range_stop_at_the_entry_point_with_what_to_do(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_the_uint8_advice_works_and_autocast_and_bf16_models_still_run(tmp_path):
    from fastdiff.data import to_model_range
    from fastdiff.devices import autocast
    pixels = torch.full((4, 1, 8, 8), 255, dtype=torch.uint8)
    assert torch.equal(to_model_range(pixels), torch.ones(4, 1, 8, 8))
    r = train(build_unet("tiny"), to_model_range(pixels), make_schedule("linear", 10),
              TrainConfig(steps=1, batch_size=2), progress=False, checkpoint=tmp_path / "c.pt")
    assert r["step"] == 1
    model, t = build_unet("tiny"), torch.tensor([3])
    with autocast(CPU, torch.bfloat16):
        assert model(torch.randn(1, 1, 8, 8, dtype=torch.float16), t).dtype == torch.bfloat16
    assert model.to(torch.bfloat16)(torch.randn(1, 1, 8, 8, dtype=torch.bfloat16), t).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="x is float64"):                 # autocast does not cast float64
        with autocast(CPU, torch.bfloat16):
            model.float()(torch.randn(1, 1, 8, 8, dtype=torch.float64), t)


# ------------------------------------------------------------------------------------- timestep positions

@pytest.mark.parametrize("i,message", [
    (torch.tensor([10]), "timestep positions must be in 0..9 (the schedule has 10 steps; -1 is not the last one), "
                         "got values in 10..10"),
    (torch.tensor([0, -1]), "timestep positions must be in 0..9 (the schedule has 10 steps; -1 is not the last one), "
                            "got values in -1..0"),
    (torch.tensor([1.0]), "i must be an integer tensor of positions in the schedule (0..9), got a float32 tensor"),
    (3, "i must be an integer tensor of positions in the schedule (0..9), got 3"),
])
def test_timestep_positions_outside_the_schedule_are_refused_not_wrapped(i, message):
    from fastdiff.diffusion import noise_loss, q_sample
    schedule, x0 = make_schedule("linear", 10), torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match=re.escape(message)):
        q_sample(schedule, x0, i, torch.zeros_like(x0))
    with pytest.raises(ValueError, match=re.escape(message)):
        noise_loss(build_unet("tiny"), x0, schedule, i=i)
    last = q_sample(schedule, x0 + 1, torch.tensor([9]), torch.zeros_like(x0))
    assert torch.allclose(last, schedule.alpha_bar[9].sqrt().float().expand_as(x0))


# ------------------------------------------------------------------------------- image folders: scan at open

def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR header (CRC fixed up) claims width x height pixels."""
    import io
    import struct
    import zlib
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    png[16:24] = struct.pack(">II", width, height)                      # IHDR data starts at 16
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))        # CRC over "IHDR" + its 13 bytes
    return bytes(png)


def _photo_folder(tmp_path):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / f"good{i}.jpg", quality=90)
    whole = (tmp_path / "good0.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])         # a JPEG cut in half: verify() passes it
    (tmp_path / "bomb.png").write_bytes(_png_claiming(30000, 30000))
    return tmp_path


def test_an_image_folder_catches_truncated_jpegs_and_decompression_bombs_when_opened(tmp_path):
    from fastdiff.data import DatasetUnavailableError, ImageFolder
    folder = _photo_folder(tmp_path)
    with pytest.raises(DatasetUnavailableError) as e:
        ImageFolder(folder, 16)
    message = str(e.value)
    assert message.startswith(f"2 of 5 images in {folder} cannot be read: ")
    assert "bomb.png (900,000,000 pixels, over the limit of 89,478,485 pixels (a decompression bomb" in message
    assert "cut.jpg (truncated or corrupt: image file is truncated" in message
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable of 5 images: bomb.png .*; cut.jpg"):
        ds = ImageFolder(folder, 16, on_bad="skip")
    assert sorted(p.name for p in ds.skipped) == ["bomb.png", "cut.jpg"]
    assert torch.stack([ds[i] for i in range(len(ds))]).shape == (3, 3, 16, 16)   # what is left trains


def test_the_pixel_limit_is_a_parameter_and_names_the_size(tmp_path):
    from PIL import Image
    from fastdiff.data import DatasetUnavailableError, ImageFolder
    Image.new("RGB", (64, 50)).save(tmp_path / "big.png")
    Image.new("RGB", (20, 20)).save(tmp_path / "small.png")
    with pytest.raises(DatasetUnavailableError, match=r"1 of 2 images .* big.png \(64x50, over the limit of 1,000 "
                                                      r"pixels .*shrink it, or raise max_pixels\)"):
        load_dataset(f"folder:{tmp_path}", image_size=16, max_pixels=1000)
    assert len(ImageFolder(tmp_path, 16, max_pixels=64 * 50)) == 2
    with pytest.raises(ValueError, match="max_pixels must be an integer >= 1, got 0"):
        ImageFolder(tmp_path, 16, max_pixels=0)


# --------------------------------------------------------------------------- python -m fastdiff.swin_torchrun (torchrun)

@pytest.mark.parametrize("args,message", [
    (["bench", "--repeats", "0"], "--repeats must be an integer >= 1, got 0"),
    (["bench", "--size", "40"], "--size must be a multiple of 32, got 40"),
    (["sample", "--steps", "5000"], "--steps must be an integer in 1..1000, got 5000"),
    (["sample", "--steps", "0"], "--steps must be an integer in 1..1000, got 0"),
    (["sample", "--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    (["sample", "--timeout", "0"], "--timeout must be a finite number > 0, got 0.0"),
    (["sample", "--out", "/nonexistent/fastdiff/sr.png"], "the folder /nonexistent/fastdiff does not exist"),
    (["sample", "--out", "sr.webpp"], "PIL cannot write .webpp; end it in .png or .jpg"),
    (["sample", "--lr", "/nonexistent/lr.png"], "--lr /nonexistent/lr.png is not a file"),
    (["sample", "--model", "swin/none"], "no zoo entry 'swin/none'"),
    (["sample", "--model", "/nonexistent/m.pt"], "--model /nonexistent/m.pt is not a file"),
    (["sample", "--photo", "lena"], "invalid choice: 'lena'"),
    (["bench", "--device", "tpu"], "invalid choice: 'tpu'"),
])
def test_the_swin_cli_checks_its_arguments_before_any_process_starts(capsys, monkeypatch, args, message):
    from fastdiff import distributed, swin_torchrun

    def init(*a, **kw):
        raise AssertionError("a process group was started")
    monkeypatch.setattr(distributed, "init", init)
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit) as stop:
        swin_torchrun.main(args)
    out = capsys.readouterr()
    assert stop.value.code == 2 and message in out.err
    assert len(out.err.strip().splitlines()) == 1, out.err                # one line, not a traceback per rank
    monkeypatch.setenv("RANK", "1")                                       # under torchrun: rank 0 alone says it
    with pytest.raises(SystemExit) as stop:
        swin_torchrun.main(args)
    assert stop.value.code == 2 and capsys.readouterr().err == ""


def test_the_swin_launchers_check_their_arguments_before_torchrun(monkeypatch):
    import subprocess
    from fastdiff import swin_torchrun

    def run(*a, **kw):
        raise AssertionError("torchrun was started")
    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(ValueError, match="--repeats must be an integer >= 1, got 0"):
        swin_torchrun.launch(2, ["bench", "--repeats", "0"])
    with pytest.raises(ValueError, match="nproc must be an integer >= 1, got 0"):
        swin_torchrun.launch(0, ["bench"])
    for kw, message in ((dict(repeats=0), "repeats must be an integer >= 1, got 0"),
                        (dict(steps=5000), "steps must be an integer in 1..1000, got 5000"),
                        (dict(sizes=(48,)), "sizes must be multiples of 32 (32x32 patches), got 48"),
                        (dict(processes=(1, 0)), "processes must be an integer >= 1, got 0")):
        with pytest.raises(ValueError, match=re.escape(message)):
            swin_torchrun.benchmark(device="cpu", **kw)
