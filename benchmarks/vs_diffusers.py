"""fastdiff against diffusers' best pipeline on the same weights, at equal quality (issue 29, part 3).

    python benchmarks/digits_fd.py --study vs            # once: the FD of every diffusers candidate (n = 1000)
    python benchmarks/vs_diffusers.py [--fastdiff LABEL] [--rounds 5] [--batch 50] [--no-compile] [--device auto]

The weights: study 2's plain digits U-Net (zoo skipping/baseline-plain), exported as a diffusers DDPMPipeline folder
and loaded back with ``from_pretrained``. The quality bar: FD (LeNet-MNIST) at or below the upper end of 1000-step
DDPM's 95% interval, read from the map's FD measurement (results/<device>/digits_fd.json, section 07_report; same
U-Net, same FD, same x_T). diffusers' candidates are the schedulers a user tries (DDIM, DPM-Solver++(2M), UniPC,
Euler, DEIS, each ``from_config`` of the pipeline's; DPM-Solver++ and UniPC also with "trailing" spacing) at 5-50
steps, sampled by diffusers' denoising loop from the map's x_T, their FDs in the section 07_vs_diffusers; those
within the bar at the fewest U-Net calls are timed, eager and under ``torch.compile(pipe.unet)`` (bf16 autocast
too where the hardware has it: AMX or a bf16 GPU). fastdiff's best is the map's own choice by the same rule
(results/<device>/report_map.json) or ``--fastdiff LABEL``, timed with its variant (without its rung, or with the
compiled rung when it has none). Everything is timed in ONE interleaved run of one batch call each, time per image,
on an idle machine (a few minutes on a CPU, most of it compiling). Both FD measurements and the map must be of this
machine (CPU model and instruction class); the map's FD section and the map itself should be of the same run.

Writes results/<cpu|cuda>/vs_diffusers.json: the reference and its limit, every timed row (what it is, its FD, ms
per image and IQR), diffusers' and fastdiff's bests and the ratio of their times with a range from the IQRs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastdiff.devices import cpu_features, environment, resolve_device
from fastdiff.portable_json import save_results
from fastdiff.results import load_json
from fastdiff.studies import vs_diffusers

NAME = "vs_diffusers"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--fastdiff", default=None, help="a map point's label (default: the map's choice by the rule)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=vs_diffusers.BATCH)
    p.add_argument("--no-compile", action="store_true", help="time diffusers without torch.compile")
    p.add_argument("--fd-from", type=Path, default=None, help="digits_fd.json (default: results/<device>/)")
    p.add_argument("--map", type=Path, default=None, help="report_map.json (default: results/<device>/)")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    if args.rounds < 1 or args.batch < 1:
        p.error("--rounds and --batch must be positive")
    device = resolve_device(args.device)
    folder = args.out / device.type
    fd_path, map_path = args.fd_from or folder / "digits_fd.json", args.map or folder / "report_map.json"
    try:
        digits_fd = load_json(fd_path, "measure it: `python benchmarks/digits_fd.py --study 07` and `--study vs`")
        map_part = load_json(map_path, "time the map: `python benchmarks/report_map.py --parts digits`")["digits"]
        vs_diffusers.reference(digits_fd, device)          # refused before minutes of timing
        vs_diffusers.fastdiff_best(map_part, device, label=args.fastdiff)
    except (OSError, ValueError, KeyError) as e:
        p.error(str(e))
    result = vs_diffusers.compare(digits_fd, map_part, device=device, fastdiff_label=args.fastdiff,
                                  rounds=args.rounds, batch=args.batch, compile=not args.no_compile)
    env = environment(device)
    path = save_results(folder, NAME, {"benchmark": NAME, "environment": env, "cpu": cpu_features(),
                                       "bf16 applies": vs_diffusers.bf16_applies(device), **result})
    for r in result["rows"]:
        print(f"{r['label']:<55} {r['ms per image']:8.3f} ms/image (IQR {r['IQR (ms)']:.3f})  FD {r['FD [95%]']}")
    if not result["fastdiff within limit"]:
        print(f"note: fastdiff's point has FD {result['fastdiff best']['FD (LeNet-MNIST)']:.3g}, above the limit "
              f"{result['reference']['limit']:.3g}: not at equal quality, the target is not met")
    if result["diffusers best"] is None:
        print(f"no diffusers candidate at equal quality: {result['why']}")
    else:
        s = result["speed-up"]
        print(f"diffusers' best {result['diffusers best']['label']} / fastdiff's best "
              f"{result['fastdiff best']['label']}: "
              f"{s['ratio']:.2f}x [{s['ratio range (IQRs)'][0]:.2f}, {s['ratio range (IQRs)'][1]:.2f}]; "
              f"target (>= 2x) {'met' if result['target met'] else 'not met'}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
