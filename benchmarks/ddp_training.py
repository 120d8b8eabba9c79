"""Multi-process training throughput (study 5): the shared `train()` under torchrun with 1 and 2 processes
(DistributedDataParallel; gloo on the CPU, nccl on CUDA), the quick digits U-Net, batch B per process.

    python benchmarks/ddp_training.py [--processes 1,2] [--batch 16] [--steps 30] [--warmup 5] [--out results]

Each process count is one torchrun launch of this script (``--worker``); rank 0 times the steps after the warm-up
(through `train`'s callback) and reports images per second of the global batch. On a CPU the processes share its
cores (OMP_NUM_THREADS = cores / processes, so both runs use the whole machine): there, more processes cannot add
compute, and the result says so. Writes <out>/<cpu|cuda>/ddp_training.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from fastdiff.files import atomic_write_text


def worker(args) -> int:
    from fastdiff import distributed
    from fastdiff.data import load_dataset
    from fastdiff.diffusion import make_schedule
    from fastdiff.train import TrainConfig, train
    from fastdiff.unet import build_unet
    from fastdiff.devices import device_name
    proc = distributed.init(args.device, timeout_s=120)
    try:
        torch.manual_seed(0)
        model = build_unet("quick")
        data = load_dataset("mnist-builtin", image_size=32)
        stamps = []
        cfg = TrainConfig(steps=args.warmup + args.steps, batch_size=args.batch, lr=1e-4, checkpoint_every=0,
                          log_every=1000)

        def tick(step, loss):
            if proc.device.type == "cuda":
                torch.cuda.synchronize(proc.device)
            stamps.append(time.perf_counter())
        train(model, data, make_schedule("linear"), cfg, device=proc.device, progress=False, callback=tick)
        seconds = stamps[-1] - stamps[args.warmup - 1]
        if proc.is_main:
            result = {"processes": proc.world_size, "backend": proc.backend, "batch per process": args.batch,
                      "global batch": args.batch * proc.world_size, "steps timed": args.steps,
                      "threads per process": torch.get_num_threads(), "device": device_name(proc.device),
                      "seconds per step": seconds / args.steps,
                      "images per second": args.batch * proc.world_size * args.steps / seconds}
            atomic_write_text(args.json, json.dumps(result, indent=1))
    finally:
        distributed.shutdown()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--processes", default="1,2")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    import subprocess
    from fastdiff.devices import cpu_features, environment, resolve_device
    from fastdiff.portable_json import save_results
    device = resolve_device(args.device)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    runs = {}
    for n in (int(v) for v in args.processes.split(",")):
        if device.type == "cuda" and n > torch.cuda.device_count():
            print(f"{n} processes: left out ({torch.cuda.device_count()} GPU(s); NCCL needs one per rank)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // n))} if device.type == "cpu" else None
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", __file__,
                   "--worker", "--device", args.device, "--batch", str(args.batch), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--json", str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
            if done.returncode != 0:
                raise SystemExit(f"torchrun with {n} processes failed:\n{done.stderr[-3000:]}")
            runs[str(n)] = json.loads(out.read_text())
        r = runs[str(n)]
        print(f"{n} process(es) x batch {args.batch}, {r['threads per process']} thread(s) each: "
              f"{r['images per second']:.1f} images/s ({1e3 * r['seconds per step']:.0f} ms per step)", flush=True)
    base = runs.get("1", {}).get("images per second")
    for r in runs.values():
        r["scaling vs 1 process"] = r["images per second"] / base if base else None
    shared = device.type == "cpu"
    result = {"benchmark": "ddp_training", "environment": environment(device), "cpu": cpu_features(),
              "model": "quick U-Net (1.1M), MNIST digits 32x32", "runs": runs, "shared cores": shared,
              "note": (f"the processes share one CPU ({cores} cores divided among them): a second process adds no "
                       f"compute here" if shared else "one GPU per process")}
    print("note:", result["note"])
    print(f"wrote {save_results(args.out / device.type, 'ddp_training', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
