"""Measure once: FD (LeNet-MNIST) with intervals of every sampling setting a digits study's verdicts read.

    python benchmarks/digits_fd.py --study 00 [--n 1000] [--n-boot 1000] [--only KEY,KEY] [--cache runs/digits_fd]

Every setting of the study (its `fd_settings`) samples from the same n x_T (seed 0); its LeNet features are cached
under --cache, one file per setting, so an interrupted run resumes and two runs with different --only fill the
cache side by side (run once more without --only to write the file). The file, results/<cpu|cuda>/digits_fd.json,
holds one section per study (written under a lock, the other studies' sections kept): each setting's FD with its
bias-corrected 95% bootstrap interval and KID, the real held-out digits' (the floor), the paired differences and
ratios the verdicts read, the zoo sha256 of the weights, the machine and the date. Quality does not depend on what
else runs on the machine; the seconds recorded do.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

from fastdiff.devices import cpu_features, environment, resolve_device
from fastdiff.files import file_lock
from fastdiff.measure.fd_sweep import measure_study
from fastdiff.portable_json import save_results
from fastdiff.results import load_json
NAME = "digits_fd"
# each study's settings module (fastdiff.studies.<module>): STUDY, IMAGE_SIZE, PAIRS and fd_settings(device)
STUDIES = {"00": "diffusion_basics_fd", "02": "adaptive_layer_skipping_fd", "03": "continuous_unet_fd",
           "05": "performance_fd", "07": "speed_quality_map_fd",
           "vs": "vs_diffusers"}


def machine(env: dict) -> str:
    """The device label without its thread count: FD does not depend on threads, so one machine's sections
    measured with different threads share the file (each section records its own label)."""
    return re.sub(r" \(\d+ threads?\)$", "", env["device"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", required=True, choices=sorted(STUDIES))
    p.add_argument("--device", default="auto")
    p.add_argument("--n", type=int, default=1000, help="generated samples per setting")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per interval")
    p.add_argument("--only", default="", help="comma-separated setting keys to sample (fills the cache only)")
    p.add_argument("--cache", type=Path, default=Path("runs/digits_fd"))
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    if args.n < 2 or args.n_boot < 10:
        p.error("--n must be >= 2 and --n-boot >= 10")
    device = resolve_device(args.device)
    module = importlib.import_module(f"fastdiff.studies.{STUDIES[args.study]}")
    only = {k for k in args.only.split(",") if k} or None
    section = measure_study(module, n=args.n, n_boot=args.n_boot, device=device, cache=args.cache, only=only)
    if section is None:
        return 0
    folder = args.out / device.type
    with file_lock(folder / f"{NAME}.json", what=f"{folder / NAME}.json", wait_s=60):
        old = load_json(folder / f"{NAME}.json", "delete it and measure again") \
            if (folder / f"{NAME}.json").is_file() else {}
        studies = dict(old.get("studies", {})) if "environment" in old and \
            machine(old["environment"]) == machine(environment(device)) else {}
        dropped = sorted(set(old.get("studies", {})) - set(studies) - {module.STUDY})
        if dropped:
            print(f"note: {', '.join(dropped)} were measured on {old['environment']['device']}, not this machine: "
                  f"dropped (one machine per file); measure them here again")
        studies[module.STUDY] = section
        path = save_results(folder, NAME, {"benchmark": NAME, "environment": environment(device),
                                           "cpu": cpu_features(), "studies": dict(sorted(studies.items()))})
    print(f"wrote {path} ({section['seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
