"""Layer skipping: the sampling loop at c = 2 against c = 0 on the DDPM CIFAR-10 U-Net (the paper: 47.5% less
time with zero skipping), beside the FLOP ratio the schedule predicts, and whether torch.compile recompiles at
every change of k.

    python benchmarks/layer_skipping.py [--device auto] [--dtype fp32] [--steps 50] [--batch 4] [--repeats 3]
                                        [--skip-types zero,duplicate,interpolate] [--compile] [--out results]

Each skip type's c = 0 and c = 2 loops are timed side by side, in interleaved rounds, on this one device (deterministic DDIM, the same
noise), so the ratios compare like with like. Random weights: time does not depend on them. With ``--compile``
the zero-skipping model is also compiled with a backend that only counts the graphs dynamo hands it (no code
generation), so the count says how often a change of k triggers a compile. Writes
<out>/<cpu|cuda>/layer_skipping.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fastdiff.devices import cpu_features, environment, resolve_device, resolve_dtype
from fastdiff.diffusion import make_schedule, respace, space_timesteps
from fastdiff.measure.bench import interleaved
from fastdiff.methods.layer_skipping import (SKIP_TYPES, LayerSkippingUNet, ScheduledSkipping, k_table,
                                             predicted_time_fraction)
from fastdiff.portable_json import save_results
from fastdiff.sampling import sample_ddim
from fastdiff.studies.adaptive_layer_skipping import PAPER_TABLE2_SPEEDUP, flops_by_k
from fastdiff.unet import build_unet


def sampling_loop(model, schedule, sched, x_T, c, dtype):
    scheduled = ScheduledSkipping(model, c, schedule.num_train_timesteps)

    def run():
        with torch.autocast(x_T.device.type, dtype=dtype, enabled=dtype != torch.float32):
            return sample_ddim(scheduled, x_T.clone(), sched, eta=0.0, progress=False)
    return run


def compile_count(model, schedule, sched, x_T, c) -> dict:
    """Run the c-schedule loop through torch.compile with a counting backend; report graphs compiled per k."""
    import torch._dynamo
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=counting_backend)
    scheduled = ScheduledSkipping(compiled, c, schedule.num_train_timesteps)
    with torch.no_grad():
        sample_ddim(scheduled, x_T.clone(), sched, eta=0.0, progress=False)
    ks = [k_table(schedule.num_train_timesteps, model.num_levels, c)[t] for t in sched.timesteps.tolist()]
    changes = sum(a != b for a, b in zip(ks, ks[1:]))
    return {"c": c, "network_calls": len(ks), "distinct_k": len(set(ks)), "changes_of_k": changes,
            "graphs_compiled": len(graphs),
            "recompiles_at_every_change_of_k": len(graphs) > len(set(ks))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--preset", default="ddpm_cifar10")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=None, help="default: cpu 4, cuda 128")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-types", default=",".join(SKIP_TYPES))
    p.add_argument("--compile", action="store_true", help="also count torch.compile graphs across changes of k")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    batch = args.batch or (128 if device.type == "cuda" else 4)
    schedule = make_schedule("linear")
    sched = respace(schedule, space_timesteps(schedule.num_train_timesteps, args.steps))
    rows = []
    for skip_type in args.skip_types.split(","):
        torch.manual_seed(0)
        model = LayerSkippingUNet(build_unet(args.preset), skip_type=skip_type).to(device).eval()
        cfg = model.base.config
        x_T = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size,
                          generator=torch.Generator().manual_seed(0)).to(device)
        flops = flops_by_k(model)
        loops = {c: sampling_loop(model, schedule, sched, x_T, c, dtype) for c in (0, 2)}
        t = interleaved(loops, device=device, rounds=args.repeats, warmup=1)    # c = 0 and c = 2 side by side
        fraction = predicted_time_fraction(flops, sched.timesteps.tolist(), schedule.num_train_timesteps, 2)
        row = {"skip_type": skip_type, "c0_median_ms": 1e3 * t[0]["median_s"], "c2_median_ms": 1e3 * t[2]["median_s"],
               "c0_iqr_ms": 1e3 * t[0]["iqr_s"], "c2_iqr_ms": 1e3 * t[2]["iqr_s"],
               "time_saved_pct": 100 * (1 - t[2]["median_s"] / t[0]["median_s"]),
               "flops_saved_pct": 100 * (1 - fraction), "paper_time_saved_pct": PAPER_TABLE2_SPEEDUP[skip_type][2],
               "gflops_per_call_by_k": {k: f / 1e9 for k, f in flops.items()}}
        rows.append(row)
        print(f"{skip_type:>11}: c=0 {row['c0_median_ms'] / 1e3:.2f} s, c=2 {row['c2_median_ms'] / 1e3:.2f} s -> "
              f"{row['time_saved_pct']:.1f}% less time (FLOPs predict {row['flops_saved_pct']:.1f}%, "
              f"paper {row['paper_time_saved_pct']:.1f}%)", flush=True)
    result = {"benchmark": "layer_skipping", "environment": environment(device, dtype), "cpu": cpu_features(),
              "preset": args.preset, "batch": batch, "sampler": f"DDIM eta=0, {args.steps} steps",
              "weights": "random (timing only)", "repeats": args.repeats, "rows": rows}
    if args.compile:
        model = LayerSkippingUNet(build_unet(args.preset), skip_type="zero").to(device).eval()
        cfg = model.base.config
        x_T = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size).to(device)
        result["torch_compile"] = compile_count(model, schedule, sched, x_T, 2)
        print(f"torch.compile: {result['torch_compile']}")
    path = save_results(args.out / device.type, "layer_skipping", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
