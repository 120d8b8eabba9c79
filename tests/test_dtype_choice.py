"""The sampling precision follows the measurement (issue 30): bf16 only when it is faster than fp32 by the margin,
measured once per model, input shape and device, never timed where it is emulated; a fixed name is taken as given.
Timings are faked here (speed is measured in benchmarks/, never asserted in tests), except one real smoke call."""
import time

import pytest
import torch
from torch import nn

from fastdiff.measure import dtype_choice
from fastdiff.measure.dtype_choice import choose_dtype, model_fingerprint, resolve_dtype_for
from fastdiff.studies.common import setup
from fastdiff.unet import build_unet

CPU = torch.device("cpu")


class Scale(nn.Module):
    """A model(x, t) of one parameter: cheap to call, unregistered (fingerprinted by class and size)."""

    def __init__(self, n: int = 1):
        super().__init__()
        self.w = nn.Parameter(torch.ones(n))

    def forward(self, x, t, **cond):
        return x * self.w[0]


@pytest.fixture
def timings(monkeypatch):
    """Fake `interleaved`: each precision takes the milliseconds set in ``timings.ms``; ``timings.timed`` lists the
    precisions of every measurement. bf16 counts as native on this CPU unless a test says otherwise."""
    class Fake:
        ms = {"fp32": 10.0, "bf16": 5.0}
        timed: list[list[str]] = []

        @staticmethod
        def interleaved(calls, *, device, rounds, warmup, number):
            Fake.timed.append(list(calls))
            for fn in calls.values():                    # the calls are real and runnable
                fn()
            return {n: {"median_s": Fake.ms[n] / 1e3, "iqr_s": 0.0, "min_s": 0.0, "max_s": 0.0, "repeats": rounds,
                        "result": None} for n in calls}
    monkeypatch.setattr(dtype_choice, "interleaved", Fake.interleaved)
    monkeypatch.setattr(dtype_choice, "bf16_native", lambda device: True)
    return Fake


def example(batch=2):
    return torch.randn(batch, 1, 4, 4), torch.zeros(batch, dtype=torch.long)


def test_bf16_is_chosen_only_when_faster_by_the_margin(timings):
    model = Scale()
    record = choose_dtype(model, example(), device=CPU, cache=False)
    assert record["dtype"] == "bf16" and record["speedup"] == {"bf16": pytest.approx(2.0)}
    assert record["median_ms"] == {"fp32": pytest.approx(10.0), "bf16": pytest.approx(5.0)}
    assert record["measured"] and not record["cached"] and record["skipped"] == {}
    assert record["input_shape"] == [2, 1, 4, 4] and record["number"] >= 1 and record["device"].startswith("CPU")
    timings.ms = {"fp32": 10.0, "bf16": 9.5}                       # 1.05x: faster, but not by the margin
    record = choose_dtype(model, example(), device=CPU, cache=False)
    assert record["dtype"] == "fp32" and "below the 1.1x margin" in record["reason"]
    assert choose_dtype(model, example(), device=CPU, cache=False, margin=1.0)["dtype"] == "bf16"
    timings.ms = {"fp32": 10.0, "bf16": 12.0}                      # slower (the digits U-Net on AMX: 0.83x)
    assert choose_dtype(model, example(), device=CPU, cache=False)["dtype"] == "fp32"
    assert timings.timed == [["fp32", "bf16"]] * 4


def test_the_cache_measures_once_per_model_shape_and_device(timings):
    store, model = {}, Scale()
    first = choose_dtype(model, example(), device=CPU, cache=store)
    again = choose_dtype(Scale(), example(), device=CPU, cache=store)      # same architecture, other weights
    assert len(timings.timed) == 1 and again["cached"] and not first["cached"]
    assert again["dtype"] == first["dtype"] == "bf16" and again["median_ms"] == first["median_ms"]
    again["median_ms"]["fp32"] = 0.0                                        # editing a record leaves the cache
    assert choose_dtype(model, example(), device=CPU, cache=store)["median_ms"]["fp32"] == pytest.approx(10.0)
    stricter = choose_dtype(model, example(), device=CPU, cache=store, margin=3.0)   # re-decided, not re-timed
    assert stricter["dtype"] == "fp32" and stricter["cached"] and len(timings.timed) == 1
    choose_dtype(model, example(batch=8), device=CPU, cache=store)          # another input shape
    choose_dtype(Scale(3), example(), device=CPU, cache=store)              # another architecture (size)
    choose_dtype(model, example(), device=CPU, cache=False)                 # no cache
    assert len(timings.timed) == 4
    dtype_choice.clear_cache()
    choose_dtype(model, example(), device=CPU)
    choose_dtype(model, example(), device=CPU)                              # the module's own cache
    assert len(timings.timed) == 5
    dtype_choice.clear_cache()


def test_emulated_bf16_is_not_timed(timings, monkeypatch):
    monkeypatch.setattr(dtype_choice, "bf16_native", lambda device: False)
    monkeypatch.setattr(dtype_choice, "instruction_class", lambda: "AVX2")
    record = choose_dtype(Scale(), example(), device=CPU, cache=False)
    assert timings.timed == [["fp32"]] and record["dtype"] == "fp32"
    assert "emulated" in record["skipped"]["bf16"] and "AVX2" in record["skipped"]["bf16"]
    assert "25x" in record["skipped"]["bf16"] and record["speedup"] == {}
    dtype, why = resolve_dtype_for("auto", Scale(), example(), device=CPU, cache=False)   # auto: not even fp32 timed
    assert dtype is torch.float32 and not why["measured"] and "AVX2" in why["reason"]
    assert len(timings.timed) == 1


def test_auto_follows_the_measurement_and_fixed_names_are_honoured(timings):
    model = Scale()
    assert resolve_dtype_for("auto", model, example(), device=CPU, cache=False)[0] is torch.bfloat16
    timings.ms = {"fp32": 10.0, "bf16": 12.0}
    dtype, record = resolve_dtype_for("auto", model, example(), device=CPU, cache=False)
    assert dtype is torch.float32 and record["median_ms"]["bf16"] == pytest.approx(12.0)
    for name, expected in (("bf16", torch.bfloat16), ("fp32", torch.float32), ("fp16", torch.float16)):
        dtype, record = resolve_dtype_for(name, model, device=CPU)          # no example needed: nothing is timed
        assert dtype is expected and record == {"dtype": name, "reason": f"{name} as asked", "measured": False}
    assert len(timings.timed) == 2


def test_the_notebook_run_resolves_its_dtype_per_model(timings, tmp_path, capsys):
    model = Scale()
    auto = setup("test", profile="smoke", dtype="auto", output_dir=tmp_path, quiet=True)
    assert auto.dtype_asked == "auto"
    trained_in = auto.dtype
    assert auto.inference_dtype(model, example(), cache=False) is torch.bfloat16
    assert "sampling dtype bf16: bf16 ran 2.00x" in capsys.readouterr().out
    # from here the run samples, and labels what it samples, in the chosen precision; training's stays as it was
    assert auto.dtype is torch.bfloat16 and auto.dtype_name == "bf16" and auto.env["dtype"] == "bf16"
    assert "2.00x" in auto.env["dtype_choice"] and auto.train_dtype is trained_in
    timings.ms = {"fp32": 10.0, "bf16": 20.0}                    # another model, slower in bf16: fp32 again
    assert auto.inference_dtype(Scale(3), example(), cache=False, quiet=True) is torch.float32
    assert auto.env["dtype"] == "fp32" and "below the 1.1x margin" in auto.env["dtype_choice"]
    kept = setup("test", profile="smoke", dtype="auto", output_dir=tmp_path, quiet=True)
    timings.ms = {"fp32": 10.0, "bf16": 5.0}
    assert kept.inference_dtype(model, example(), cache=False, quiet=True, adopt=False) is torch.bfloat16
    assert kept.dtype is trained_in and "dtype_choice" not in kept.env
    fixed = setup("test", profile="smoke", dtype="fp32", output_dir=tmp_path, quiet=True)
    assert fixed.inference_dtype(model, example(), quiet=True) is torch.float32
    assert len(timings.timed) == 3
    assert "(as asked)" in fixed.banner() and "time fp32 against bf16" in auto.banner()


def test_bad_inputs_are_named(timings):
    model = Scale()
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        resolve_dtype_for("fp8", model, example(), device=CPU)
    with pytest.raises(TypeError, match="dtype must be a name"):
        resolve_dtype_for(torch.bfloat16, model, example(), device=CPU)
    with pytest.raises(TypeError, match="candidates must be a list"):
        choose_dtype(model, example(), device=CPU, candidates="bf16")
    with pytest.raises(ValueError, match="unknown candidate dtype"):
        choose_dtype(model, example(), device=CPU, candidates=["int8"])
    for margin in (0.5, True, "1.1", float("nan")):
        with pytest.raises(ValueError, match="margin must be a number >= 1"):
            choose_dtype(model, example(), device=CPU, margin=margin)
    with pytest.raises(ValueError, match="rounds must be an integer >= 1"):
        choose_dtype(model, example(), device=CPU, rounds=0)
    with pytest.raises(TypeError, match="example must be \\(x, t\\)"):
        choose_dtype(model, (torch.zeros(1, 1, 4, 4),), device=CPU)
    with pytest.raises(ValueError, match="or batch_size="):
        choose_dtype(model, device=CPU)
    with pytest.raises(TypeError, match="has no example_inputs"):
        choose_dtype(model, device=CPU, batch_size=2)
    with pytest.raises(TypeError, match="floating-point tensor"):
        choose_dtype(model, (torch.zeros(1, 1, 4, 4, dtype=torch.long), 0), device=CPU)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        choose_dtype(lambda x, t: x, example(), device=CPU)
    with pytest.raises(TypeError, match="cache must be"):
        choose_dtype(model, example(), device=CPU, cache="yes")
    with pytest.raises(TypeError, match="device must be"):
        choose_dtype(model, example(), device=0)
    assert timings.timed == []


def test_a_real_tiny_unet_gets_a_valid_record_quickly():
    model = build_unet("tiny", image_size=16, channel_mult=(1, 2, 2)).train()
    start = time.perf_counter()
    record = choose_dtype(model, device=CPU, batch_size=2, rounds=2, cache=False)
    assert time.perf_counter() - start < 10 and model.training           # training mode restored
    assert record["dtype"] in ("fp32", "bf16") and record["model"].startswith("unet:")
    timed = set(record["median_ms"])
    assert "fp32" in timed and timed | set(record["skipped"]) == {"fp32", "bf16"}
    assert all(ms > 0 for ms in record["median_ms"].values()) and record["input_shape"] == [2, 1, 16, 16]
    assert set(record["speedup"]) == timed - {"fp32"}
    assert model_fingerprint(model) == record["model"]
    assert model_fingerprint(build_unet("tiny", image_size=16, channel_mult=(1, 2, 2), base_channels=16)) != record["model"]


class NoBf16(Scale):
    """A model whose bf16 autocast fails (a build or device that cannot run it)."""

    def forward(self, x, t, **cond):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("no bf16 kernel here\nmore detail")
        return x * self.w[0]


def test_a_precision_that_fails_is_skipped_not_fatal(timings):
    record = choose_dtype(NoBf16(), example(), device=CPU, cache=False)
    assert record["dtype"] == "fp32" and timings.timed == [["fp32"]]
    assert record["skipped"]["bf16"] == "bf16 failed here (no bf16 kernel here): not measured"
