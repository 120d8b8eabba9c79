"""The spread of retraining (`fastdiff.measure.seed_spread`, `benchmarks/seed_spread.py`) on tiny random models:
the spread summary is right, identical replicas have none, generation is deterministic, missing replicas are
reported, and the results file is plain, complete JSON."""
import copy
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from fastdiff.diffusion import make_schedule
from fastdiff.measure.intervals import frechet_distance_features
from fastdiff.measure.seed_spread import fixed_noise, generate, lenet_features, seed_spread, spread
from fastdiff.methods.layer_skipping import LayerSkippingUNet
from fastdiff.portable_json import save_results
from fastdiff.sampling import DDIM, DDPM
from fastdiff.unet import build_unet

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_spread.py"


def load_benchmark():
    """benchmarks/seed_spread.py as a module (benchmarks/ is no package), registered so its dataclass resolves."""
    name = "seed_spread_benchmark"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARK)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def tiny(seed: int):
    torch.manual_seed(seed)
    return build_unet("tiny").eval()                  # 8x8, one channel


@pytest.fixture(scope="module")
def scorer():
    reference = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return reference, *lenet_features(reference)


SAMPLING = dict(schedule=make_schedule("linear", 100), sampler=DDPM, steps=2, batch_size=8)


def test_spread_of_known_values():
    s = spread({0: 4.0, 1: 6.0, 2: 5.0})
    assert s["seeds"] == [0, 1, 2] and s["n_seeds"] == 3
    assert s["mean"] == pytest.approx(5.0) and s["min"] == 4.0 and s["max"] == 6.0
    assert s["std"] == pytest.approx(1.0)             # sample standard deviation (ddof 1)
    assert s["largest_gap"] == pytest.approx(2.0) and s["largest_gap_seeds"] == [0, 1]
    one = spread({1: 3.5})
    assert one["mean"] == one["min"] == one["max"] == 3.5 and one["std"] is None and one["largest_gap"] == 0
    assert spread({})["n_seeds"] == 0 and spread({})["mean"] is None


def test_identical_replicas_have_no_spread_and_generation_repeats(scorer):
    _, features, ref = scorer
    model = tiny(0)
    x_T = fixed_noise(16, (1, 8, 8))
    assert torch.equal(x_T, fixed_noise(16, (1, 8, 8)))
    r = seed_spread({0: model, 1: copy.deepcopy(model), 2: model}, features, ref, x_T=x_T, n_boot=20, progress=False,
                    **SAMPLING)
    values = [e.value for e in r["fd"].values()]
    assert values[0] == values[1] == values[2] and r["missing"] == []
    assert r["spread"]["largest_gap"] == 0 and r["spread"]["std"] == 0 and r["spread"]["mean"] == pytest.approx(values[0], rel=1e-12)
    e = r["fd"][0]
    assert e.n == 16 and e.method.startswith("bias-corrected") and e.low <= e.high
    # the plug-in FD is the FD of the generated images' features
    images = generate(model, x_T, **SAMPLING)
    assert e.uncorrected == pytest.approx(frechet_distance_features(features(images), ref), rel=1e-9)


def test_different_replicas_spread_and_missing_ones_are_listed(scorer):
    _, features, ref = scorer
    x_T = fixed_noise(16, (1, 8, 8))
    r = seed_spread({0: tiny(0), 1: tiny(1), 2: None}, features, ref, x_T=x_T, n_boot=20, progress=False, **SAMPLING)
    assert r["missing"] == [2] and sorted(r["fd"]) == [0, 1]
    v0, v1 = r["fd"][0].value, r["fd"][1].value
    assert v0 != v1 and r["spread"]["n_seeds"] == 2 and r["spread"]["largest_gap"] == pytest.approx(abs(v0 - v1))
    assert r["spread"]["std"] == pytest.approx(abs(v0 - v1) / math.sqrt(2))
    assert r["sampling_half_width"] > 0


def test_a_sampling_function_is_a_replica_too(scorer):
    _, features, ref = scorer
    x_T = fixed_noise(12, (1, 8, 8))
    r = seed_spread({0: lambda x: x.clamp(-1, 1), 1: lambda x: x.clamp(-1, 1)}, features, ref, x_T=x_T, n_boot=20,
                    progress=False)
    assert r["spread"]["largest_gap"] == 0
    with pytest.raises(TypeError, match="model .nn.Module. or a sampling function"):
        generate(42, x_T)
    with pytest.raises(ValueError, match="schedule, sampler and steps"):
        generate(tiny(0), x_T)


def test_the_calibration_set_samples_as_the_studies_do():
    bench = load_benchmark()
    calibs = bench.calibrations()
    assert list(calibs) == ["skipping/baseline-plain", "skipping/zero-consistent-c2", "cunet/unet", "cunet/cunet"]
    plain, zero = calibs["skipping/baseline-plain"], calibs["skipping/zero-consistent-c2"]
    assert plain.c == 0 and zero.c == 2 and zero.steps == 50 and dict(zero.sampler.options) == {"eta": 1.0}
    assert calibs["cunet/unet"].sampler is DDPM and calibs["cunet/unet"].c is None and calibs["cunet/cunet"].steps == 50


def test_the_results_file_is_plain_and_complete_and_missing_replicas_are_notes(tmp_path, scorer):
    bench = load_benchmark()
    reference = scorer[0]
    skipping = LayerSkippingUNet(tiny(3), skip_type="zero").eval()
    models = {"tiny/plain": tiny(0), "tiny/plain-seed1": tiny(1), "tiny/plain-seed2": tiny(2), "tiny/skip": skipping}
    calibs = {"tiny/plain": bench.Calibration("study", "plain", DDPM, 2, 8),
              "tiny/skip": bench.Calibration("study", "skip", DDIM.with_options(eta=1.0), 2, 8, c=2.0)}

    def load(name, device):
        return None if name not in models else (models[name], f"sha-of-{name}")
    result = bench.measure(calibs, n=12, device="cpu", n_boot=20, load=load, reference=reference, progress=False)
    path = save_results(tmp_path / "cpu", bench.NAME, result)
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))
    assert data["benchmark"] == "seed_spread" and data["n"] == 12 and data["replica_seeds"] == [0, 1, 2]
    assert {"device", "utc", "torch"} <= set(data["environment"]) and "flags" in data["cpu"]
    plain = data["entries"]["tiny/plain"]
    assert plain["missing"] == [] and plain["spread"]["n_seeds"] == 3 and plain["sampling"]["sampler"] == "DDPM"
    for seed, rec in plain["seeds"].items():
        assert rec["entry"] == ("tiny/plain" if seed == "0" else f"tiny/plain-seed{seed}")
        assert rec["sha256"] == f"sha-of-{rec['entry']}"
        assert set(rec["fd"]) == {"value", "low", "high", "n", "method", "uncorrected"} and rec["fd"]["n"] == 12
    values = [rec["fd"]["value"] for rec in plain["seeds"].values()]
    assert plain["spread"]["mean"] == pytest.approx(sum(values) / 3)
    assert plain["spread"]["largest_gap"] == pytest.approx(max(values) - min(values))
    skip = data["entries"]["tiny/skip"]        # the replicas seed1 and seed2 are not there: noted, not a crash
    assert skip["missing"] == ["tiny/skip-seed1", "tiny/skip-seed2"] and skip["spread"]["n_seeds"] == 1
    assert skip["seeds"]["1"]["fd"] is None and "not in the zoo yet" in skip["seeds"]["1"]["note"]
    assert skip["sampling"]["c"] == 2.0 and skip["seeds"]["0"]["fd"]["value"] >= 0
    assert "non-finite" not in data
