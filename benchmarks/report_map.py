"""The cross-study report's maps (notebook 07): every method and fast solver on the digits zoo models, time per image
against FD (LeNet-MNIST), and the super-resolution models of studies 1 and 4, time per image against PSNR / SSIM /
LR-PSNR on the same LR inputs.

    python benchmarks/report_map.py [--device auto] [--points quick] [--n 300] [--batch 50] [--rounds 3]
                                    [--sr-n 64] [--sr-steps 10,25,50] [--sr-batch 16] [--parts digits,sr]
                                    [--fd-from results/cpu/digits_fd.json] [--out results]

The digits map measures 1000-step DDPM on ``--n`` samples (minutes on a CPU), which is why notebook 07 reads this
file rather than measuring again. Every point of a map is timed side by side in one interleaved run. Run it on an
idle machine.

``--fd-from``: time the digits map only and take every point's FD from the map's FD measurement in that file
(``python benchmarks/digits_fd.py --study 07``: n = 1000 per point, bias-corrected with 95% intervals, paired ratios
to DDPM 1000); the headline then respects the intervals. The measurement must come from this machine's CPU model
(or GPU): another's is refused, one machine per verdict. On 2 CPU threads this takes 10-15 minutes, most of it the
1000-step DDPM reference's four timed calls:

    python benchmarks/report_map.py --parts digits --fd-from results/cpu/digits_fd.json

Writes <out>/<cpu|cuda>/report_map.json; each part records the machine (label, CPU flags) and the date it was
measured on, so a part kept from an earlier run keeps its own. Each digits point also records its FLOPs per image;
each SR point its metrics' 95% bootstrap intervals over the images.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastdiff.devices import cpu_features, environment, resolve_device
from fastdiff.portable_json import save_results
from fastdiff.studies import speed_quality_map


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--points", default="quick", choices=sorted(speed_quality_map.POINTS))
    p.add_argument("--n", type=int, default=300, help="samples per point of the digits map")
    p.add_argument("--batch", type=int, default=50, help="the batch of the timed call (and of the quality run)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sr-n", type=int, default=64, help="held-out images per SR point")
    p.add_argument("--sr-steps", default="10,25,50")
    p.add_argument("--sr-batch", type=int, default=16)
    p.add_argument("--parts", default="digits,sr", help="which maps to measure; a part left out is kept from an "
                   "existing result file (each part records its own device and date)")
    p.add_argument("--fd-from", type=Path, default=None, help="a digits_fd.json with the map's FD measurement "
                   "(study 07) of this machine: time the digits map only and read its FDs from there")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    parts = set(args.parts.split(","))
    if not parts or not parts <= {"digits", "sr"}:
        p.error(f"--parts must name digits and/or sr, got {args.parts!r}")
    fd = None
    if args.fd_from is not None:
        if "digits" not in parts:
            p.error("--fd-from reads the digits map's FDs: --parts must include digits")
        try:
            fd = speed_quality_map.read_fd(args.fd_from, device=device)      # before minutes of timing
        except (OSError, ValueError) as e:
            p.error(str(e))
    path = args.out / device.type / "report_map.json"
    result = json.loads(path.read_text()) if path.is_file() and parts != {"digits", "sr"} else {}
    kept_cpu = result.pop("cpu", None)       # an older file's one record of the CPU: it goes with the parts kept
    for part in ("digits", "sr"):
        if part not in parts and part in result and kept_cpu is not None:
            for piece in ([result[part]] if part == "digits" else result[part].values()):
                piece.setdefault("cpu", kept_cpu)
    result["benchmark"] = "report_map"
    env = environment(device)
    stamp = {"environment": env, "utc": env["utc"], "cpu": cpu_features()}     # each part names its own machine
    if "digits" in parts:
        measure_digits(result, args, device, stamp, fd=fd)
    if "sr" in parts:
        from fastdiff.studies import sr_map
        steps = tuple(int(s) for s in args.sr_steps.split(","))
        result["sr"] = {panel: {**sr_map.measure_panel(panel, device=device, n=args.sr_n, steps=steps,
                                                       batch_size=args.sr_batch, rounds=args.rounds), **stamp}
                        for panel in sr_map.PANELS}
    path = save_results(args.out / device.type, "report_map", result)
    print(f"wrote {path}")
    return 0


def measure_digits(result: dict, args, device, stamp: dict, *, fd: dict | None = None) -> None:
    M = speed_quality_map
    result["digits"] = M.digits_map(args.points, n=args.n, batch_size=args.batch, rounds=args.rounds, device=device,
                                    fd=fd)
    result["digits"].update(stamp)
    for r in result["digits"]["rows"]:
        fd_text = r[M.FD_INTERVAL].format(2) if M.FD_INTERVAL in r else f"{r[M.METRIC]:.2f}" if M.METRIC in r else "-"
        ratio = f", FD / reference {r[M.RATIO].format(3)}" if M.RATIO in r else ""
        print(f"{r['label']:>52}: {r[M.TIME]:9.3f} ms/image ({r['speed-up']:7.1f}x), FD {fd_text}{ratio}", flush=True)
    best = result["digits"]["headline"]
    print("headline:", best and best["label"], "; inconclusive:", ", ".join(result["digits"]["inconclusive"]) or
          "none", flush=True)


if __name__ == "__main__":
    sys.exit(main())
