"""Study 4, notebook 04: the SwinDiffuser, patch-parallel diffusion SR with rolling shifted windows (Ye's thesis,
Ch. 2 and Tables 3.1-3.6). The method is `fastdiff.methods.swin_diffuser` (geometry in
`fastdiff.methods.patch_parallel`); the multi-process sampler is `fastdiff.swin_torchrun`. This module holds the study: the
thesis's numbers, its variants at a CPU size and their zoo recipes, SR sampling with a shift plan, the tables, the
seam score, timing on 1 and 2 processes, and the verdicts.

The thesis's setting: CelebA 64x64 from 32x32 (2x), 32x32 patches, 100 denoising steps, L1 noise loss, Adam 3e-4,
EMA; 7 epochs of 202k faces on two RTX A4000. Ours (offline): the scikit-image photos cut into 64x64 patches
(499 for training, 56 held out), the same 2x and patch sizes, 100 ancestral steps, and a patch U-Net of 0.27M
parameters trained for 3,000 steps of 4 images (16 patches) on one CPU core, diffusing the residual over bicubic
upsampling and seeing its own LR crop (`CPU_SWIN`: both for the CPU budget). The residual's mean over each patch
is known (zero), so sampling sets it (`KnownResidualMean`, issue 27), and the verdicts judge only models that pass
the SR sanity checks (`fastdiff.measure.sr_sanity`; `sanity_records`, `sanity_not_testable`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .. import papers
from ..checks import check_bool
from ..data import downsample, load_dataset
from ..diffusion import make_schedule, space_timesteps
from ..measure.bench import interleaved
from ..measure import sr_sanity
from ..measure import sr_eval
from ..measure.sr_eval import bicubic, sr_metrics
from ..methods.patch_parallel import seam_score
from ..methods.swin_diffuser import (KnownResidualMean, SwinConfig, build_swin, shift_plan, shift_sampler,
                                     training_data)
from ..profiles import profile_by_name
from ..progress import progress_bar
from ..results import Results
from ..train import TrainConfig, train
from ..verdicts import Claim, all_of, any_of, grade, grade_interval, holds, need
from ..recipes import Recipe, slug, zoo_or_train_each

# ------------------------------------------------------------------------------------------ the thesis's numbers
STUDY = "04_swindiffuser"
THESIS = "Ye, SwinDiffuser thesis (Ch. 3)"
METRICS = ("PSNR", "SSIM", "LPIPS", "LR-PSNR")


def _thesis(variant: str, metric: str | None = None):
    """The thesis's (PSNR, SSIM, LPIPS, LR-PSNR) of ``variant``, or its one ``metric`` (`fastdiff.papers`)."""
    if metric is not None:
        return papers.value(STUDY, variant, metric)
    return tuple(papers.value(STUDY, variant, m) for m in METRICS)


PAPER_TABLE_3_1 = {s: _thesis(f"step {s}") for s in (0, 4, 8, 12, 16)}   # step size -> (PSNR, SSIM, LPIPS, LR-PSNR)
PAPER_TABLE_3_2 = {k: _thesis(v) for k, v in (("none", "no shift"), ("random", "random pattern"),
                                              ("fixed", "fixed pattern"))}
PAPER_TABLE_3_3 = {p: _thesis(f"{p}x{p} patches") for p in (16, 32)}     # patch size
# seconds per sample on 1 and 2 GPUs (RTX A4000): 64x64, and 128x128 (4x) against SRDiff
PAPER_TABLE_3_4 = {g: _thesis(f"64x64, {g} GPU{'s' * (g > 1)}", "seconds per sample") for g in (1, 2)}
PAPER_TABLE_3_5 = {m: _thesis(f"{m}, 128x128") for m in ("SwinDiffuser", "SRDiff")}                   # 128, 4x
PAPER_TABLE_3_6 = {"SwinDiffuser": {g: _thesis(f"SwinDiffuser 128x128, {g} GPU{'s' * (g > 1)}", "seconds per sample")
                                    for g in (1, 2)},
                   "SRDiff": {1: _thesis("SRDiff 128x128, 1 GPU", "seconds per sample")}}

# ------------------------------------------------------------------------------------------ the variants
# The patch denoiser at the CPU size (the thesis gives no widths): an SR3-style U-Net, 32 -> 16 -> 8, base 16,
# self-attention in the middle block only.
CPU_UNET = dict(in_channels=3, base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(),
                middle_attention=True, dropout=0.0, norm_groups=8)
# The condition: a conv extractor of width 16 (the thesis's first kind). Two departures from the thesis, the same
# for every variant, for the CPU budget: ``local_lr``, each patch also sees its own LR crop, which the thesis's
# condition lacks (VARIANTS["fixed s8, thesis condition"] keeps the thesis's); ``residual``, the models diffuse
# HR - bicubic(LR) as SRDiff does, where the thesis's SwinDiffuser diffuses the HR image itself. Diffusing the HR
# image, our fixed-s8 model stayed far below bicubic upsampling after its 3,000 steps (measured while building the
# zoo), too far from a useful output for the settings to be compared.
CPU_SWIN = SwinConfig(inner={}, image_size=64, scale=2, patches=2, shift_mode="fixed", step_size=8,
                      extractor="conv", feature_channels=16, extractor_blocks=1, local_lr=True, residual=True)


@dataclass(frozen=True)
class SwinVariant:
    """What a variant changes in the study's SwinDiffuser (`CPU_SWIN`); None keeps the base's value."""
    shift_mode: str | None = None        # none | fixed | random
    step_size: int | None = None         # s, the shift per step in HR pixels
    patches: int | None = None           # d: d x d patches
    local_lr: bool | None = None         # each patch also sees its own LR crop
    position_mask: bool | None = None    # the Gaussian position mask in the condition
    residual: bool | None = None         # diffuse HR - bicubic(LR) (False: the HR image itself, as the thesis)

    def config(self, base: SwinConfig) -> SwinConfig:
        return dataclasses.replace(base, **{k: v for k, v in dataclasses.asdict(self).items() if v is not None})


VARIANTS = {
    "no shift": SwinVariant(shift_mode="none", step_size=0),
    "fixed s4": SwinVariant(step_size=4),
    "fixed s8": SwinVariant(step_size=8),
    "fixed s12": SwinVariant(step_size=12),
    "fixed s16": SwinVariant(step_size=16),
    "random s8": SwinVariant(shift_mode="random", step_size=8),
    "16x16 patches, fixed s4": SwinVariant(patches=4, step_size=4),     # the thesis's 25% ratio at 16x16 patches
    "fixed s8, thesis condition": SwinVariant(local_lr=False),          # global features of [LR, mask] only
    "full-image baseline": SwinVariant(patches=1, shift_mode="none", step_size=0, position_mask=False),
    "fixed s8, no mask": SwinVariant(position_mask=False),        # without the thesis's Gaussian position mask
    "thesis setting": SwinVariant(local_lr=False, residual=False),  # the thesis's own: HR diffusion, global condition
}
# recipes only, not in the zoo (`fastdiff train swin/...`): the quick profile does not load them
NOT_IN_ZOO: tuple[str, ...] = ()
TABLE_3_1 = ("no shift", "fixed s4", "fixed s8", "fixed s12", "fixed s16")
TABLE_3_2 = ("no shift", "random s8", "fixed s8")
TABLE_3_3 = ("16x16 patches, fixed s4", "fixed s8")
MAIN = "fixed s8"
BASELINE = "full-image baseline"
ZOO_MODELS = {name: "swin/" + slug(name).replace("_", "-") for name in VARIANTS}

# The zoo's recipe, the same for every variant: L1 noise loss (the thesis's), Adam, 3k steps of 4 images; the lr is
# raised from the thesis's 3e-4 to 1e-3 with warm-up and cosine decay for the short budget.
QUICK_TRAIN = TrainConfig(steps=3000, batch_size=4, lr=1e-3, warmup_steps=100, cosine_decay=True, min_lr_ratio=0.05,
                          ema_decay=0.999, grad_clip=1.0, loss="l1", amp="fp32", checkpoint_every=500, log_every=50)
SCHEDULE = "linear"
DATA_LABEL = "scikit-image photos, 64x64 patches (499 train / 56 held out), 2x: 32 -> 64"


def variant_config(name: str, base: SwinConfig = CPU_SWIN) -> SwinConfig:
    if name not in VARIANTS:
        raise ValueError(f"unknown SwinDiffuser variant {name!r}; choose one of {list(VARIANTS)}")
    return VARIANTS[name].config(base)


def build(name: str, *, base: SwinConfig = CPU_SWIN, unet: dict = CPU_UNET, seed: int = 0):
    torch.manual_seed(seed)
    return build_swin(variant_config(name, base), unet)


def photos(split: str, *, folder: str = "", image_size: int = 64):
    """HR images of a split: the built-in photos' 64x64 patches, or a folder of images (FFHQ, CelebA: each image
    resized to ``image_size``), split 90/10 by a seeded permutation."""
    return load_dataset(f"folder:{folder}" if folder else "photos", image_size=image_size, split=split)


def recipes():
    """The zoo entries of notebook 04 (`fastdiff train swin/...`)."""
    out = []
    for name, entry in ZOO_MODELS.items():
        cfg = variant_config(name)
        out.append(Recipe(name=entry, description=f"notebook 04: SwinDiffuser {name}, photos 32 -> 64",
                          build=lambda name=name: build(name),
                          data=lambda cfg=cfg: training_data(cfg, photos("train")), data_label=DATA_LABEL,
                          schedule=SCHEDULE, train=QUICK_TRAIN,
                          timesteps=lambda model, schedule, cfg=cfg: shift_sampler(cfg.shift_mode, cfg.step_size,
                                                                                   len(schedule))))
    return out


# ------------------------------------------------------------------------------------------ profiles

@dataclass
class SwinProfile:
    train: TrainConfig = dataclasses.field(default_factory=lambda: QUICK_TRAIN)
    steps: int = 100                 # the thesis's 100 denoising steps (ancestral, respaced from 1000)
    eval_n: int = 8                  # held-out images of the live demonstration (the measurement scores all 56)
    eval_batch: int = 56
    sanity_n: int = 16               # held-out images of the SR sanity checks (8 samples of each per model)
    timing_steps: int = 20           # steps per timed sampling call (time per image scales with it)
    timing_rounds: int = 3
    bench_sizes: tuple[int, ...] = (64, 128)   # HR sizes of the 1- vs 2-process benchmark (torchrun launches)
    models: tuple[str, ...] = tuple(v for v in VARIANTS if v not in NOT_IN_ZOO)

    def __post_init__(self):
        unknown = [m for m in self.models if m not in VARIANTS]
        if unknown or MAIN not in self.models:
            raise ValueError(f"models must be among {list(VARIANTS)} and include {MAIN!r}; got {list(self.models)}")


PROFILES = {
    # 2 CPU cores: the zoo's nine models (weights="zoo"), or retrained with QUICK_TRAIN (weights="train", ~2 h)
    "quick": SwinProfile(),
    # one GPU: longer training, every held-out image, the thesis's 100 steps in the timing too
    "full": SwinProfile(train=dataclasses.replace(QUICK_TRAIN, steps=20_000, batch_size=32, checkpoint_every=2000),
                        eval_n=56, eval_batch=56, sanity_n=56, timing_steps=100, timing_rounds=5),
    # seconds: the from-scratch path, for the tests (its numbers mean nothing)
    "smoke": SwinProfile(train=TrainConfig(steps=2, batch_size=2, lr=1e-3, loss="l1", log_every=1, checkpoint_every=0),
                         steps=3, eval_n=2, eval_batch=2, sanity_n=2, timing_steps=2, timing_rounds=1,
                         bench_sizes=(64,),
                         models=("no shift", "fixed s8", "random s8", "16x16 patches, fixed s4", BASELINE)),
}


def get_profile(name: str, **overrides) -> SwinProfile:
    return profile_by_name(PROFILES, name, **overrides)


def get_models(profile: SwinProfile, *, weights: str, run, resume: bool = False, data=None):
    """({variant: EMA model}, {variant: provenance}, {variant: training info}): the zoo, or trained here on
    ``data`` (HR images; default the built-in photos' training split)."""
    resume = check_bool("resume", resume)                       # before the photos load
    schedule = make_schedule(SCHEDULE)
    hr = photos("train") if data is None else data

    def train_one(name, path, resume):
        cfg = variant_config(name)
        return train(build(name), training_data(cfg, hr), schedule, profile.train, checkpoint=path, resume=resume,
                     device=run.device, progress=False,
                     timesteps=shift_sampler(cfg.shift_mode, cfg.step_size, len(schedule)))
    return zoo_or_train_each({name: ZOO_MODELS[name] for name in profile.models}, weights=weights, run=run,
                             prefix="04", train_one=train_one, resume=resume)


# ------------------------------------------------------------------------------------------ sampling

def super_resolve(model, lr: torch.Tensor, schedule, steps: int, *, device, shift_mode: str | None = None,
                  step_size: int | None = None, seed: int = 0, batch_size: int = 64, eta: float = 1.0,
                  parallel=None, timings: dict | None = None, known_mean: bool = True) -> torch.Tensor:
    """SR outputs of a SwinDiffuser for ``lr`` (`fastdiff.measure.sr_eval.super_resolve`): ``steps`` respaced
    DDIM(eta) steps (eta = 1: ancestral, as the thesis) with the shift plan of ``shift_mode`` / ``step_size``
    (default: the model's own), the residual baseline's bicubic image added back. The same x_T and noise for every
    model. Float32 on the CPU. ``known_mean``: a residual model's noise prediction gets the per-patch mean that the
    residual's zero mean implies (`KnownResidualMean`; False: the network's own, issue 27's colour casts)."""
    c = model.config
    mode = c.shift_mode if shift_mode is None else shift_mode
    s = c.step_size if step_size is None else step_size
    net = KnownResidualMean(model, schedule) if c.residual and known_mean else model
    plan = shift_plan(space_timesteps(schedule.num_train_timesteps, steps), mode, s, seed=seed)
    cond = {k: v for k, v in {"shift_plan": plan, "parallel": parallel, "timings": timings}.items() if v is not None}
    return sr_eval.super_resolve(net, lr, schedule, steps, device=device, seed=seed, batch_size=batch_size, eta=eta,
                                 size=c.image_size, channels=c.lr_channels, cond=cond,
                                 residual_scale=c.scale if c.residual else None)


# ------------------------------------------------------------------------------------------ the tables

def sr_rows(models: dict, hr: torch.Tensor, schedule, *, steps: int, device, settings: dict | None = None,
            seed: int = 0, batch_size: int = 64, grid: int = 2, progress: bool = True, known_mean: bool = True):
    """One row per (model, sampling setting): PSNR, SSIM, LPIPS (None without AlexNet's weights), LR-PSNR and the
    seam score on the d = ``grid`` patch grid, on the LR images of ``hr``; bicubic first, the HR images' own seam
    score as the reference. ``settings``: {row label: (model name, shift_mode, step_size)}; default, each model
    with its own. ``known_mean``: see `super_resolve` (False: as before issue 27). Returns (rows, {label: SR
    images})."""
    lr = downsample(hr, 2)
    settings = settings or {name: (name, None, None) for name in models}
    outputs = {"bicubic (no model)": bicubic(lr, 2)}
    for label, (name, mode, s) in progress_bar(settings.items(), desc="SR tables", disable=not progress):
        outputs[label] = super_resolve(models[name], lr, schedule, steps, device=device, shift_mode=mode,
                                       step_size=s, seed=seed, batch_size=batch_size, known_mean=known_mean)
    rows = [{"model": "HR (real)", "seam score": seam_score(hr, grid)}]
    for label, sr in outputs.items():
        rows.append({"model": label, **sr_metrics(sr, hr, lr, device=device), "seam score": seam_score(sr, grid)})
    return rows, outputs


def beside_paper(rows: list[dict], paper: dict, key) -> list[dict]:
    """Our metrics with the thesis's beside them: ``key(row label) -> the paper table's key`` (None: no figure)."""
    out = []
    for r in rows:
        k = key(r["model"])
        ref = paper.get(k) if k is not None else None
        row = dict(r)
        for name, value in zip(METRICS, ref or (None,) * 4):
            row[f"{name} (thesis)"] = value
        out.append(row)
    return out


def time_rows(models: dict, lr: torch.Tensor, schedule, *, steps: int, rounds: int, device) -> list[dict]:
    """Seconds per image of each model's sampling (``steps`` steps, one image, this process), side by side
    (interleaved rounds), with the share of pre/post-processing (roll, patchify, condition, unpatchify, unroll)."""
    calls, phases = {}, {}
    for name, m in models.items():
        calls[name] = lambda m=m: super_resolve(m, lr[:1], schedule, steps, device=device)
        phases[name] = {}
        super_resolve(m, lr[:1], schedule, steps, device=device, timings=phases[name])
    times = interleaved(calls, device=torch.device(device), rounds=rounds, warmup=1)
    rows = []
    for name, t in times.items():
        total = sum(phases[name].values())
        rows.append({"model": name, "steps": steps, "seconds per image": t["median_s"],
                     "IQR (s)": t["iqr_s"], "patches": models[name].config.patches ** 2,
                     "pre/post-processing share": phases[name].get("pre/post-processing", 0.0) / total})
    return rows


# ------------------------------------------------------------------------------------------ claims

def gap_key(metric: str, a: str, b: str) -> str:
    """The key of the paired gap mean(metric of a - metric of b) over the same held-out images and noise."""
    return f"{metric}: {a} - {b}"


def _gaps(m, *triples):
    """(the paired gaps `Estimate`s, one line of them): ``triples`` are (metric, a, b, unit)."""
    ests = need(m, *(gap_key(metric, a, b) for metric, a, b, _ in triples))
    ests = ests if isinstance(ests, list) else [ests]
    text = "; ".join(f"{metric} {a} - {b}: {e.format()}{unit}" for (metric, a, b, unit), e in zip(triples, ests))
    where = f", {m['quality device']}" if m.get("quality device") else ""
    return ests, f"{text} (paired, n={ests[0].n}{where})"


def _above(*ests):
    """Three-valued: each gap's whole 95% interval above zero (True), below (False), or straddling it (None)."""
    return [holds(e, 0.0, better="higher") for e in ests]


def _claims():
    def shifting(m):
        ests, text = _gaps(m, ("PSNR", MAIN, "no shift", " dB"), ("SSIM", MAIN, "no shift", ""),
                           ("seam score", "no shift", MAIN, ""))
        ok = _above(*ests)
        return grade_interval(all_of(*ok), any_of(*ok)), text, "fixed s8 against no shift, same held-out images and noise"

    def best_step(m):
        others = [v for v in TABLE_3_1 if v != MAIN]
        ests, text = _gaps(m, *(("SSIM", MAIN, v, "") for v in others))
        ok = _above(*ests)
        beaten_by = [v for v, o in zip(others, ok) if o is False]
        verdict = ("reproduced" if all(o is True for o in ok) else "contradicted" if len(beaten_by) > 1
                   else "partly" if beaten_by else "inconclusive")
        return verdict, text + (f"; better than s8: {', '.join(beaten_by)}" if beaten_by else ""), \
            "32x32 patches, each step size its own model"

    def pair_rule(a, b, why):
        def rule(m):
            ests, text = _gaps(m, ("PSNR", a, b, " dB"), ("SSIM", a, b, ""))
            ok = _above(*ests)
            return grade_interval(all_of(*ok), any_of(*ok)), text, why
        return rule

    def two_faster(m):
        t1, t2 = need(m, "1-process s per image (large)", "2-process s per image (large)")
        size = m.get("large size", "?")
        if m.get("shared cores"):
            return "not testable here", f"{t1:.3f} s (1 process) vs {t2:.3f} s (2 processes) at {size}x{size}", \
                "the two processes share this machine's cores, so they cannot run in parallel: needs two devices"
        return grade(t2 < 0.9 * t1, t2 < t1), f"{t1:.3f} s vs {t2:.3f} s per {size}x{size} image", m.get("device", "")

    fixed_random = pair_rule(MAIN, "random s8", "fixed s8 vs random s8, same images and noise")
    bigger_patches = pair_rule(MAIN, "16x16 patches, fixed s4", "32x32 patches (s8) vs 16x16 (s4)")
    below_baseline = pair_rule(BASELINE, MAIN, "same U-Net family and budget; 64x64 (the thesis's Table 3.5 is at "
                                               "128x128, 4x); a positive gap: the baseline is better")
    t1, t2, t3, t4, t5, t6 = (PAPER_TABLE_3_1, PAPER_TABLE_3_2, PAPER_TABLE_3_3, PAPER_TABLE_3_4, PAPER_TABLE_3_5,
                              PAPER_TABLE_3_6)

    def versus(a, b, table):       # the thesis's PSNR and SSIM of two rows
        return f"{a[0]:.2f} vs {b[0]:.2f} dB, {a[1]:.3f} vs {b[1]:.3f} ({table})"
    both = ("95% paired intervals of both gaps above zero (partly: one above and one below; contradicted: both "
            "below; otherwise, an interval straddling zero, inconclusive)")
    return [
        Claim("shifting", "rolling shifted windows reduce patch artifacts and raise PSNR/SSIM",
              f"no shift {t1[0][0]:.2f} dB / {t1[0][1]:.3f} -> step 8: {t1[8][0]:.2f} dB / {t1[8][1]:.3f} (Table 3.1)",
              "PSNR, SSIM and the seam score of fixed s8 against no shift: paired gaps over the held-out images",
              "95% paired intervals of all three gaps on the better side of zero (partly: some better and the rest "
              "worse; contradicted: all worse; otherwise, an interval straddling zero, inconclusive)", shifting),
        Claim("best-step", "a shift step of 25% of the patch (8 px) is the best step size",
              f"best SSIM {t1[8][1]:.3f} and LPIPS {t1[8][2]:.3f} at step 8 among {'/'.join(map(str, t1))} "
              "(Table 3.1)",
              "SSIM of step 8 against each other step size: paired gaps",
              "s8's SSIM above every other step's (95% paired intervals; partly: exactly one step better; "
              "contradicted: two or more better; inconclusive: none better but not all beaten)", best_step),
        Claim("fixed-vs-random", "the fixed (circular) pattern beats the random one at 100 steps",
              versus(t2["fixed"], t2["random"], "Table 3.2"), "PSNR and SSIM, fixed s8 vs random s8: paired gaps",
              both, fixed_random),
        Claim("patch-size", "32x32 patches beat 16x16", versus(t3[32], t3[16], "Table 3.3"),
              "PSNR and SSIM, 32x32 vs 16x16 patches: paired gaps", both, bigger_patches),
        Claim("two-devices", "two devices generate a large image faster than one",
              f"128x128: {t6['SwinDiffuser'][1]:.2f} s -> {t6['SwinDiffuser'][2]:.2f} s on 2 GPUs (Table 3.6); "
              f"64x64: {t4[1]:.2f} -> {t4[2]:.2f} s, slower (Table 3.4)",
              "seconds per image on 1 and 2 processes (torchrun) at the larger benchmark size",
              "at least 10% faster (partly: faster)", two_faster),
        Claim("below-baseline", "the SwinDiffuser's quality stays below the full-image baseline (SRDiff)",
              versus(t5["SwinDiffuser"], t5["SRDiff"], "Table 3.5"),
              "PSNR and SSIM, the full-image baseline minus fixed s8: paired gaps", both, below_baseline),
    ]


CLAIMS = _claims()
# the models each claim's rule reads (a claim that reads a model failing the SR sanity checks is not testable)
CLAIM_MODELS = {"shifting": (MAIN, "no shift"), "best-step": TABLE_3_1, "fixed-vs-random": ("fixed s8", "random s8"),
                "patch-size": TABLE_3_3, "two-devices": (), "below-baseline": (MAIN, BASELINE)}


def sanity_records(models: dict, hr: torch.Tensor, schedule, *, steps: int, device, seed: int = 0,
                   batch_size: int = 64, bars: sr_sanity.SanityBars = sr_sanity.BARS) -> list[dict]:
    """Every model's SR sanity record (`fastdiff.measure.sr_sanity`) on the LR images of ``hr``: ``bars.samples``
    samples each, with its own shift plan (sample k from seed + 1000 k: no two samples share noise)."""
    lr = downsample(hr, 2)
    return sr_sanity.check_models({name: lambda k, m=m: super_resolve(m, lr, schedule, steps, device=device,
                                                                      seed=seed + 1000 * k, batch_size=batch_size)
                                   for name, m in models.items()}, hr, lr, bars=bars)


def sanity_not_testable(records: list[dict]) -> dict[str, str]:
    """`fastdiff.verdicts.judge`'s ``not_testable`` for the claims that read a model failing the sanity checks."""
    return sr_sanity.not_testable(CLAIM_MODELS, records)


def bench_for_claims(bench: dict | None) -> dict:
    """What the two-devices claim reads: the 1- and 2-process times of the larger size from this run's benchmark
    (`fastdiff.swin_torchrun.benchmark`), with the machine it ran on; empty without a benchmark. The quality claims
    read the committed measurement (`patch_parallel_sr_quality.measured_for_claims`)."""
    if not bench:
        return {}
    large = max(bench["sizes"], key=int)
    per = bench["sizes"][large]
    if "1" not in per or "2" not in per:
        return {}
    return {"large size": int(large), "1-process s per image (large)": per["1"]["seconds per image"],
            "2-process s per image (large)": per["2"]["seconds per image"],
            "shared cores": bench.get("shared cores", False), "device": per["1"].get("device", "")}


def collect_results(run, *, dataset: str, weights: str, rows: list[dict], time_table: list[dict],
                    bench: dict | None, verdicts: list[dict], steps: int, measured_on: dict | None = None):
    """The results rows: each model's quality (a number, or an `Estimate` with its interval and n) and times.
    ``measured_on``: the quality measurement's ``environment`` when the rows come from the committed measurement
    (`patch_parallel_sr_quality`), whose device labels those rows (not this run's)."""
    res = Results(STUDY, device=run.env["device"], dtype=run.dtype_name, dataset=dataset, weights=weights,
                  profile=run.profile, seed=run.seed, environment=run.env)
    where = {"device": measured_on["device"], "measured": measured_on["utc"]} if measured_on else {}
    for r in rows:
        for metric in (*METRICS, "seam score"):
            if r.get(metric) is not None:
                res.add("SwinDiffuser", r["model"], metric, r[metric], steps=steps, **where,
                        paper_value=r.get(f"{metric} (thesis)"), paper_source=THESIS if r.get(f"{metric} (thesis)")
                        is not None else "")
    for r in time_table:
        res.add("SwinDiffuser", r["model"], "time per image", 1e3 * r["seconds per image"], steps=r["steps"],
                processes=1)
    if bench:
        for size, per in bench["sizes"].items():
            for b in per.values():
                res.add(f"{b.get('model', 'SwinDiffuser')} (torchrun)", f"{size}x{size}", "time per image",
                        1e3 * b["seconds per image"], steps=bench["steps"], processes=b["processes"],
                        threads=b["threads per process"], note=bench.get("note", ""))
    res.verdicts = verdicts
    return res
