"""Study 5's FD settings (`fastdiff.studies.performance_fd`): every ladder rung and architecture variant has a key
and a pair with its reference, a setting samples as notebook 05 samples, weights trained in a run are told apart by
their digest, and the measurement's FDs and paired ratios reach the notebook's rows with their intervals."""
import torch

from fastdiff.measure import fd_sweep
from fastdiff.measure.fd_sweep import FDSetting
from fastdiff.studies import performance, performance_fd
from fastdiff.studies.inference_ladder import LADDER


def test_every_rung_and_variant_has_a_key_and_is_paired_with_its_reference():
    assert [performance_fd.rung_key(r.name) for r in LADDER][0] == "fp32"
    assert len(set(performance_fd.RUNG_KEYS.values())) == len(LADDER)
    labels = list(performance.arch_zoo_models())
    assert [performance_fd.arch_key(label) for label in labels] == ["arch-baseline", "arch-bottleneck",
                                                                     "arch-fewer-levels"]
    assert {a for a, _ in performance_fd.PAIRS} == set(performance_fd.RUNG_KEYS.values()) - {"fp32"} | \
        {"arch-bottleneck", "arch-fewer-levels"}
    assert {b for _, b in performance_fd.PAIRS} == {"fp32", "arch-baseline"}


def _models(seed=0):
    small = dict(base_channels=8, norm_groups=4)
    overrides = {performance.ARCH_BASELINE: {}, **{label: v.overrides
                                                   for label, v in performance.ARCHITECTURE_VARIANTS.items()}}
    return {label: performance.build_architecture({**o, **small}, seed=seed).eval() for label, o in overrides.items()}


def test_settings_sample_the_notebooks_models_and_record_dtype_and_weights():
    rungs = [r for r in LADDER if r.name in ("fp32", "bf16 autocast", "im2col convolution")]
    models = _models()
    settings = performance_fd.fd_settings("cpu", models=models, rungs=rungs, ladder_steps=2, arch_steps=2, batch=3)
    assert [s.key for s in settings] == ["fp32", "bf16-autocast", "im2col", "arch-baseline", "arch-bottleneck",
                                         "arch-fewer-levels"]
    by = {s.key: s for s in settings}
    assert by["fp32"].sampling["dtype"] == "fp32" and by["bf16-autocast"].sampling["dtype"] == "bf16"
    assert "arithmetic" in by["bf16-autocast"].sampling and "arithmetic" not in by["fp32"].sampling
    assert by["arch-baseline"].sampling == {"sampler": "DDIM", "eta": 1.0, "steps": 2, "batch": 3, "dtype": "fp32"}
    assert by["fp32"].sha256 == by["arch-baseline"].sha256 and by["fp32"].entry is None      # the same weights
    x_T = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    fp32, im2col = by["fp32"].sample(x_T), by["im2col"].sample(x_T)
    assert fp32.shape == (4, 1, 16, 16) and fp32.abs().max() <= 1
    torch.testing.assert_close(im2col, fp32, atol=1e-4, rtol=0)            # the same maths, sums reordered
    assert torch.equal(by["arch-baseline"].sample(x_T), by["arch-baseline"].sample(x_T))   # seeded noise
    other = performance_fd.fd_settings("cpu", models=_models(seed=1), rungs=rungs[:1], ladder_steps=2, arch_steps=2)
    assert other[0].sha256 != by["fp32"].sha256                            # other weights: another fingerprint


def test_the_notebook_reads_the_committed_measurement_only_for_the_zoo_weights_at_its_steps():
    quick = performance.get_profile("quick")
    module, remeasure = performance_fd.notebook_study(quick, weights="zoo", models={}, rungs=LADDER, remeasure="auto")
    assert module is performance_fd and remeasure == "auto"
    stand_in, remeasure = performance_fd.notebook_study(quick, weights="train", models=_models(), rungs=LADDER[:2],
                                                        remeasure="auto")
    assert stand_in is not performance_fd and remeasure is True
    assert stand_in.STUDY == performance_fd.STUDY and stand_in.PAIRS == performance_fd.PAIRS
    smoke = performance.get_profile("smoke")
    _, remeasure = performance_fd.notebook_study(smoke, weights="zoo", models={}, rungs=LADDER, remeasure=False)
    assert remeasure is True                                                # other steps than the committed ones


def test_the_measurements_fds_and_ratios_reach_the_rows_with_their_intervals(tmp_path):
    x_T = torch.randn(40, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    settings = [FDSetting(k, k, {"scale": s}, lambda x, s=s: x * s) for k, s in
                (("fp32", 1.0), ("bf16-autocast", 1.1), ("arch-baseline", 1.0), ("arch-bottleneck", 2.0))]
    feats = lambda images: images.flatten(1)[:, :6]            # noqa: E731
    got = fd_sweep.collect(settings, feats, x_T=x_T, x_T_seed=0, cache=tmp_path, progress=False)
    ref = torch.randn(200, 6, generator=torch.Generator().manual_seed(1))
    stats = {"mu": ref.mean(0).double(), "sigma": torch.cov(ref.T).double()}
    section = fd_sweep.summarise(settings, got, ref_stats=stats, ref_features=ref, pairs_of=performance_fd.PAIRS,
                                 n_boot=20)
    ladder = performance_fd.with_fd([{"rung": "fp32"}, {"rung": "bf16 autocast"}, {"rung": "fp16 autocast"}], section,
                                    ladder=True)
    assert ladder[0]["FD (LeNet-MNIST)"].n == 40 and "FD / fp32" not in ladder[0]
    assert ladder[1]["FD / fp32"].low <= ladder[1]["FD / fp32"].value <= ladder[1]["FD / fp32"].high
    assert ladder[2] == {"rung": "fp16 autocast"}                          # not measured: left as it is
    arch = performance_fd.with_fd([{"model": performance.ARCH_BASELINE},
                                   {"model": list(performance.ARCHITECTURE_VARIANTS)[0]}], section, ladder=False)
    assert arch[1]["FD / baseline"].value > 1
    table = performance.ladder_table([{**r, "ms per call": 1.0} for r in ladder])
    assert table.loc["bf16 autocast", "n (FD)"] == 40 and "[" in table.loc["bf16 autocast", "FD / fp32"]
