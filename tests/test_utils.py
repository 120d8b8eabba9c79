import json

import pytest
import torch

from fastdiff.devices import device_name, environment, instruction_class, resolve_device, resolve_dtype
from fastdiff.diffusion import make_schedule
from fastdiff.files import atomic_write
from fastdiff.portable_json import save_results
from fastdiff.studies.diffusion_basics import border_deviation, default_runs, eta_runs, get_profile, sampling_sweep


def test_device_and_dtype_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_dtype("fp32", torch.device("cpu")) is torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("fp8", torch.device("cpu"))


def test_results_json_carries_the_environment(tmp_path):
    env = environment(torch.device("cpu"), torch.bfloat16)
    assert env["dtype"] == "bf16" and env["device"].startswith("CPU") and env["torch"] == torch.__version__
    path = save_results(tmp_path / "r", "00_x", {"environment": env, "t": torch.tensor([1.5])})
    assert json.loads(path.read_text())["t"] == [1.5]


def test_profiles_and_overrides():
    p = get_profile("quick", train_steps=5, n_samples=2, ddim_steps=None)
    assert p.train.steps == 5 and p.n_samples == 2 and p.ddim_steps == (100, 50, 20, 10)
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("medium")
    for given in ([50, 10], "50,10", "[50, 10]", (50, 10)):
        assert get_profile("quick", ddim_steps=given).ddim_steps == (50, 10)
    assert get_profile("quick", ddim_steps=20).ddim_steps == (20,)
    with pytest.raises(ValueError, match="integers"):
        get_profile("quick", ddim_steps="ten")


def test_border_deviation():
    img = -torch.ones(2, 1, 32, 32)
    img[:, :, 2:-2, 2:-2] = 1  # the digit's area does not count
    assert border_deviation(img) == 0
    img[:, :, 0, :] = 1
    assert border_deviation(img) == pytest.approx(2 * 32 / (32 * 32 - 28 * 28))


def test_sampling_sweep_rows(tiny_model):
    s = make_schedule("linear", 20)
    samples, rows = sampling_sweep(tiny_model, s, shape=(2, 1, 8, 8), runs=default_runs(20, (5, 2)),
                                   device=torch.device("cpu"), progress=False)
    assert list(samples) == ["DDPM 20", "DDIM 5, η=0", "DDIM 2, η=0"]
    assert [r["steps"] for r in rows] == [20, 5, 2] and rows[0]["speedup"] == 1.0
    assert all(r["median_ms"] > 0 and r["ms_per_image"] == pytest.approx(r["median_ms"] / 2) and r["dtype"] == "fp32" for r in rows)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = atomic_write(tmp_path / "a.bin", lambda f: f.write(b"old"))

    def fail_halfway(f):
        f.write(b"half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail_halfway)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # no temporary left behind


def test_sweep_images_equal_a_single_sampler_call(tiny_model):
    """Timed repeats reseed, so the kept images are exactly what one plain sampler call gives."""
    from fastdiff.diffusion import respace, space_timesteps
    from fastdiff.sampling import sample_ddim
    s = make_schedule("linear", 20)
    samples, rows = sampling_sweep(tiny_model, s, shape=(2, 1, 8, 8), runs=eta_runs(5, [0.5]),
                                   device=torch.device("cpu"), progress=False, repeats=3, max_seconds=60)
    x_T = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    ref = sample_ddim(tiny_model, x_T, respace(s, space_timesteps(20, 5)), eta=0.5,
                      generator=torch.Generator().manual_seed(1), progress=False)
    assert rows[0]["repeats"] == 3 and torch.equal(samples["DDIM 5, η=0.5"], ref)


def test_fd_vs_steps_rows(capsys):
    from fastdiff.studies.diffusion_basics import fd_vs_steps
    from fastdiff.unet import build_unet
    torch.manual_seed(0)
    model = build_unet("tiny", image_size=32, attention_resolutions=(16,))
    real = torch.rand(40, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows, samples = fd_vs_steps(model, make_schedule("linear", 20), real[:24], real[24:], steps=(2, 4), n=16,
                                batch_size=8, device=torch.device("cpu"), progress=False)
    assert [r["steps"] for r in rows] == [None, 2, 4] and all(r["n"] == 16 for r in rows)
    assert all(r["FD (LeNet-MNIST)"] >= 0 for r in rows) and samples[(4, 0.0)].shape == (16, 1, 32, 32)
    assert all(r["ms_per_image"] > 0 for r in rows[1:])
    with pytest.raises(ValueError, match="held-out"):
        fd_vs_steps(model, make_schedule("linear", 20), real, real[:4], steps=(2,), n=16, batch_size=8,
                    device=torch.device("cpu"))


@pytest.mark.parametrize("flags, name", [(["avx2"], "AVX2"), (["avx2", "avx512f"], "AVX-512"),
                                         (["avx2", "avx512f", "avx512_bf16"], "AVX-512 BF16"),
                                         (["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"], "AMX"),
                                         ([], "no AVX2")])
def test_the_device_label_names_the_instruction_class(flags, name, monkeypatch):
    """Two CPUs with one model name ("AMD EPYC") can be an AVX2-only and an AVX-512 BF16 machine: every label
    says which, and the threads."""
    assert instruction_class({"flags": flags}) == name
    monkeypatch.setattr("fastdiff.devices.cpu_features", lambda: {"flags": flags, "amx": "amx_bf16" in flags})
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    label = device_name(torch.device("cpu"))
    assert label.startswith("CPU: ") and label.endswith(f", {name} (1 thread)")
