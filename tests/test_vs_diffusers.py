"""fastdiff against diffusers' best pipeline (issue 29, part 3), offline on a tiny random U-Net exported to diffusers:
every diffusers candidate samples images of the right shape in [-1, 1]; diffusers' DDIM in the loop equals fastdiff's
DDIM from the same x_T; the loop equals DDPMPipeline's own call where that call works (and the call fails where the
module says); the best is the fastest candidate within the reference's interval, and none is named when none
qualifies; FDs of another machine are refused; one interleaved timing gives the ratio fields."""
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from diffusers.utils.torch_utils import randn_tensor  # noqa: E402

from fastdiff.devices import device_name  # noqa: E402
from fastdiff.diffusion import make_schedule, respace, space_timesteps  # noqa: E402
from fastdiff.measure.fd_sweep import estimate_dict  # noqa: E402
from fastdiff.measure.intervals import Estimate  # noqa: E402
from fastdiff.sampling import sample_ddim  # noqa: E402
from fastdiff.studies import vs_diffusers as V  # noqa: E402
from fastdiff.unet import build_unet  # noqa: E402

HERE = device_name(torch.device("cpu"))


def tiny_unet(seed=0):
    g = torch.Generator().manual_seed(seed)
    unet = build_unet("tiny")
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return unet.eval()


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return V.load_pipeline(tiny_unet(), tmp_path_factory.mktemp("vs") / "pipeline")


def x_T(n=3, size=8, seed=1):
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def test_every_candidate_samples_images_in_range():
    settings = V.fd_settings("cpu", model=tiny_unet(), steps=(2,), batch=2)
    assert [s.key for s in settings] == [f"{name}2" for name in V.SCHEDULERS]
    for s in settings:
        images = s.sample(x_T(3))             # two batches: 2 + 1
        assert images.shape == (3, 1, 8, 8), s.key
        assert images.min() >= -1 and images.max() <= 1 and images.std() > 0, s.key
        assert s.sha256 is None and s.sampling["steps"] == 2 and s.sampling["dtype"] == "fp32"


def test_diffusers_ddim_in_the_loop_is_fastdiffs_ddim(pipe):
    """With use_clipped_model_output both re-derive eps from the clipped x_0 (the pipeline's default keeps the raw
    eps: the two then differ where x_0 was clipped). 4 steps: leading spacing visits 750, 500, 250, 0."""
    x = x_T()
    ours = V.denoise(pipe.unet, V.make_scheduler(pipe, "ddim"), x, 4, step_options={"use_clipped_model_output": True})
    theirs = sample_ddim(tiny_unet(), x, respace(make_schedule("linear"), space_timesteps(1000, "ddim4")),
                         progress=False).clamp(-1, 1)
    assert (ours - theirs).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", V.SCHEDULERS)
def test_the_loop_is_the_pipeline_call_where_that_call_works(pipe, name):
    call = diffusers.DDPMPipeline(unet=pipe.unet, scheduler=V.make_scheduler(pipe, name))
    call.set_progress_bar_config(disable=True)
    run = lambda: call(batch_size=2, num_inference_steps=3, generator=torch.Generator().manual_seed(5),  # noqa: E731
                       output_type="pt").images * 2 - 1
    loop = V.denoise(pipe.unet, V.make_scheduler(pipe, name),
                     randn_tensor((2, 1, 8, 8), generator=torch.Generator().manual_seed(5)), 3)
    if name in V.PIPELINE_CALL:
        assert (run() - loop).abs().max().item() < 1e-6
    elif name.startswith(("unipc", "deis")):
        with pytest.raises(TypeError, match="generator"):
            run()
    else:                                     # Euler: the call runs, on noise it never scaled
        assert (run() - loop).abs().max().item() > 1e-3


def row(label, fd, ms=None, nfe=10, **kw):
    return {"label": label, V.METRIC: fd, V.TIME: ms, "NFE": nfe, "steps": nfe, **kw}


def test_the_best_is_the_fastest_within_the_interval_and_none_is_said():
    rows = [row("a", 1.0, 5.0, nfe=20), row("b", 2.0, 3.0, nfe=10), row("c", 9.0, 1.0, nfe=5),
            row("d", 2.2, None, nfe=10)]
    best, why = V.fastest_within(rows, 2.3)
    assert best["label"] == "b" and "2 with FD <= 2.3" in why
    short, why = V.shortlist(rows, 2.3)
    assert [r["label"] for r in short] == ["b", "d"] and "10 U-Net calls" in why
    assert V.fastest_within(rows, 0.5)[0] is None
    short, why = V.shortlist(rows, 0.5)
    assert short == [] and "no diffusers candidate" in why and "a at 1" in why


def fd_file(device=HERE, sha="abc", candidates=(("ddim2", 1.5), ("dpmpp2m2", 1.2), ("unipc3", 1.0))):
    est = lambda v, hi=None: estimate_dict(Estimate(v, v * 0.5, hi or v * 1.5, 100, "test"))  # noqa: E731
    ref = {"label": "DDPM 1000", "sha256": sha, "fd": est(1.3, 2.3)}
    ours = {k: {"label": k, "sha256": sha, "fd": est(v),
                "sampling": {"scheduler key": k.rstrip("0123456789").removesuffix("2m") + ("2m" * ("dpmpp" in k)),
                             "steps": int(k[-1]), "dtype": "fp32"}} for k, v in candidates}
    return {"studies": {"07_report": {"device": device, "settings": {"ddpm1000": ref}},
                        V.STUDY: {"device": HERE, "settings": ours}}}


def test_a_reference_of_another_machine_or_other_weights_is_refused():
    ref, section = V.reference(fd_file(), "cpu")
    assert ref["fd"].high == pytest.approx(2.3) and len(section["settings"]) == 3
    with pytest.raises(ValueError, match="one machine per verdict"):
        V.reference(fd_file(device="CPU: Some Other CPU, AVX2 (1 thread)"), "cpu")
    other = fd_file()
    other["studies"][V.STUDY]["settings"]["ddim2"]["sha256"] = "def"
    with pytest.raises(ValueError, match="other weights"):
        V.reference(other, "cpu")
    with pytest.raises(ValueError, match="--study vs"):
        V.reference({"studies": {"07_report": fd_file()["studies"]["07_report"]}}, "cpu")


def map_part(device=HERE):
    est = lambda v, hi: estimate_dict(Estimate(v, v / 2, hi, 100, "test"))  # noqa: E731
    return {"device": device, "reference": "DDPM 1000", "rows": [
        row("DDPM 1000", 1.3, 500.0, nfe=1000, **{V.FD_INTERVAL: est(1.3, 2.3)}),
        row("DDIM 10", 9.0, 2.0, **{V.FD_INTERVAL: est(9.0, 12.0)}),
        row("DPM-Solver++(2M) 5", 2.0, 3.0, nfe=5, **{V.FD_INTERVAL: est(2.0, 3.0)})]}


def test_fastdiffs_best_is_the_maps_choice_by_the_same_rule():
    got, point = V.fastdiff_best(map_part(), "cpu")
    assert got["label"] == point.label == "DPM-Solver++(2M) 5" and point.steps == 5
    assert V.fastdiff_best(map_part(), "cpu", label="DDIM 10")[1].label == "DDIM 10"
    with pytest.raises(ValueError, match="no map point"):
        V.fastdiff_best(map_part(), "cpu", label="nothing")
    with pytest.raises(ValueError, match="timed on"):
        V.fastdiff_best(map_part("CPU: Some Other CPU, AVX2 (2 threads)"), "cpu")


def test_one_interleaved_run_gives_the_ratio_fields():
    got = V.compare(fd_file(), map_part(), device="cpu", rounds=2, batch=2, compile=False, model=tiny_unet())
    assert got["diffusers best"]["label"] in ("diffusers DDIM 2", "diffusers DPM-Solver++(2M) 2")
    assert [r["label"] for r in got["rows"]] == ["diffusers DDIM 2", "diffusers DPM-Solver++(2M) 2",
                                                 "DPM-Solver++(2M) 5"]    # unipc3 is within, but one call more
    s = got["speed-up"]
    assert s["ratio"] > 0 and s["ratio range (IQRs)"][0] <= s["ratio"] <= s["ratio range (IQRs)"][1]
    assert got["fastdiff within limit"] and got["target met"] == (s["ratio"] >= 2)
    assert got["fastdiff best"]["time / fastdiff best"] == 1
    assert got["reference"]["limit"] == pytest.approx(2.3)
    assert all(r["repeats"] == 2 and r[V.TIME] > 0 for r in got["rows"])
    none = V.compare(fd_file(candidates=(("ddim2", 5.0),)), map_part(), device="cpu", rounds=1, batch=2,
                     compile=False, model=tiny_unet())
    assert none["diffusers best"] is None and "no diffusers candidate" in none["why"] and "speed-up" not in none
    outside = V.compare(fd_file(), map_part(), device="cpu", rounds=1, batch=2, compile=False, model=tiny_unet(),
                        fastdiff_label="DDIM 10")          # FD 9 > 2.3: not at equal quality
    assert not outside["fastdiff within limit"] and outside["target met"] is False
