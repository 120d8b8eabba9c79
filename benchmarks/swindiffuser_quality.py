"""SwinDiffuser (study 4): the quality of every zoo model on all the held-out photo patches, measured once per machine
and read by notebook 04: each patch's PSNR, SSIM, LR-PSNR and seam score (bicubic upsampling and the fixed-s8 model
sampled without shifting as rows too; the same x_T and noise for every model, 100 ancestral steps), and the SR
sanity checks (8 samples of each of the first --sanity-n patches per model).

    python benchmarks/swindiffuser_quality.py [--steps 100] [--sanity-n 16] [--n 0] [--models A,B [--merge]]
                                              [--out results]

Writes <out>/<cpu|cuda>/swindiffuser_quality.json with the machine, the date and each model's zoo sha256, and its own
wall time (the committed one: 59 min on a 2-core AMD EPYC with a training run beside it). Quality does not depend on
what else runs, but give it the cores.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastdiff import zoo
from fastdiff.devices import resolve_device
from fastdiff.diffusion import make_schedule
from fastdiff.portable_json import save_results
from fastdiff.results import read_benchmark
from fastdiff.studies import patch_parallel_sr as study
from fastdiff.studies import patch_parallel_sr_quality as quality


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--sanity-n", type=int, default=16)
    p.add_argument("--n", type=int, default=0, help="held-out patches to score (0: all)")
    p.add_argument("--models", default="", help="comma-separated variants (default: every zoo variant)")
    p.add_argument("--merge", action="store_true", help="add --models to the existing file of this device (same "
                   "machine, patches, steps and seed) instead of replacing it")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    names = [m for m in args.models.split(",") if m] or [v for v in study.VARIANTS if v not in study.NOT_IN_ZOO]
    entries = {name: study.ZOO_MODELS[name] for name in names}
    models = {name: zoo.load(entry, device=device)[0] for name, entry in entries.items()}
    hr = study.photos("val")
    hr = hr[:args.n] if args.n else hr
    result = quality.measure(models, hr, make_schedule(study.SCHEDULE), steps=args.steps, device=device,
                             sanity_n=min(args.sanity_n, len(hr)), entries=entries)
    if args.merge:
        result = quality.merge(read_benchmark(quality.NAME, device.type, root=args.out), result)
    print(quality.banner(result))
    for row in quality.formatted(quality.table(result)):
        print(row)
    for record in result["sanity"]:
        print(quality.sr_sanity.record_line(record))
    path = save_results(args.out / device.type, quality.NAME, result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
