"""Study 3's FD sweep (`fastdiff.studies.continuous_unet_fd`): its settings build quickly from the zoo with the
quick grid and 30, its pairs name its settings, a sweep of models trained in a run samples as `fd_curve` did, and
a sweep summarised by `fastdiff.measure.fd_sweep` reads back into the study's rows and verdicts."""
import time

import pytest
import torch

from fastdiff.measure import fd_sweep
from fastdiff.studies import continuous_unet as cunet
from fastdiff.studies import continuous_unet_fd as fd_study
from fastdiff.verdicts import judge


def test_the_zoo_settings_build_quickly_and_hold_the_quick_grid_and_30():
    start = time.perf_counter()
    settings = fd_study.fd_settings("cpu")
    assert time.perf_counter() - start < 30
    keys = [s.key for s in settings]
    assert len(set(keys)) == len(keys) == 2 * len(fd_study.STEPS) + 3
    assert 30 in fd_study.STEPS and set(cunet.PROFILES["quick"].steps) <= set(fd_study.STEPS)
    assert {a for p in fd_study.PAIRS for a in p} <= set(keys)
    assert ("cunet-ddpm30", "unet-ddpm30") in fd_study.PAIRS and ("unet-ddpm5", "unet-ddpm30") in fd_study.PAIRS
    unet30 = next(s for s in settings if s.key == "unet-ddpm30")
    assert unet30.entry == "cunet/unet" and len(unet30.sha256) == 64 and unet30.n is None
    assert unet30.sampling == {"model": "U-Net", "sampler": "DDPM", "options": {}, "steps": 30,
                               "batch": cunet.PROFILES["quick"].fd_batch, "schedule": "linear"}


def tiny_models():
    return {name: cunet.build(name, seed=1) for name in ("U-Net", "cU-Net", "cU-Net wo/A")}


def test_a_sweep_of_trained_models_samples_as_the_notebook_did():
    """Batches with their sampler noise seeded 1 + the batch's first index, as `fd_curve` and seed_spread do."""
    from fastdiff.diffusion import make_schedule
    from fastdiff.sampling import DDPM, sampler_call
    models = tiny_models()
    sweep, remeasure = fd_study.sweep_for(models, weights="train", remeasure="auto", steps=(3, 2), ablation_steps=2,
                                          batch=2)
    assert remeasure is True and sweep.STUDY == cunet.STUDY and sweep.IMAGE_SIZE == 16
    settings = {s.key: s for s in sweep.fd_settings("cpu")}
    assert list(settings) == ["unet-ddpm2", "unet-ddpm3", "cunet-ddpm2", "cunet-ddpm3", "cunet-wo-a-ddpm2"]
    assert ("unet-ddpm2", "unet-ddpm3") in sweep.PAIRS and ("cunet-wo-a-ddpm2", "cunet-ddpm2") in sweep.PAIRS
    assert settings["unet-ddpm2"].entry is None and len(settings["unet-ddpm2"].sha256) == 64
    x_T = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    got = settings["cunet-ddpm2"].sample(x_T)
    schedule = make_schedule("linear")
    want = torch.cat([sampler_call(models["cU-Net"], schedule, DDPM, 2, x_T[i:i + 2], seed=1 + i)() for i in (0, 2)])
    torch.testing.assert_close(got, want)
    assert fd_study.sweep_for(models, weights="zoo", remeasure="auto")[0] is fd_study


def test_the_weights_hash_follows_the_weights():
    a, b = cunet.build("cU-Net", seed=1), cunet.build("cU-Net", seed=1)
    assert fd_study.weights_sha256(a) == fd_study.weights_sha256(b)
    with torch.no_grad():
        next(b.parameters()).add_(1e-3)
    assert fd_study.weights_sha256(a) != fd_study.weights_sha256(b)


def test_a_summarised_sweep_reads_back_into_rows_and_verdicts(tmp_path):
    """Fake features: each setting's features are the reference's shifted by its distance; the cU-Net is best at 5
    steps and the U-Net at 30, far apart, so fewer-steps is reproduced from the paired intervals."""
    ref = torch.randn(400, 6, generator=torch.Generator().manual_seed(0))
    stats = {"mu": ref.double().mean(0), "sigma": torch.cov(ref.double().T)}
    shift = {"U-Net": {5: 3.0, 10: 2.0, 30: 0.3}, "cU-Net": {5: 0.2, 10: 1.5, 30: 2.5}}
    sweep = fd_study.sweep_of({name: torch.nn.Identity() for name in shift}, steps=(5, 10, 30))
    settings = [fd_sweep.FDSetting(fd_study.key(m, k), f"{m}, DDPM {k} steps", {"model": m, "steps": k},
                                   lambda x: x) for m in shift for k in shift[m]]
    noise = torch.randn(200, 6, generator=torch.Generator().manual_seed(1))
    got = {s.key: {"features": noise + shift[s.sampling["model"]][s.sampling["steps"]], "seconds": 1.0, "n": 200}
           for s in settings}
    section = fd_sweep.summarise(settings, got, ref_stats=stats, ref_features=ref, floor_features=noise,
                                 floor_label="real", pairs_of=sweep.PAIRS, n_boot=50)
    section.update(device="a test CPU", utc="2026-01-02T03:04:05+00:00")
    rows = cunet.sweep_rows(section)
    assert rows[0]["steps"] is None and rows[0]["model"] == "real held-out digits"
    assert {(r["model"], r["steps"]) for r in rows[1:]} == {(m, k) for m in shift for k in shift[m]}
    assert cunet.fd_table(rows).shape == (2, 3)
    pairs = fd_sweep.pairs(section)
    m = cunet.measured_for_claims(params_rows=[], fd_rows=rows, timing_rows=[], device="a CPU", train_steps=1,
                                  fd_pairs=pairs, fd_source=cunet.fd_source(section))
    assert m["U-Net steps like best"] == [30] and m["cU-Net steps like best"] == [5]
    assert m["fd estimator"] == "bias-corrected FD" and m["fd n"] == 200
    verdicts = {r["key"]: r for r in judge(cunet.CLAIMS, m)}
    assert verdicts["fewer-steps"]["verdict"] == "reproduced"
    assert "FD measured on a test CPU, 2026-01-02" in verdicts["fewer-steps"]["why"]
    table = cunet.paired_table(rows, pairs)
    assert table.loc[30, "U-Net: FD - best's"] == "best" and table.loc[5, "cU-Net: FD - best's"] == "best"
    assert table.loc[10, "cU-Net / U-Net"] != "-"


@pytest.mark.parametrize("profile", ["quick", "full", "smoke"])
def test_every_profile_measures_enough_samples_for_intervals(profile):
    p = cunet.get_profile(profile)
    assert p.fd_boot >= 10 and p.demo_n <= p.fd_n
    assert profile == "smoke" or (p.fd_n >= 1000 and 30 in p.steps)
