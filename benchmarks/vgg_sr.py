"""VGG-conditioned SR3 (study 1): the small U-Net's speedup over the original at 128x128 (the paper: 1.77x with
7x fewer parameters), and the share of a sampling call that the one VGG-11 pass takes (expected well under 1%).

    python benchmarks/vgg_sr.py [--device auto] [--dtypes fp32,bf16] [--batch 1] [--steps 100] [--repeats 5]
                                [--out results]

All rows of one dtype are timed in this one run on this one device by the harness, in interleaved rounds (one call
of every model per round; median over the rounds), so the ratios compare like with like. The models are at the paper's widths (base 64, one ResNet block per level,
32->128) with random weights and a random VGG-11: time does not depend on weights. Sampling uses ancestral
steps on SR3's schedule, with the VGG features computed once per call (counted). Writes
<out>/<cpu|cuda>/vgg_sr.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fastdiff.devices import cpu_features, environment, resolve_device, resolve_dtype
from fastdiff.diffusion import make_schedule
from fastdiff.portable_json import save_results
from fastdiff.studies import vgg_conditioned_sr as vggsr
from fastdiff.studies import vgg_sr_evaluation as sreval


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--batch", type=int, default=None, help="default: cpu 1, cuda 16")
    p.add_argument("--steps", type=int, default=100, help="sampling steps for the VGG share")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    batch = args.batch or (16 if device.type == "cuda" else 1)
    schedule = make_schedule("sr3")
    w = vggsr.PAPER_WIDTHS
    lr = torch.rand(batch, 3, w.image_size // 4, w.image_size // 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    by_dtype = {}
    for name in args.dtypes.split(","):
        dtype = resolve_dtype(name, device)
        rows = sreval.forward_times(("original", "half", "small", "small + VGG (add)"), widths=w, batch_size=batch,
                                   device=device, dtype=dtype, repeats=args.repeats, progress=False)
        table = {r["variant"]: r for r in rows}
        torch.manual_seed(0)
        model = vggsr.build_variant("small + VGG (add)", w, vgg_weights="random")
        share = sreval.vgg_share(model, lr, schedule, args.steps, device=device, dtype=dtype,
                                repeats=max(1, args.repeats // 2))
        by_dtype[name] = {"forward": rows, "vgg_share": share,
                          "small_vs_original_speedup": table["small"]["speedup vs original"],
                          "small_vgg_vs_original_speedup": table["small + VGG (add)"]["speedup vs original"]}
        print(f"{name}: original {table['original']['median_ms']:.1f} ms, small {table['small']['median_ms']:.1f} ms -> "
              f"{table['small']['speedup vs original']:.2f}x (params {table['small']['params ratio']:.1f}x fewer; "
              f"paper 1.77x); VGG once per sampling call: {share['vgg_ms']:.1f} ms of {share['sampling_s']:.2f} s = "
              f"{share['vgg_share_percent']:.3f}% ({share['vgg_calls_per_sampling']:.0f} VGG call per sampling)",
              flush=True)
    result = {"benchmark": "vgg_sr", "environment": environment(device), "cpu": cpu_features(), "batch": batch,
              "size": f"{w.image_size // 4}->{w.image_size}", "widths": vars(w), "sampler": f"ancestral, {args.steps} steps",
              "weights": "random U-Nets and random VGG-11 (timing only)", "repeats": args.repeats,
              "paper": {"speedup_small_vs_original": vggsr.PAPER_SPEEDUP_SMALL_VS_ORIGINAL,
                        "parameters": vggsr.PAPER_PARAMETERS},
              "dtypes": by_dtype}
    path = save_results(args.out / device.type, "vgg_sr", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
