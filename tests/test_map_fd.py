"""The digits map's FD measurement (`fastdiff.studies.speed_quality_map_fd`, study 07 of benchmarks/digits_fd.py):
every map point is a setting sampled as the map samples it, every point is paired with the reference, the headline
reads the paired ratios' intervals (a faster point whose interval straddles the tolerance is inconclusive, never
chosen), and FDs of another machine are never joined with these times."""
import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from fastdiff.devices import device_name
from fastdiff.diffusion import make_schedule
from fastdiff.measure import fd_sweep
from fastdiff.measure.intervals import Estimate
from fastdiff.measure.pareto import headline, headline_with_intervals
from fastdiff.methods.layer_skipping import LayerSkippingUNet
from fastdiff.studies import report
from fastdiff.studies import speed_quality_map as M
from fastdiff.studies import speed_quality_map_fd as F
from fastdiff.unet import build_unet

ROOT = Path(__file__).resolve().parents[1]


def tiny_models():
    torch.manual_seed(0)
    unet = build_unet("tiny", image_size=16, channel_mult=(1, 2, 2)).eval()
    return {"U-Net": unet, "U-Net, skip-trained": LayerSkippingUNet(build_unet("tiny", image_size=16,
                                                                              channel_mult=(1, 2, 2))).eval()}


def _benchmark(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_quick_point_is_a_setting_with_a_unique_key_paired_with_the_reference():
    points = M.POINTS["quick"] + M.QUALITY_ONLY["quick"]          # the map's, and those scored for quality alone
    keys = F.keys(points)
    assert list(keys) == [p.label for p in points] and len(set(keys.values())) == len(points)
    assert F.REF == keys[M.REFERENCE.label] == "ddpm1000"
    assert {a for a, b in F.PAIRS if b == F.REF} == set(keys.values()) - {F.REF}
    for a, b in (("DPM-Solver++(2M) 20", "DPM-Solver++(2M) 50"), ("Heun (Karras) 10", "Heun (Karras) 20"),
                 ("DDPM 250", "DDPM 1000"), ("DeepCache N=2 + DPM-Solver++ 20", "DPM-Solver++(2M) 20")):
        assert (keys[a], keys[b]) in F.PAIRS                      # the scatter issue 26 names, and a method's base
    assert len(set(F.PAIRS)) == len(F.PAIRS) and all(a in keys.values() and b in keys.values() for a, b in F.PAIRS)
    assert _benchmark("digits_fd").STUDIES["07"] == "speed_quality_map_fd" and F.STUDY == M.FD_STUDY


def test_settings_sample_as_the_map_samples_from_the_same_x_T():
    models, schedule = tiny_models(), make_schedule("linear")
    points = list(M.POINTS["smoke"]) + [M.Point("bf16 autocast, DDIM 2", "x", steps=2, rung="bf16 autocast")]
    settings = F.fd_settings("cpu", points=points, models=models, batch=2)
    assert [s.key for s in settings] == [F.point_key(p) for p in points] and settings[0].entry == "given in this run"
    by = {s.label: s for s in settings}
    assert by["bf16 autocast, DDIM 2"].sampling["dtype"] == "bf16" and "arithmetic" in by["bf16 autocast, DDIM 2"]\
        .sampling and "arithmetic" not in by["DDIM 3"].sampling
    assert by["DeepCache N=2, DDIM 3"].sampling["cache_interval"] == 2
    assert by["DDIM 3"].sampling["options"] == {"eta": 0.0, "clip_x0": True}      # defaults too: a changed one is new
    rows = M.measure_map(points, models, schedule, lambda im: {M.METRIC: float(im.double().mean())}, n=4,
                         batch_size=2, rounds=1, device="cpu", progress=False)
    x_T = torch.randn((4, 1, 16, 16), generator=torch.Generator().manual_seed(0))     # fd_sweep's x_T, seed 0
    for r in rows:                                              # the same images as the map's quality run
        assert float(by[r["label"]].sample(x_T).double().mean()) == pytest.approx(r[M.METRIC], abs=1e-6)
    with pytest.raises(ValueError, match="need the models"):
        F.fd_settings("cpu", points=points, models={"U-Net": models["U-Net"]})


def est(value, low, high, n=1000):
    return Estimate(value, low, high, n, "basic")


def test_the_headline_is_the_fastest_point_whose_whole_ratio_interval_holds():
    ref = {"label": "DDPM 1000", "ms": 100.0}
    rows = [{"label": "straddles", "ms": 1.0, "r": est(1.08, 1.02, 1.15)},
            {"label": "holds", "ms": 2.0, "r": est(1.03, 0.98, 1.09)},
            {"label": "too far", "ms": 0.5, "r": est(1.30, 1.20, 1.40)},
            {"label": "holds, slower", "ms": 3.0, "r": est(1.0, 0.95, 1.05)},
            {"label": "straddles, slower", "ms": 4.0, "r": est(1.1, 1.05, 1.12)},
            {"label": "unmeasured", "ms": 0.1}]
    got = headline_with_intervals(rows, ref, x="ms", ratio="r", tolerance=0.10)
    assert got["headline"]["label"] == "holds" and got["headline"]["speed-up"] == pytest.approx(50.0)
    assert [r["label"] for r in got["inconclusive"]] == ["straddles"] and got["limit"] == pytest.approx(1.1)
    none = headline_with_intervals(rows[:1] + rows[2:3], ref, x="ms", ratio="r")
    assert none["headline"] is None and [r["label"] for r in none["inconclusive"]] == ["straddles"]
    # plain FDs would have chosen the straddling point (its value 1.08 is within 10%)
    assert headline([{**r, "FD": r["r"].value} for r in rows[:2]], {**ref, "FD": 1.0}, x="ms", y="FD")["label"] \
        == "straddles"


def _section(settings, device: str, *, n_boot=20):
    """A study-07 section of digits_fd.json from toy features of the settings' samples (4 pixels per image)."""
    x_T = torch.randn((8, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    feats = lambda images: images.flatten(1)[:, :6]            # noqa: E731
    got = fd_sweep.collect(settings, feats, x_T=x_T, x_T_seed=0, cache=_section.cache, progress=False)
    ref = torch.randn(200, 6, generator=torch.Generator().manual_seed(1))
    stats = {"mu": ref.mean(0).double(), "sigma": torch.cov(ref.T).double()}
    pairs = [(s.key, settings[0].key) for s in settings[1:]]
    section = fd_sweep.summarise(settings, got, ref_stats=stats, ref_features=ref, floor_features=ref[:50],
                                 pairs_of=pairs, n_boot=n_boot)
    return {**section, "n": 8, "n_boot": n_boot, "utc": "2026-12-06T00:00:00+00:00", "device": device,
            "reference": "toy"}


def test_the_map_times_here_and_reads_fds_intervals_and_ratios_from_the_measurement(tmp_path):
    _section.cache = tmp_path / "cache"
    models = tiny_models()
    points = M.POINTS["smoke"][:3]
    here = device_name(torch.device("cpu"))
    section = _section(F.fd_settings("cpu", points=points, models=models, batch=2), M.machine(here) + " (7 threads)")
    part = M.digits_map(points, batch_size=2, rounds=1, models=models, fd=section, progress=False)
    rows = part["rows"]
    assert all(isinstance(r[M.FD_INTERVAL], Estimate) and r["n"] == 8 for r in rows)
    assert M.RATIO not in rows[0] and all(isinstance(r[M.RATIO], Estimate) for r in rows[1:])
    assert rows[1][M.METRIC] == rows[1][M.FD_INTERVAL].value and part["fd"]["device"] == section["device"]
    assert part["floor"] == section["floor"]["fd"]["value"] and part["n"] == 8
    assert set(part) >= {"headline", "inconclusive", "front", "limit"}
    # written as JSON and read back, the intervals are Estimates again; the report shows them
    back = M.estimates_in(json.loads(json.dumps(part, default=dataclasses.asdict)))
    assert back["rows"][1][M.RATIO] == rows[1][M.RATIO]
    assert "FD measured on" in report.map_lines(back)[0] and "[" in report.map_table(back["rows"])[M.RATIO].iloc[1]
    assert "[" in report.headline_line(back)
    table = F.pair_table(section, pairs=[(points[1].label, points[0].label), ("not", "measured")])
    assert list(table.index) == [(points[1].label, points[0].label)] and "[" in table.iloc[0]["FD(a) / FD(b), paired"]
    # another machine's measurement is refused before anything is timed
    other = {**section, "device": "CPU: Some Other CPU, AVX2 (2 threads)"}
    with pytest.raises(ValueError, match="one machine per verdict"):
        M.digits_map(points, batch_size=2, rounds=1, models=models, fd=other, progress=False)
    with pytest.raises(ValueError, match="one machine per verdict"):          # nor joined in a file
        M.fd_source({**part, "fd": {**part["fd"], "device": other["device"]}})


def test_the_reader_refuses_a_section_of_another_cpu_model_and_names_the_command(tmp_path, capsys):
    here = device_name(torch.device("cpu"))
    section = {"device": M.machine(here) + " (1 thread)", "settings": {}, "utc": "2026-12-06T00:00:00+00:00"}
    path = tmp_path / "digits_fd.json"
    path.write_text(json.dumps({"benchmark": "digits_fd", "studies": {M.FD_STUDY: section}}))
    assert M.read_fd(path, device="cpu") == section                       # the same CPU model, other threads
    path.write_text(json.dumps({"benchmark": "digits_fd", "studies": {
        M.FD_STUDY: {**section, "device": "CPU: AMD EPYC, AVX2 (2 threads)" if "AVX2" not in here
                     else "CPU: Intel Xeon, AVX-512 BF16 (2 threads)"}}}))
    with pytest.raises(ValueError, match="one machine per verdict"):
        M.read_fd(path, device="cpu")
    path.write_text(json.dumps({"benchmark": "digits_fd", "studies": {}}))
    with pytest.raises(ValueError, match="--study 07"):
        M.read_fd(path, device="cpu")
    # the benchmark refuses it before minutes of timing
    path.write_text(json.dumps({"benchmark": "digits_fd", "studies": {M.FD_STUDY: {
        **section, "device": "CPU: Another, AVX2 (2 threads)"}}}))
    with pytest.raises(SystemExit):
        _benchmark("report_map").main(["--parts", "digits", "--device", "cpu", "--fd-from", str(path), "--out",
                                       str(tmp_path)])
    assert "one machine per verdict" in capsys.readouterr().err
    assert not (tmp_path / "cpu").exists()


def test_a_map_without_intervals_says_so_and_points_to_the_measurement(tmp_path):
    here = device_name(torch.device("cpu"))
    part = {"device": "CPU: Old, AVX2 (2 threads)", "n": 300}
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "digits_fd.json").write_text(json.dumps({"benchmark": "digits_fd", "studies": {
        M.FD_STUDY: {"device": here, "utc": "2026-12-06T00:00:00+00:00"}}}))
    line = M.fd_source(part, results_dir=tmp_path)
    assert "n = 300, no intervals" in line and "not joined" in line
    assert "--fd-from" in M.fd_source({**part, "device": here}, results_dir=tmp_path)
    assert M.fd_source(part, results_dir=tmp_path / "none").endswith("no intervals")
