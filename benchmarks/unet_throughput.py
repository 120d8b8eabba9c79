"""U-Net throughput: the DDPM CIFAR-10 and SR3 U-Nets, one denoising step, fp32 against bf16 + channels_last.

    python benchmarks/unet_throughput.py [--device auto] [--models ddpm_cifar10,sr3] [--modes fp32,bf16-cl]
                                         [--batch ddpm_cifar10=8,sr3=2] [--repeats 5] [--out results]

Every mode of a model is measured in this one run on this one device, so the ratios in the last column
compare like with like. Writes <out>/<cpu|cuda>/unet_throughput.{json,csv} (the device named inside) and
prints the table. Random weights: speed does not depend on them.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import torch

from fastdiff.devices import DTYPES, cpu_features, environment, resolve_device
from fastdiff.files import atomic_write
from fastdiff.measure.bench import benchmark_model
from fastdiff.portable_json import save_results
from fastdiff.unet import build_unet

MODES = {  # name: (dtype, channels_last)
    "fp32": ("fp32", False), "fp32-cl": ("fp32", True), "bf16": ("bf16", False), "bf16-cl": ("bf16", True),
    "fp16-cl": ("fp16", True),
}
DEFAULT_BATCH = {"cpu": {"ddpm_cifar10": 8, "sr3": 2}, "cuda": {"ddpm_cifar10": 128, "sr3": 16}}
COLUMNS = ["model", "mode", "dtype", "layout", "batch_size", "image_size", "params", "median_ms", "iqr_ms",
           "repeats", "images_per_s", "gflops", "gflop_per_s", "peak_memory_mb", "speedup_vs_first_mode"]


def parse_batch(text: str | None, device_type: str, models: list[str]) -> dict[str, int]:
    batch = {m: DEFAULT_BATCH[device_type].get(m, 4) for m in models}
    for item in filter(None, (text or "").split(",")):
        name, _, value = item.partition("=")
        if name not in batch or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"--batch wants model=N for models {models}, got {item!r}")
        batch[name] = int(value)
    return batch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default="ddpm_cifar10,sr3")
    p.add_argument("--modes", default="fp32,bf16-cl", help=f"comma-separated, from {list(MODES)}")
    p.add_argument("--batch", default=None, help="per-model batch sizes, e.g. ddpm_cifar10=8,sr3=2")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default: cpu 5, cuda 20)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    models = args.models.split(",")
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; choose from {list(MODES)}")
    batch = parse_batch(args.batch, device.type, models)
    repeats = args.repeats or (5 if device.type == "cpu" else 20)

    rows = []
    for name in models:
        first = None
        for mode in modes:
            dtype_key, channels_last = MODES[mode]
            torch.manual_seed(0)
            model = build_unet(name)
            print(f"{name} {mode} batch {batch[name]} ...", file=sys.stderr, flush=True)
            row = benchmark_model(model, label=f"{name} {mode}", batch_size=batch[name], device=device,
                                 dtype=DTYPES[dtype_key], channels_last=channels_last, warmup=args.warmup,
                                 repeats=repeats, mode=mode)
            first = first or row["median_ms"]
            row["speedup_vs_first_mode"] = first / row["median_ms"]
            row["model"] = name
            rows.append(row)
            del model

    env = environment(device)
    if device.type == "cpu":
        env["cpu_features"] = cpu_features()
    results = {"benchmark": "unet_throughput", "environment": env, "weights": "random (speed only)",
               "what": "one denoising step model(x_t, t[, lr]) under no_grad; bf16/fp16 via autocast",
               "rows": rows}
    folder = args.out / device.type
    save_results(folder, "unet_throughput", results)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["device"] + COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(folder / "unet_throughput.csv", lambda f: f.write(text.getvalue().encode()))

    print(f"\n{env['device']} · torch {env['torch']}" +
          (f" · {env['cpu_features']}" if device.type == "cpu" else ""))
    print(f"{'model':14}{'mode':9}{'batch':>6}{'ms':>10}{'±iqr':>8}{'img/s':>9}{'GFLOPs':>9}{'GFLOP/s':>9}"
          f"{'peak MB':>9}{'speedup':>9}")
    for r in rows:
        print(f"{r['model']:14}{r['mode']:9}{r['batch_size']:>6}{r['median_ms']:>10.1f}{r['iqr_ms']:>8.1f}"
              f"{r['images_per_s']:>9.2f}{r['gflops']:>9.1f}{r['gflop_per_s']:>9.1f}{r['peak_memory_mb']:>9.0f}"
              f"{r['speedup_vs_first_mode']:>8.2f}x")
    print(f"wrote {folder}/unet_throughput.json and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
