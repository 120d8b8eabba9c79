"""The cross-study speed/quality map (notebook 07): its points, the measurement on tiny models, its errors."""
import pytest
import torch

from fastdiff import zoo
from fastdiff.diffusion import make_schedule
from fastdiff.methods.layer_skipping import LayerSkippingUNet
from fastdiff.sampling import DDIM, DDPM, HEUN, Sampler, sample_ddim, sampler_call
from fastdiff.studies import speed_quality_map as M
from fastdiff.measure.pareto import headline
from fastdiff.unet import build_unet


def tiny_models():
    torch.manual_seed(0)
    unet = build_unet("tiny", image_size=16, channel_mult=(1, 2, 2)).eval()
    return {"U-Net": unet, "U-Net, skip-trained": LayerSkippingUNet(build_unet("tiny", image_size=16,
                                                                              channel_mult=(1, 2, 2))).eval()}


def fake_score(images):
    """A stand-in for FD: the mean of the images, so that the rows can be checked against a direct run."""
    return {M.METRIC: float(images.mean())}


def test_quick_points_are_valid_and_start_at_the_reference():
    points = M.POINTS["quick"]
    assert points[0] == M.REFERENCE and M.REFERENCE.nfe == 1000 and M.REFERENCE.sampler is DDPM
    assert len({p.label for p in points}) == len(points)
    families = {p.family for p in points}
    assert {"DDIM", "DPM-Solver++(2M)", "Heun (Karras)", "layer skipping (study 2)", "DeepCache",
            "combination"} <= families
    entries = zoo.entries()
    assert all(M.MODELS[p.model] in entries for p in points)


def test_point_accounting():
    heun = M.Point("h", "Heun (Karras)", sampler=HEUN, steps=10)
    assert heun.nfe == HEUN.nfe(10) == 19 and heun.full_calls == 19
    cache = M.Point("c", "DeepCache", steps=100, cache_interval=5)
    assert cache.nfe == 100 and cache.full_calls == 20
    # the count is the sampler's own, not derived from its name: a new sampler brings its own
    thrice = Sampler("thrice", "three per step", sample_ddim, nfe=lambda steps: 3 * steps)
    assert M.Point("t", "new", sampler=thrice, steps=4, cache_interval=2).full_calls == 6
    assert all(p.nfe == p.sampler.nfe(p.steps) for p in M.POINTS["quick"])


@pytest.mark.parametrize("kw, match", [({"model": "VGG"}, "model"), ({"sampler": "euler"}, "sampler"),
                                       ({"rung": "int8"}, "rung"), ({"steps": 0}, "steps"),
                                       ({"cache_interval": 2, "encprop_interval": 2}, "deep levels")])
def test_bad_points_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        M.Point("bad", "DDIM", **kw)


def test_measure_map_on_tiny_models():
    models, schedule = tiny_models(), make_schedule("linear")
    points = M.POINTS["smoke"]
    rows = M.measure_map(points, models, schedule, fake_score, n=4, batch_size=2, rounds=1, device="cpu",
                         progress=False)
    assert [r["label"] for r in rows] == [p.label for p in points]
    assert rows[0]["speed-up"] == pytest.approx(1.0)
    for r in rows:
        assert r[M.TIME] > 0 and r["IQR (ms)"] >= 0 and r["n"] == 4 and r["batch"] == 2
    # a plain point's quality is that of a direct sampler run from the same x_T, batch by batch
    ddim = next(p for p in points if p.label == "DDIM 3")
    x_T = torch.randn((4, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    direct = torch.cat([sampler_call(models["U-Net"], schedule, DDIM, 3, x_T[i:i + 2], seed=1 + i)()
                        for i in (0, 2)])
    assert next(r for r in rows if r["label"] == ddim.label)[M.METRIC] == pytest.approx(float(direct.mean()),
                                                                                        abs=1e-6)
    cache = next(r for r in rows if r["cache interval"])
    assert cache["full U-Net calls"] == 2 and cache["NFE"] == 3
    # FLOPs per image of the sampling call: DDIM 3 runs the U-Net 3 times, DeepCache N=2 once in full and once
    # shallow, encoder propagation N=2 once in full and once decoder-only; a first-block cache counts what it ran
    # (on these random weights every call is full, plus the first-block probe of the calls after the first)
    by = {r["label"]: r for r in rows}
    one = M.count_flops(lambda: models["U-Net"](x_T[:2], torch.full((2,), 500))) / 2 / 1e9
    assert by["DDIM 3"][M.FLOPS] == pytest.approx(3 * one, rel=1e-6)
    for label in ("DeepCache N=2, DDIM 3", "encoder propagation N=2, DDIM 3"):
        assert 2 * one < by[label][M.FLOPS] < 3 * one and by[label]["full U-Net calls"] == 2
    fbc = by["first-block cache 0.1, DDIM 3"]
    assert fbc["full U-Net calls"] is None and fbc["cache"] == "first-block cache 0.1" \
        and 3 * one < fbc[M.FLOPS] < 3.5 * one


def test_measure_map_times_only_without_a_score():
    models, schedule = tiny_models(), make_schedule("linear")
    rows = M.measure_map(M.POINTS["smoke"][:2], models, schedule, None, n=4, batch_size=2, rounds=1, device="cpu",
                         progress=False)
    assert all(r[M.TIME] > 0 and M.METRIC not in r and "n" not in r for r in rows)
    assert rows[0]["speed-up"] == pytest.approx(1.0)


def test_measure_map_refuses_bad_settings():
    models, schedule = tiny_models(), make_schedule("linear")
    points = M.POINTS["smoke"][:2]
    with pytest.raises(ValueError, match="multiple"):
        M.measure_map(points, models, schedule, fake_score, n=3, batch_size=2, rounds=1, device="cpu")
    with pytest.raises(ValueError, match="rounds"):
        M.measure_map(points, models, schedule, fake_score, n=2, batch_size=2, rounds=0, device="cpu")
    with pytest.raises(ValueError, match="unique"):
        M.measure_map([points[0], points[0]], models, schedule, fake_score, n=2, batch_size=2, rounds=1,
                      device="cpu")
    with pytest.raises(ValueError, match="needs model"):
        M.measure_map([M.Point("f", "x", model="fewer levels")], models, schedule, fake_score, n=2, batch_size=2,
                      rounds=1, device="cpu")


def test_headline_on_map_rows():
    ref = {"label": "DDPM 1000", M.TIME: 100.0, M.METRIC: 10.0}
    rows = [{"label": "a", M.TIME: 5.0, M.METRIC: 10.9}, {"label": "b", M.TIME: 2.0, M.METRIC: 11.5},
            {"label": "c", M.TIME: 20.0, M.METRIC: 9.0}]
    best = headline(rows, ref, x=M.TIME, y=M.METRIC)
    assert best["label"] == "a" and best["speed-up"] == pytest.approx(20.0)
    judged = M.judge_map([ref] + rows, ref)                  # no intervals: the plain headline, nothing undecided
    assert judged["headline"]["label"] == "a" and judged["inconclusive"] == [] and judged["limit"] == pytest.approx(11)
    assert judged["front"] == ["b", "a", "c"]


def test_each_method_point_stands_against_its_own_baseline():
    from fastdiff.studies.report_claims import beside_base
    row = lambda label, model="U-Net", sampler="ddim", steps=50, c=None, cache=None, rung="fp32", ms=10.0: {  # noqa
        "label": label, "model": model, "sampler": sampler, "steps": steps, "c": c, "cache interval": cache,
        "rung": rung, M.TIME: ms, M.METRIC: 5.0}
    rows = [row("DDIM 50"), row("skip c=0", model="U-Net, skip-trained", c=0, ms=10.0),
            row("skip c=2", model="U-Net, skip-trained", c=2, ms=5.0), row("cache", cache=3, ms=4.0),
            row("DPM 10", sampler="dpmpp2m", steps=10, ms=2.0),
            row("skip + DPM 10", model="U-Net, skip-trained", c=2, sampler="dpmpp2m", steps=10, ms=1.0),
            row("U-Net 3", model="U-Net (study 3)", ms=20.0), row("cU-Net", model="cU-Net", ms=10.0)]
    against = {r["point"]: (r["against"], r["speed-up"]) for r in beside_base(rows)}
    assert against == {"skip c=0": ("DDIM 50", 1.0), "skip c=2": ("skip c=0", 2.0), "cache": ("DDIM 50", 2.5),
                       "skip + DPM 10": ("DPM 10", 2.0), "U-Net 3": ("DDIM 50", 0.5), "cU-Net": ("U-Net 3", 2.0)}


def test_the_headline_within_the_reference_interval_and_per_budget():
    from fastdiff.measure.intervals import Estimate
    from fastdiff.measure.pareto import fastest_within_interval

    def row(label, ms, fd, nfe, lo=None, hi=None):
        return {"label": label, M.TIME: ms, M.METRIC: fd, "NFE": nfe,
                M.FD_INTERVAL: Estimate(fd, fd - 1 if lo is None else lo, fd + 1 if hi is None else hi, 1000, "t")}
    ref = row("DDPM 1000", 100.0, 2.0, 1000, lo=1.0, hi=3.0)
    rows = [ref, row("a", 1.0, 3.5, 5), row("b", 2.0, 3.0, 10), row("c", 3.0, 1.0, 20), row("d", 4.0, 2.5, 10)]
    got = fastest_within_interval(rows, ref, x=M.TIME, y=M.METRIC, interval=M.FD_INTERVAL, budget_key="NFE",
                                  budgets=(5, 10, 20))
    assert got["limit"] == 3.0 and got["headline"]["label"] == "b" and got["headline"]["speed-up"] == 50.0
    assert got["budgets"][5] == {"headline": None, "best": rows[1]}           # a (3.5) is above the limit
    assert got["budgets"][10]["headline"]["label"] == "b" and got["budgets"][10]["best"]["label"] == "d"
    assert got["budgets"][20]["best"]["label"] == "c"
    judged = M.judge_map(rows, ref)          # rows without paired ratios: the plain headline; none within
    assert "within interval" not in judged


def test_flops_that_do_not_become_time_are_flagged():
    from fastdiff.studies.report_claims import beside_base
    row = lambda label, ms, gflops, cache=None: {  # noqa
        "label": label, "model": "U-Net", "sampler": "ddim", "steps": 50, "c": None, "cache interval": None,
        "cache": cache, "rung": "fp32", M.TIME: ms, M.METRIC: 5.0, M.FLOPS: gflops}
    rows = [row("DDIM 50", 10.0, 1.0), row("real", 6.0, 0.5, cache="x"), row("lost", 9.0, 0.5, cache="y"),
            row("small", 10.0, 0.95, cache="z")]
    got = {r["point"]: r for r in beside_base(rows)}
    assert not got["real"]["FLOPs not time"] and got["lost"]["FLOPs not time"] and not got["small"]["FLOPs not time"]
    assert got["lost"]["FLOP saving"] == pytest.approx(0.5) and got["lost"]["time saving"] == pytest.approx(0.1)


def test_a_distilled_student_samples_ddim_on_its_own_grid_and_nothing_else():
    from fastdiff.methods.progressive_distillation import VPrediction, student_schedule
    label, n = next((label, n) for label, n in M.STUDENTS.items() if n == 4)
    with pytest.raises(ValueError, match="samples by DDIM in 4 steps"):
        M.Point("pd", "distillation", model=label, steps=8)
    with pytest.raises(ValueError, match="samples by DDIM"):
        M.Point("pd", "distillation", model=label, sampler=HEUN, steps=4)
    torch.manual_seed(0)
    student = VPrediction(build_unet("tiny", image_size=16, channel_mult=(1, 2, 2))).eval()
    schedule = make_schedule("linear")
    point = M.Point("pd", "distillation", model=label, steps=n)
    x = torch.randn((2, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    got = M.point_call(point, student, schedule, x, seed=1)()
    want = sampler_call(student, student_schedule(schedule, n), DDIM, n, x, seed=1)()
    assert torch.equal(got, want)
    assert point.nfe == n == point.full_calls


def test_a_consistency_student_samples_in_one_ddim_step_or_by_multistep_consistency_sampling():
    from fastdiff.methods.consistency_distillation import CONSISTENCY, consistency_sample, consistency_timesteps
    from fastdiff.methods.progressive_distillation import VPrediction, student_schedule
    assert set(M.CONSISTENCY_MODELS) == {"CD student", "CD student, mu 0.95"}
    by = {p.label: p for p in M.POINTS["quick"]}
    assert by["CD student, 2 steps"].sampler is CONSISTENCY and by["CD student, 1 step"].sampler.name == "ddim"
    with pytest.raises(ValueError, match="samples a consistency model .*, not the PD student"):   # PD: DDIM only
        M.Point("pd", "distillation", model="PD student, 2 steps", sampler=CONSISTENCY, steps=2)
    with pytest.raises(ValueError, match="not the U-Net"):
        M.Point("u", "DDIM", sampler=CONSISTENCY, steps=2)
    with pytest.raises(ValueError, match=r"DDIM in 1 steps \(or by consistency"):
        M.Point("cd", "distillation", model="CD student", sampler=HEUN, steps=2)
    torch.manual_seed(0)
    student = VPrediction(build_unet("tiny", image_size=16, channel_mult=(1, 2, 2))).eval()
    schedule = make_schedule("linear")
    x = torch.randn((2, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    got = M.point_call(by["CD student, 2 steps"], student, schedule, x, seed=1)()     # on the training schedule
    want = consistency_sample(student, schedule, x, consistency_timesteps(1000, 18, 2),
                              generator=torch.Generator().manual_seed(1))
    assert torch.equal(got, want) and by["CD student, 2 steps"].nfe == 2
    with pytest.raises(ValueError, match="takes the training schedule"):
        sampler_call(student, student_schedule(schedule, 2), CONSISTENCY, 2, x)()


def test_a_students_training_cost_is_its_whole_distillation_chain():
    index = zoo.entries()
    chain = [index[f"distill/pd-{n}"].wall_seconds for n in (32, 16, 8, 4, 2, 1)]
    assert M.training_minutes("PD student, 1 step") == pytest.approx(sum(chain) / 60)
    assert M.training_minutes("PD student, 8 steps") == pytest.approx(sum(chain[:3]) / 60)
    assert M.training_minutes("U-Net") is None


def test_a_learned_cache_is_sampled_only_as_it_was_trained_and_counts_as_caching():
    from fastdiff.studies.report import CACHES, approach
    point = next(p for p in M.POINTS["quick"] if p.model in M.CACHING_MODELS)
    assert point.cache == "Block Caching 0.2 + scale-shift" and point.full_calls is None and point.nfe == 50
    for bad in (dict(steps=20), dict(sampler=HEUN, steps=50), dict(cache_interval=2), dict(block_threshold=0.1)):
        with pytest.raises(ValueError, match="caches by itself, trained for DDIM 50"):
            M.Point("x", "Block Caching", model=point.model, **bad)
    row = {"family": "Block Caching", "model": point.model, "rung": "fp32", "c": None, "cache": point.cache,
           "cache interval": None, "label": point.label, "sampler": "DDIM"}
    assert approach(row) == CACHES and approach({**row, "model": "fewer levels"}) is None
