"""Performance engineering (study 5): this machine's roofs, the inference ladder on the DDPM CIFAR-10 U-Net and the
digits zoo model, the roofline of the CIFAR-10 U-Net's layers, and the side by side with HuggingFace diffusers'
UNet2DModel of the same configuration.

    python benchmarks/performance.py [--device auto] [--models ddpm_cifar10,digits] [--batch 8] [--rounds 5]
                                     [--ddim-steps 20] [--quality-n N] [--no-compile] [--no-diffusers]
                                     [--out results]

Every rung of one model is timed side by side in interleaved rounds on the same inputs (`fastdiff.measure.bench`),
with its quality cost: the largest difference from fp32 of x_0 after a whole deterministic DDIM run from the same
x_T (``--quality-n`` images; on a CPU without fp16 arithmetic the fp16 rung is slow, so keep it small there).
torch.compile's compile time is reported separately. The diffusers comparison times every (library, rung) pair in
one interleaved run. Writes <out>/<cpu|cuda>/performance.json (notebook 05 reads it).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from fastdiff.devices import cpu_features, environment, resolve_device
from fastdiff.diffusion import make_schedule
from fastdiff.measure.bench import count_flops, model_step
from fastdiff.measure.roofline import layer_roofline, peaks
from fastdiff.portable_json import save_results
from fastdiff.studies import performance
from fastdiff.unet import build_unet


def load_model(name: str):
    """(model, weights label): the DDPM CIFAR-10 U-Net with random weights (its timing does not depend on them)
    or the digits baseline of notebook 05 from the zoo."""
    torch.manual_seed(0)
    if name == "digits":
        from fastdiff import zoo
        model, entry = zoo.load(performance.BASELINE_ZOO, verbose=False)
        return model.inner, entry.provenance + " - its U-Net alone"
    return build_unet(name), "random (timing only; the quality cost still compares the rungs)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default="ddpm_cifar10,digits")
    p.add_argument("--batch", type=int, default=None, help="default: cpu 2, cuda 128")
    p.add_argument("--rounds", type=int, default=None, help="default: cpu 3, cuda 10")
    p.add_argument("--ddim-steps", type=int, default=20)
    p.add_argument("--quality-n", type=int, default=None, help="images of the DDIM quality run (default: cpu 1, "
                   "cuda 16 for ddpm_cifar10; 64 for digits)")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rung")
    p.add_argument("--no-diffusers", action="store_true", help="leave out the diffusers comparison")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (128 if gpu else 2)
    rounds = args.rounds or (10 if gpu else 3)
    rungs = [r for r in performance.LADDER if not (args.no_compile and r.compile)]
    result = {"benchmark": "performance", "environment": environment(device), "cpu": cpu_features(), "batch": batch,
              "rounds": rounds, "ddim_steps": args.ddim_steps, "peaks": peaks(device, n=8192 if gpu else 2048),
              "models": {}}
    print("peaks:", {k: round(v, 1) for k, v in result["peaks"].items()}, flush=True)
    for name in args.models.split(","):
        model, weights = load_model(name)
        n = args.quality_n or (64 if name == "digits" else 16 if gpu else 1)
        began = time.perf_counter()
        rows = performance.ladder(model, make_schedule("linear"), batch_size=batch, device=device, rungs=rungs,
                                  rounds=rounds, ddim_steps=args.ddim_steps, quality_n=n, progress=True)
        rows = performance.with_peak_share(rows, result["peaks"])
        entry = {"weights": weights, "rows": rows, "quality_n": n, "parameters": sum(q.numel() for q in
                 model.parameters()), "GFLOP per image": count_flops(model_step(model, batch_size=1,
                                                                                device=device)) / 1e9}
        entry["roofline"] = layer_roofline(model, model_step(model, batch_size=batch, device=device), device=device)
        entry["seconds"] = time.perf_counter() - began
        result["models"][name] = entry
        for r in rows:
            print(f"{name:>12} {r['rung']:>28}: {r['ms per call']:9.1f} ms ({r['speed-up vs fp32']:.2f}x), "
                  f"max |dx0| {r['max |x0 - fp32| after DDIM']:.2e}, compile {r['compile s']} s", flush=True)
    if not args.no_diffusers:
        from fastdiff.measure.peers import diffusers_unet
        torch.manual_seed(0)
        models = {"fastdiff": build_unet("ddpm_cifar10"), "diffusers": diffusers_unet("ddpm_cifar10")}
        began = time.perf_counter()
        rows = performance.compare_libraries(models, batch_size=batch, device=device, rungs=rungs, rounds=rounds,
                                             progress=True)
        import diffusers
        result["libraries"] = {"rows": rows, "versus": performance.best_versus(rows), "batch": batch,
                               "diffusers": diffusers.__version__, "seconds": time.perf_counter() - began}
        for r in rows:
            print(f"{r['library']:>10} {r['rung']:>28}: {r['ms per call']:9.1f} ms", flush=True)
        print("best vs best:", result["libraries"]["versus"], flush=True)
    path = save_results(args.out / device.type, "performance", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
