"""The measure-once FD sweep (`fastdiff.measure.fd_sweep`): cached features resume, fingerprints refuse stale
caches, paired intervals over common samples, and the notebook reader refuses a measurement of other weights."""
import json

import pytest
import torch

from fastdiff.measure import fd_sweep
from fastdiff.measure.fd_sweep import FDSetting


def features(images):
    return images.flatten(1)[:, :6]


def setting(key, scale, calls, *, n=None, sha="a" * 64):
    def sample(x_T):
        calls.append(key)
        return x_T * scale
    return FDSetting(key, f"scale {scale}", {"scale": scale}, sample, entry="toy/entry", sha256=sha, n=n)


@pytest.fixture
def x_T():
    return torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(0))


def test_collect_caches_features_and_a_second_run_samples_nothing(tmp_path, x_T):
    calls = []
    settings = [setting("a", 1.0, calls), setting("b", 0.5, calls, n=32)]
    first = fd_sweep.collect(settings, features, x_T=x_T, x_T_seed=0, cache=tmp_path, progress=False)
    assert calls == ["a", "b"] and first["b"]["n"] == 32 and first["b"]["features"].shape == (32, 6)
    again = fd_sweep.collect(settings, features, x_T=x_T, x_T_seed=0, cache=tmp_path, progress=False)
    assert calls == ["a", "b"]
    assert torch.equal(again["a"]["features"], first["a"]["features"])


def test_other_weights_or_a_damaged_cache_file_are_sampled_again(tmp_path, x_T):
    calls = []
    fd_sweep.collect([setting("a", 1.0, calls)], features, x_T=x_T, x_T_seed=0, cache=tmp_path, progress=False)
    fd_sweep.collect([setting("a", 1.0, calls, sha="b" * 64)], features, x_T=x_T, x_T_seed=0, cache=tmp_path,
                     progress=False)
    (tmp_path / "a.pt").write_bytes(b"not a torch file")
    got = fd_sweep.collect([setting("a", 1.0, calls)], features, x_T=x_T, x_T_seed=0, cache=tmp_path, progress=False)
    assert calls == ["a", "a", "a"] and got["a"]["features"].shape == (64, 6)


def test_only_samples_the_named_settings_and_bad_keys_are_refused(tmp_path, x_T):
    calls = []
    settings = [setting("a", 1.0, calls), setting("b", 0.5, calls)]
    got = fd_sweep.collect(settings, features, x_T=x_T, x_T_seed=0, cache=tmp_path, only={"b"}, progress=False)
    assert calls == ["b"] and set(got) == {"b"}
    with pytest.raises(ValueError, match="unknown setting"):
        fd_sweep.collect(settings, features, x_T=x_T, x_T_seed=0, cache=tmp_path, only={"c"}, progress=False)
    with pytest.raises(ValueError, match="unique"):
        fd_sweep.collect(settings + [setting("a", 2.0, calls)], features, x_T=x_T, x_T_seed=0, cache=tmp_path,
                         progress=False)


def chunked(key, calls, *, n=None, fail_at=None):
    def sample(x_T, start=0):
        if start == fail_at:
            raise KeyboardInterrupt("SIGTERM")
        calls.append(start)
        return x_T * 2 + start     # depends on the chunk's place, as a sampler seeded by index does
    return FDSetting(key, "chunked", {"scale": 2}, sample, entry="toy/entry", sha256="a" * 64, n=n, chunk=16)


def test_a_chunked_setting_keeps_finished_chunks_and_extends_a_smaller_earlier_run(tmp_path, x_T):
    for bad in (0, -4, 2.5, True, "16"):
        with pytest.raises(ValueError, match="chunk must be a positive"):
            FDSetting("c", "chunked", {}, lambda x, start=0: x, chunk=bad)
    calls = []
    whole = fd_sweep.collect([chunked("c", calls)], features, x_T=x_T, x_T_seed=0, cache=tmp_path / "w",
                             progress=False)["c"]
    assert calls == [0, 16, 32, 48] and whole["n"] == 64
    # an interrupted run keeps its finished chunks, and the next resumes after them
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        fd_sweep.collect([chunked("c", calls, fail_at=32)], features, x_T=x_T, x_T_seed=0, cache=tmp_path,
                         progress=False)
    assert calls == [0, 16] and (tmp_path / "c.part.pt").is_file() and not (tmp_path / "c.pt").exists()
    calls.clear()
    got = fd_sweep.collect([chunked("c", calls)], features, x_T=x_T, x_T_seed=0, cache=tmp_path, progress=False)
    assert calls == [32, 48] and torch.equal(got["c"]["features"], whole["features"])
    assert not (tmp_path / "c.part.pt").exists()
    # an earlier complete run on the first 32 x_T is extended, not sampled again; one of 24 (not whole chunks) is not
    for n, resumed in ((32, [32, 48]), (24, [0, 16, 32, 48])):
        calls.clear()
        cache = tmp_path / f"n{n}"
        fd_sweep.collect([chunked("c", calls, n=n)], features, x_T=x_T, x_T_seed=0, cache=cache, progress=False)
        calls.clear()
        got = fd_sweep.collect([chunked("c", calls)], features, x_T=x_T, x_T_seed=0, cache=cache, progress=False)
        assert calls == resumed and torch.equal(got["c"]["features"], whole["features"])


def test_summarise_gives_intervals_and_paired_gaps_over_the_common_samples(tmp_path, x_T):
    calls = []
    settings = [setting("a", 1.0, calls), setting("b", 0.5, calls, n=32), setting("c", 2.0, calls)]
    got = fd_sweep.collect(settings[:2], features, x_T=x_T, x_T_seed=0, cache=tmp_path, progress=False)
    ref = features(torch.randn(200, 1, 4, 4, generator=torch.Generator().manual_seed(1)))
    stats = {"mu": ref.double().mean(0), "sigma": torch.cov(ref.double().T)}
    out = fd_sweep.summarise(settings, got, ref_stats=stats, ref_features=ref, pairs_of=[("a", "b"), ("a", "c")],
                             n_boot=50)
    assert out["missing"] == ["c"] and list(out["pairs"]) == ["a|b"]
    assert out["pairs"]["a|b"]["n"] == 32
    est = fd_sweep.estimates(out)
    assert est["a"].low <= est["a"].value <= est["a"].high and est["b"].n == 32
    plug = fd_sweep.estimates(out, plug_in=True)["a"]
    assert plug.value == pytest.approx(est["a"].uncorrected)
    assert plug.high - plug.low == pytest.approx(est["a"].high - est["a"].low)
    pair = fd_sweep.pairs(out)[("a", "b")]
    assert pair["ratio"].low <= pair["ratio"].high and pair["difference"].n == 32
    assert out["settings"]["a"]["kid"]["subset_size"] == 64


def _committed(root, sha):
    section = {"settings": {"a": {"label": "a", "sampling": {}, "entry": "toy/entry", "sha256": sha, "n": 4,
                                  "seconds": 1.0, "fd": {"value": 1.0, "low": 0.5, "high": 1.5, "n": 4, "method": "m",
                                                         "uncorrected": 1.2},
                                  "kid": {"mean": 0.0, "std": 0.0, "subset_size": 4, "subsets": 100}}},
               "pairs": {}, "floor": None, "missing": [], "n": 4, "n_boot": 10, "utc": "2026-12-06T00:00:00+00:00",
               "reference": "toy", "device": "CPU: toy"}
    (root / "cpu").mkdir(parents=True)
    (root / "cpu" / "digits_fd.json").write_text(json.dumps(
        {"benchmark": "digits_fd", "environment": {"device": "CPU: toy", "utc": "2026-12-06"},
         "studies": {"99_toy": section}}))


class Toy:
    STUDY = "99_toy"


class Other:
    STUDY = "98_other"


def test_the_notebook_reader_refuses_other_weights_and_names_the_command(tmp_path, monkeypatch):
    class Entry:
        sha256 = "a" * 64
    monkeypatch.setattr("fastdiff.zoo.entries", lambda: {"toy/entry": Entry()})
    _committed(tmp_path, "a" * 64)
    env, section = fd_sweep.load_or_measure("false", Toy, profile="quick", device="cpu", root=tmp_path)
    assert env["device"] == "CPU: toy" and "a" in section["settings"]
    assert "measured on CPU: toy" in fd_sweep.header({"environment": env, "studies": {"99_toy": section}}, "99_toy")
    with pytest.raises(FileNotFoundError, match="--study 98"):
        fd_sweep.load_or_measure("auto", Other, profile="quick", device="cpu", root=tmp_path)
    Entry.sha256 = "b" * 64
    with pytest.raises(ValueError, match="other weights"):
        fd_sweep.load_or_measure(False, Toy, profile="quick", device="cpu", root=tmp_path)
    with pytest.raises(ValueError, match="remeasure"):
        fd_sweep.load_or_measure("maybe", Toy, profile="quick", device="cpu", root=tmp_path)


def test_a_committed_rows_precision_is_its_measurements_not_the_notebooks():
    section = {"settings": {"a": {"sampling": {"steps": 5}}, "b": {"sampling": {"dtype": "bf16"}}}}
    assert fd_sweep.sampled_dtype(section, "a") == "fp32" and fd_sweep.sampled_dtype(section, "b") == "bf16"
    assert fd_sweep.sampled_dtype(section) == "mixed" and fd_sweep.sampled_dtype({"settings": {}}) == "fp32"
