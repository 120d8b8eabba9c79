"""Performance engineering (study 5): the inference ladder on the DDPM CIFAR-10 U-Net and the digits zoo model, and
this machine's measured peaks (matmul GFLOP/s per dtype, memory bandwidth) for the roofline.

    python benchmarks/performance.py [--device auto] [--models ddpm_cifar10,digits] [--batch 8] [--rounds 5]
                                     [--ddim-steps 20] [--no-compile] [--out results]

Every rung of one model is timed side by side in interleaved rounds on the same inputs (`fastdiff.measure.bench`),
with its quality cost: the largest difference from fp32 of x_0 after a whole deterministic DDIM run from the same
x_T. torch.compile's compile time is reported separately. Writes <out>/<cpu|cuda>/performance.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from fastdiff.diffusion import make_schedule
from fastdiff.measure.bench import measure
from fastdiff.studies import performance
from fastdiff.unet import build_unet
from fastdiff.utils import DTYPES, cpu_features, environment, resolve_device, save_results


def peaks(device: torch.device, *, n: int = 2048, repeats: int = 5) -> dict:
    """The roofs: dense matmul GFLOP/s in each dtype, and copy bandwidth (GB/s, read + write) of a large tensor."""
    out = {}
    for name, dtype in DTYPES.items():
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        t = measure(lambda: a @ b, device=device, warmup=1, repeats=repeats)
        out[f"matmul GFLOP/s ({name})"] = 2 * n**3 / t["median_s"] / 1e9
    x = torch.empty(64 * 2**20 // 4, device=device)
    y = torch.empty_like(x)
    t = measure(lambda: y.copy_(x), device=device, warmup=1, repeats=repeats)
    out["copy GB/s"] = 2 * x.numel() * 4 / t["median_s"] / 1e9
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default="ddpm_cifar10,digits")
    p.add_argument("--batch", type=int, default=None, help="default: cpu 8, cuda 128")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--ddim-steps", type=int, default=20)
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rung")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    batch = args.batch or (128 if device.type == "cuda" else 8)
    rungs = [r for r in performance.LADDER if not (args.no_compile and r.compile)]
    result = {"benchmark": "performance", "environment": environment(device), "cpu": cpu_features(), "batch": batch,
              "ddim_steps": args.ddim_steps, "peaks": peaks(device), "models": {}}
    print("peaks:", {k: round(v, 1) for k, v in result["peaks"].items()}, flush=True)
    for name in args.models.split(","):
        torch.manual_seed(0)
        if name == "digits":
            from fastdiff import zoo
            model, entry = zoo.load("basics/quick-ddpm", verbose=False)
            weights = entry.provenance
        else:
            model, weights = build_unet(name), "random (timing; the quality cost still compares rungs)"
        began = time.perf_counter()
        rows = performance.ladder(model, make_schedule("linear"), batch_size=batch, device=device, rungs=rungs,
                                  rounds=args.rounds, ddim_steps=args.ddim_steps)
        result["models"][name] = {"weights": weights, "rows": rows, "seconds": time.perf_counter() - began}
        for r in rows:
            print(f"{name:>12} {r['rung']:>28}: {r['ms per call']:8.1f} ms ({r['speed-up vs fp32']:.2f}x), "
                  f"max |dx0| {r['max |x0 - fp32| after DDIM']:.2e}, compile {r['compile s']} s", flush=True)
    path = save_results(args.out / device.type, "performance", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
