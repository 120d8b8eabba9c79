"""Study 1: SR3 variants, VGG-11 feature fusion (`fastdiff.methods.vgg_features`), compute-once caching, weights
handling, and the study's drivers (`fastdiff.studies.vgg_conditioned_sr`)."""
import warnings

import pytest
import torch

from fastdiff.diffusion import make_schedule, respace, space_timesteps
from fastdiff.measure import sr_eval
from fastdiff.methods import vgg_features as vgg
from fastdiff.sampling import sample_ddim, sample_ddpm
from fastdiff.studies import vgg_conditioned_sr as vggsr
from fastdiff.studies import vgg_sr_evaluation as sreval
from fastdiff.train import TrainConfig, load_model, train
from fastdiff.unet import SuperResUNet
from fastdiff.weights import MissingWeightsError

# 16x16 outputs from 4x4 LR images; level widths 8, 16, 32, 64, 64 (VGG's 64..512 are projected)
TINY = vggsr.Widths(image_size=16, base_channels=8, num_res_blocks=1, norm_groups=4, dropout=0.0)


@pytest.fixture
def no_vgg_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def batch(size=16, scale=4, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g)
    lr = torch.rand(n, 3, size // scale, size // scale, generator=g) * 2 - 1
    return x, lr, torch.tensor([5, 1500][:n])


def build(name, widths=TINY, seed=0, **kw):
    torch.manual_seed(seed)
    return vggsr.build_variant(name, widths, vgg_weights="random", **kw).eval()


@pytest.mark.parametrize("name", list(vggsr.VARIANTS))
def test_every_variant_and_fusion_has_the_output_shape(name):
    model = build(name)
    x, lr, t = batch()
    assert model(x, t, lr=lr).shape == x.shape
    variant = vggsr.VARIANTS[name]
    assert isinstance(model, SuperResUNet) == (variant.fusion == "none")
    assert model.base.config.num_levels == len(vggsr.UNET_LAYOUTS[variant.layout].channel_mult)
    if variant.fusion != "none":
        assert model.config.fusion == variant.fusion and model.uses_lr_concat == variant.lr_concat
        feats = model.vgg_features(lr, x.shape[-2:])
        assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512][:model.base.config.num_levels]
        assert [f.shape[-1] for f in feats] == [16 >> l for l in range(model.base.config.num_levels)]


def test_paper_widths_match_vgg_stages_so_addition_needs_no_projection():
    model = build("small + VGG (add)", vggsr.PAPER_WIDTHS)
    assert all(isinstance(f, torch.nn.Identity) for f in model.fuse)
    x, lr, t = batch(size=32, scale=4)
    assert model(x, t, lr=lr).shape == x.shape
    rows = {r["variant"]: r for r in vggsr.parameter_table(vggsr.PAPER_WIDTHS, ("original", "half", "small"))}
    assert rows["original"]["paper (M)"] == 66 and 60 < rows["original"]["trainable (M)"] < 72
    assert 8 < rows["small"]["trainable (M)"] < 11 and rows["half"]["paper (M)"] == 33


@pytest.mark.parametrize("widths", [TINY, vggsr.Widths(image_size=32, dropout=0.0)], ids=["projected", "paper"])
def test_add_fusion_with_zero_vgg_features_equals_the_plain_unet(widths):
    fused, plain = build("small + VGG (add)", widths), build("small", widths)
    for a, b in zip(fused.inner.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)   # the same seed gives the same U-Net with or without VGG
    x, lr, t = batch(size=widths.image_size)
    zeros = [torch.zeros_like(f) for f in fused.vgg_features(lr, x.shape[-2:])]
    with torch.no_grad():
        out = fused(x, t, lr=lr, vgg=zeros)
        sr3 = SuperResUNet(plain.config).eval()          # a separate SR3 U-Net holding the same weights
        sr3.load_state_dict(plain.state_dict())
        assert torch.equal(out, sr3(x, t, lr=lr))
        assert not torch.equal(out, fused(x, t, lr=lr))  # and real features do change the output


def test_sampling_runs_vgg_once_and_cached_features_equal_recomputed_ones():
    model = build("small + VGG (add)")
    x, lr, _ = batch()
    sched = respace(make_schedule("sr3"), space_timesteps(2000, 10))
    cached = model.prepare_condition(x, {"lr": lr})["vgg"]
    fresh = vgg.VGGFeatures(3, weights="random", seed=0)(lr, x.shape[-2:])
    assert all(torch.equal(a, b) for a, b in zip(cached, fresh))

    model.vgg.calls = 0
    out = sample_ddpm(model, x.clone(), sched, cond={"lr": lr}, generator=torch.Generator().manual_seed(1),
                      progress=False)
    assert model.vgg.calls == 1
    # the same sampler through a wrapper that hides prepare_condition: VGG at every step, same images
    model.vgg.calls = 0
    recomputed = sample_ddpm(lambda x, t, **c: model(x, t, **c), x.clone(), sched, cond={"lr": lr},
                             generator=torch.Generator().manual_seed(1), progress=False)
    assert model.vgg.calls == 10
    assert torch.equal(out, recomputed)
    model.vgg.calls = 0
    sample_ddim(model, x.clone(), sched, cond={"lr": lr}, progress=False)
    assert model.vgg.calls == 1
    assert sreval.vgg_share(model, lr, make_schedule("sr3"), 5, device=torch.device("cpu"),
                           repeats=1)["vgg_calls_per_sampling"] == 1


def test_vgg_is_frozen_and_stays_in_eval_mode():
    model = build("small + VGG (concat)").train()
    assert not model.vgg.training and model.inner.training
    before = [p.clone() for p in model.vgg.parameters()]
    assert all(not p.requires_grad for p in model.vgg.parameters())
    x, lr, t = batch()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(x, t, lr=lr).square().mean().backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.vgg.parameters()))
    assert vggsr.trainable_parameters(model) < sum(p.numel() for p in model.parameters())


def test_imagenet_weights_missing_is_a_clear_error_and_random_only_on_request(no_vgg_weights):
    with pytest.raises(MissingWeightsError, match="vgg11-8a719046.pth"):
        vgg.VGGFeatures(3, weights="imagenet")
    with pytest.raises(MissingWeightsError, match="vgg_if_missing='random'"):
        vgg.resolve_vgg_weights("imagenet")
    with pytest.warns(vgg.RandomVGGWarning, match="NOT ImageNet"):
        weights, note = vgg.resolve_vgg_weights("imagenet", if_missing="random")
    assert weights == "random" and "RANDOM" in note
    with pytest.raises(ValueError, match="unknown vgg_weights"):
        vgg.resolve_vgg_weights("vgg19")


def test_imagenet_weights_are_loaded_from_the_torch_checkpoint_folder(no_vgg_weights):
    import torchvision
    from fastdiff.weights import weight_path
    torch.manual_seed(3)
    reference = torchvision.models.vgg11(weights=None)
    weight_path("vgg11").parent.mkdir(parents=True)
    torch.save(reference.state_dict(), weight_path("vgg11"))   # stands in for the download, same format
    with warnings.catch_warnings():
        warnings.simplefilter("error", vgg.RandomVGGWarning)
        assert vgg.resolve_vgg_weights("imagenet")[0] == "imagenet"
    feats = vgg.VGGFeatures(5, weights="imagenet")
    assert torch.equal(feats.layers[18].weight, reference.features[18].weight)
    lr = torch.rand(1, 1, 8, 8) * 2 - 1                         # greyscale is repeated to RGB
    out = feats(lr, (32, 32))
    x = (torch.nn.functional.interpolate(lr, size=(32, 32), mode="bicubic").expand(-1, 3, -1, -1) + 1) / 2
    x = (x - torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(out[2], reference.features[:10](x), atol=1e-5)
        assert torch.allclose(out[4], reference.features[:20](x), atol=1e-5)
    assert [tuple(f.shape[1:]) for f in out] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]


def test_bad_input_gets_clear_errors():
    model = build("small + VGG (add)")
    x, lr, t = batch()
    with pytest.raises(ValueError, match="lr must be"):
        model(x, t, lr=lr[:, :1])
    with pytest.raises(ValueError, match="does not divide"):
        model(x, t, lr=torch.zeros(2, 3, 5, 5))
    with pytest.raises(ValueError, match="precomputed VGG features"):
        model(x, t, lr=lr, vgg=model.vgg_features(lr, (8, 8)))
    with pytest.raises(TypeError, match="vgg"):
        build("small")(x, t, lr=lr, vgg=[])            # SR3 without fusion takes no VGG features
    with pytest.raises(ValueError, match="unknown variant"):
        vggsr.build_variant("tiny", TINY)
    with pytest.raises(ValueError, match="unknown fusion"):
        vgg.VGGFeatureFusion(build("small"), fusion="multiply", vgg_weights="random")
    with pytest.raises(ValueError, match="concatenates 3 LR channels, not 1"):
        vgg.VGGFeatureFusion(build("small"), vgg_weights="random", lr_channels=1)
    with pytest.raises(ValueError, match="needs cond"):
        model.prepare_condition(x, {})
    with pytest.raises(ValueError, match="unknown profile"):
        vggsr.get_profile("medium")


def test_training_with_validation_psnr_resumes_exactly_and_checkpoints_rebuild_the_model(tmp_path):
    hr = torch.rand(12, 3, 16, 16) * 2 - 1
    from fastdiff.data import SRPairs, downsample
    pairs, sched = SRPairs(hr, 4), make_schedule("sr3", 50)
    cfg = TrainConfig(steps=4, batch_size=4, loss="l1", log_every=1, ema_decay=0.9)
    evaluate = vggsr.val_psnr(hr[:2], downsample(hr[:2], 4), sched, 3, device=torch.device("cpu"))

    plain = train(build("small + VGG (add)"), pairs, sched, cfg, progress=False)
    evaluated = train(build("small + VGG (add)"), pairs, sched, cfg, progress=False, evaluate=evaluate,
                      evaluate_every=2)
    assert [e["step"] for e in evaluated["evals"]] == [0, 2, 4]
    for a, b in zip(plain["ema"].state_dict().values(), evaluated["ema"].state_dict().values()):
        assert torch.equal(a, b)   # evaluation does not disturb training

    ckpt = tmp_path / "m.pt"
    half = train(build("small + VGG (add)"), pairs, sched, TrainConfig(**{**cfg.__dict__, "steps": 2}),
                 checkpoint=ckpt, progress=False, evaluate=evaluate, evaluate_every=2)
    assert [e["step"] for e in half["evals"]] == [0, 2]
    resumed = train(build("small + VGG (add)"), pairs, sched, cfg, checkpoint=ckpt, progress=False,
                    evaluate=evaluate, evaluate_every=2)
    assert [e["step"] for e in resumed["evals"]] == [0, 2, 4]
    assert [e["val PSNR"] for e in resumed["evals"]] == pytest.approx([e["val PSNR"] for e in evaluated["evals"]])
    for a, b in zip(resumed["ema"].state_dict().values(), evaluated["ema"].state_dict().values()):
        assert torch.equal(a, b)

    loaded = load_model(ckpt)   # rebuilt without reading VGG weights: they come from the checkpoint
    assert isinstance(loaded, vgg.VGGFeatureFusion) and loaded.config.vgg_weights == "random"
    x, lr, t = batch()
    with torch.no_grad():
        assert torch.equal(loaded(x, t, lr=lr), resumed["ema"](x, t, lr=lr))


def test_super_resolve_start_noise_does_not_depend_on_batch_size_and_metrics_have_a_bicubic_row():
    model = build("small")
    hr = torch.rand(3, 3, 16, 16) * 2 - 1
    from fastdiff.data import downsample
    lr, sched = downsample(hr, 4), make_schedule("sr3", 100)
    a = sr_eval.super_resolve(model, lr, sched, 4, device="cpu", batch_size=3, eta=0.0)
    b = sr_eval.super_resolve(model, lr, sched, 4, device="cpu", batch_size=1, eta=0.0)
    assert a.shape == hr.shape and a.min() >= -1 and a.max() <= 1
    assert torch.allclose(a[0], b[0], atol=1e-5)
    rows, _ = sr_eval.metrics_table({"small": model}, hr, sched, scale=4, steps=3, device="cpu")
    assert [r["model"] for r in rows] == ["bicubic (no model)", "small"]
    assert set(rows[0]) == {"model", "PSNR", "SSIM", "LPIPS", "LR-PSNR", "per image", "intervals"}
    assert rows[0]["LR-PSNR"] > 30 and len(rows[0]["per image"]["PSNR"]) == len(hr)
    e = rows[1]["intervals"]["PSNR"]
    assert e.low <= rows[1]["PSNR"] <= e.high and e.n == len(hr)
    grid = sr_eval.steps_grid({"small": model}, lr[:1], sched, (2, 4), device="cpu")
    assert set(grid["small"]) == {2, 4} and grid["small"][4].shape == (1, 3, 16, 16)


def test_forward_timing_rows_are_labelled_and_relative_to_the_original():
    rows = sreval.forward_times(("original", "small", "small + VGG (add)"), widths=TINY, device=torch.device("cpu"),
                               repeats=1, progress=False)
    names = [r["variant"] for r in rows]
    assert names[:2] == ["original", "small"] and names[2] == "small + VGG (add)" and names[3].startswith("VGG-11")
    assert rows[0]["speedup vs original"] == 1.0 and rows[0]["params ratio"] == 1.0
    assert all(r["median_ms"] > 0 and r["iqr_ms"] >= 0 and r["GFLOPs"] > 0 and r["repeats"] == 1 for r in rows)
    assert rows[3]["speedup vs original"] is None


def test_full_profile_uses_the_papers_sizes_and_a_face_folder(tmp_path):
    from PIL import Image
    from fastdiff.data import DatasetUnavailableError
    full = vggsr.get_profile("full")
    assert full.widths == vggsr.PAPER_WIDTHS and full.hr_size // full.scale == 32 and full.train.loss == "l1"
    assert vggsr.get_profile("quick", train_steps=7).train.steps == 7
    with pytest.raises(DatasetUnavailableError, match="does not exist"):
        vggsr.load_sr_data(full, face_dir=str(tmp_path / "ffhq"))
    (tmp_path / "faces").mkdir()
    for i in range(10):
        Image.new("RGB", (150, 140), (20 * i, 100, 50)).save(tmp_path / "faces" / f"{i:05d}.png")
    name, train_hr = vggsr.load_sr_data(full, face_dir=str(tmp_path / "faces"), split="train")
    _, val = vggsr.load_sr_data(full, face_dir=str(tmp_path / "faces"), split="val")
    assert name.startswith("folder:") and len(train_hr) == 9 and train_hr[0].shape == (3, 128, 128)
    assert vggsr.take(val, full.eval_n).shape == (1, 3, 128, 128)   # a small split gives what it has


def test_the_quality_set_drawn_differently_is_still_held_out():
    """Notebook 01's quality table draws its images with another seed than the validation curve: they must still
    be the complement of the training split the zoo models learned from (a reseeded split would not be)."""
    from fastdiff.data import mnist_split
    from fastdiff.studies import vgg_conditioned_sr as vggsr
    P = vggsr.get_profile("quick", val_n=200)
    train = mnist_split(P.hr_size, "train", seed=0)[0].flatten(1)
    seen = {tuple(row.tolist()) for row in train}
    curve, _ = vggsr.validation_set(P, seed=0)
    table, _ = vggsr.validation_set(P, seed=0, draw=1)
    assert not any(tuple(row.tolist()) in seen for row in table.flatten(1))
    assert not torch.equal(curve, table)


def test_the_sr_table_with_intervals_becomes_results_rows_and_a_display(tmp_path):
    """Every metric of the SR table carries its interval into the results rows (the digit accuracy a Wilson one)
    and the notebook's display shows them."""
    from fastdiff.measure.intervals import mean_interval, proportion_interval
    from fastdiff.studies.common import setup
    run = setup("99_test", profile="smoke", device="cpu", dtype="fp32", output_dir=tmp_path, quiet=True)
    per = {"PSNR": [20.0, 21.0, 22.0], "SSIM": [0.5, 0.6, 0.7], "LR-PSNR": [30.0, 31.0, 32.0]}
    row = {"model": "small", "PSNR": 21.0, "SSIM": 0.6, "LPIPS": None, "LR-PSNR": 31.0, "FD (LeNet-MNIST)": 5.0,
           "digit accuracy": 2 / 3, "per image": per,
           "intervals": {**{k: mean_interval(v) for k, v in per.items()}, "digit accuracy": proportion_interval(2, 3)}}
    res = sreval.collect_results(run, dataset="d", weights="w", params_paper=[], forward=[], trained={},
                                 metrics=[row], eval_n=3, eval_steps=2, timing_batch=1)
    got = {r.metric: r for r in res.rows}
    assert got["digit accuracy"].interval.startswith("Wilson") and got["PSNR"].low <= 21.0 <= got["PSNR"].high
    shown = sreval.sr_display([row])
    assert shown.loc["small", "n"] == 3 and "[" in shown.loc["small", "PSNR"]


def test_converges_reads_the_curve_gain_with_its_interval():
    """The curve's points are means over a few validation images: the gain gets the final models' paired per-image
    spread scaled to those images, and a gain whose interval straddles 0.2 dB is inconclusive, not contradicted."""
    from fastdiff.measure.intervals import Estimate
    from fastdiff.studies import vgg_sr_evaluation as sreval
    final = Estimate(-0.2, -0.3, -0.1, 200, "bootstrap paired 95%")
    gain = sreval.curve_gain_interval(0.05, final, 50)
    assert gain.value == 0.05 and gain.n == 50
    assert abs((gain.high - gain.low) / 2 - 0.1 * 2) < 1e-9        # sqrt(200 / 50) = 2 times the final half-width
    rule = {c.key: c for c in sreval.CLAIMS}["converges"].rule

    def verdict(g):
        return rule({"curve gain:val PSNR": g, "curve gain:digit accuracy": 0.01})[0]
    assert verdict(gain) == "inconclusive"
    assert verdict(Estimate(0.5, 0.3, 0.7, 32, "x")) == "reproduced"
    assert verdict(Estimate(0.1, 0.05, 0.15, 32, "x")) == "partly"
    assert verdict(Estimate(-0.5, -0.7, -0.3, 32, "x")) == "contradicted"
    # the numbers flow: measured_for_claims turns the plain curve mean into the estimate when val_n is given
    curves = {name: [{"step": 0, "val PSNR": 5.0, "digit accuracy": 0.0},
                     {"step": 1, "val PSNR": 20.0 + d, "digit accuracy": 0.5}] for name, d in
              (("small", 0.0), ("small + VGG (add)", 0.4))}
    rows = [{"model": m, "PSNR": 20.0, "per image": {"PSNR": [20.0 + d + 0.01 * i for i in range(20)]}}
            for m, d in (("small", 0.0), ("small + VGG (add)", 0.4))]
    m = sreval.measured_for_claims(params_paper=[], forward=[], curves=curves, sr_rows=rows, share=None,
                                   device="cpu", vgg="x", steps=1, val_n=5)
    assert abs(m["curve gain:val PSNR"].value - 0.4) < 1e-6 and m["curve gain:val PSNR"].n == 5


def test_the_curves_last_point_gets_an_interval_from_per_image_values_of_the_final_model(tmp_path):
    """``evaluate(model, per_image=True)`` gives each validation image's PSNRs, whose means are the curve's values;
    `final_curve_intervals` on the final EMA model reproduces the curve's last point, and the results rows carry its
    interval (without intervals, the old call still writes the plain curve value)."""
    from fastdiff.data import SRPairs, downsample
    from fastdiff.studies.common import setup
    hr = torch.rand(12, 3, 16, 16) * 2 - 1
    sched, profile = make_schedule("sr3", 50), vggsr.get_profile("smoke", val_steps=3)
    evaluate = vggsr.val_psnr(hr[:5], downsample(hr[:5], 4), sched, 3, device=torch.device("cpu"))
    trained = train(build("small + VGG (add)"), SRPairs(hr, 4), sched, TrainConfig(steps=2, batch_size=4, loss="l1",
                    log_every=1, ema_decay=0.9), progress=False, evaluate=evaluate, evaluate_every=2)
    means, each = evaluate(trained["ema"]), evaluate(trained["ema"], per_image=True)
    assert {k: v.shape for k, v in each.items()} == {"val PSNR": (5,), "denoise PSNR": (5,)}
    assert {k: v.mean().item() for k, v in each.items()} == pytest.approx(means, abs=1e-4)

    intervals = vggsr.final_curve_intervals({"small + VGG (add)": trained["ema"]}, hr[:5], sched, profile,
                                            device="cpu")["small + VGG (add)"]
    last = trained["evals"][-1]
    for metric, e in intervals.items():
        assert e.value == pytest.approx(last[metric], abs=1e-4) and e.n == 5 and e.low <= e.value <= e.high

    run = setup("99_test", profile="smoke", device="cpu", dtype="fp32", output_dir=tmp_path, quiet=True)
    common = dict(dataset="d", weights="w", params_paper=[], forward=[], metrics=[], eval_n=5, eval_steps=3,
                  timing_batch=1, trained={"small + VGG (add)": {"evals": trained["evals"], "step": 2}})
    rows = {r.metric: r for r in sreval.collect_results(run, **common, curve_intervals={
        "small + VGG (add)": intervals}).rows}
    for metric in ("val PSNR", "denoise PSNR"):
        e, row = intervals[metric], rows[metric]
        assert (row.value, row.low, row.high, row.n) == (e.value, e.low, e.high, 5)
        assert row.interval.startswith("bootstrap") and row.setting["curve_value"] == last[metric]
    plain = {r.metric: r for r in sreval.collect_results(run, **common).rows}
    assert plain["val PSNR"].value == last["val PSNR"] and plain["val PSNR"].low is None
