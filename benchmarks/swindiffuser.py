"""SwinDiffuser (study 4): seconds per image on 1 and 2 processes (torchrun, gloo on the CPU / nccl on CUDA) at two
image sizes, with the share of the time spent in the patch denoiser, in pre/post-processing (roll, patchify, the
condition, unpatchify, unroll) and in communication (the all-gather of every step), rank 0's clock.

    python benchmarks/swindiffuser.py [--sizes 64,128] [--processes 1,2] [--steps 20] [--repeats 3] [--out results]

32x32 patches with the notebook's CPU-size patch U-Net and random weights (time does not depend on them). One
torchrun launch per (size, process count); the runs of one launch are median-of-repeats. On a CPU the processes
share the same cores (torchrun gives each one thread, the single process uses all), so two processes cannot be
faster there for want of a second device: the result says so. Writes <out>/<cpu|cuda>/swindiffuser.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastdiff.devices import cpu_features, environment, resolve_device
from fastdiff.portable_json import save_results
from fastdiff.swin_torchrun import benchmark


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--sizes", default="64,128")
    p.add_argument("--processes", default="1,2")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    procs = tuple(int(n) for n in args.processes.split(","))
    result = benchmark(sizes=sizes, processes=procs, steps=args.steps, repeats=args.repeats, device=args.device)
    result.update({"benchmark": "swindiffuser", "environment": environment(device), "cpu": cpu_features()})
    for size, per in result["sizes"].items():
        base = per.get("1", {}).get("seconds per image")
        for r in per.values():
            shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["shares"].items())
            speed = f" ({base / r['seconds per image']:.2f}x of 1 process)" if base else ""
            print(f"{size}x{size}, {r['model']}, {r['processes']} process(es), {r['threads per process']} thread(s) each: "
                  f"{r['seconds per image']:.3f} s per image{speed}; {shares}", flush=True)
    print("note:", result["note"])
    path = save_results(args.out / device.type, "swindiffuser", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
