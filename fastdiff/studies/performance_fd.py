"""Study 5's FD settings, measured once by ``python benchmarks/digits_fd.py --study 05`` (`fastdiff.measure.fd_sweep`):
the digits U-Net of notebook 05's ladder (zoo:skipping/baseline-plain, its U-Net alone) at every rung of the
inference ladder, sampled as the ladder samples its quality run (deterministic DDIM, 20 steps, under the rung's
precision, layout, attention, compilation and convolution), and the architecture table's three models (baseline,
bottleneck blocks, fewer levels) sampled as that table samples them (50 respaced ancestral steps, DDIM eta 1), all
from the same n x_T. No rung is assumed to share fp32's FD: the rungs in fp32 arithmetic (channels_last, manual
attention, compile, im2col) only reorder sums (x_0 moves by ~1e-5 after a whole DDIM run), the half-precision ones
round every matmul input (x_0 moves by up to ~0.7); each is sampled and paired with fp32 on the same x_T.

Every setting's ``sampling`` records its dtype; a half-precision rung on a CPU also records the instruction class
that computed it (`fastdiff.devices.instruction_class`: bf16 on an AVX-512 BF16 CPU uses its bf16 dot products)."""
from __future__ import annotations

import hashlib
import sys
from types import SimpleNamespace

import torch

from .. import zoo
from ..devices import DTYPES, instruction_class
from ..diffusion import make_schedule
from ..measure import fd_sweep
from ..measure.fd_sweep import FDSetting
from ..sampling import DDIM, sampler_call
from .inference_ladder import LADDER, prepare
from .performance import ARCH_BASELINE, ARCHITECTURE_VARIANTS, arch_zoo_models

STUDY = "05_performance"
IMAGE_SIZE = 16
LADDER_STEPS = 20                 # notebook 05's ladder quality run: deterministic DDIM (eta 0)
ARCH_STEPS, ARCH_ETA = 50, 1.0    # its architecture table: respaced ancestral sampling, as study 2
BATCH = 250
RUNG_KEYS = {"fp32": "fp32", "channels_last": "channels-last", "bf16 autocast": "bf16-autocast",
             "fp16 autocast": "fp16-autocast", "manual attention (not SDPA)": "manual-attention",
             "torch.compile": "compile", "compile, frozen weights": "compile-frozen",
             "bf16 + compile, frozen weights": "bf16-compile-frozen", "im2col convolution": "im2col"}
ARCH_KEYS = {ARCH_BASELINE: "arch-baseline", **{label: "arch-" + v.zoo_name.split("/")[-1]
                                                for label, v in ARCHITECTURE_VARIANTS.items()}}
# the pairs the verdicts read (a, b): every rung against fp32 (the same weights and x_T), every architecture variant
# against the baseline (the same x_T and ancestral noise)
PAIRS = tuple((RUNG_KEYS[r.name], "fp32") for r in LADDER if r.name != "fp32") + \
    tuple((key, ARCH_KEYS[ARCH_BASELINE]) for label, key in ARCH_KEYS.items() if label != ARCH_BASELINE)


def rung_key(name: str) -> str:
    """The setting key of a ladder rung's name ("bf16 autocast" -> "bf16-autocast")."""
    return RUNG_KEYS[name]


def arch_key(label: str) -> str:
    """The setting key of an architecture table row ("baseline (4 levels, ResNet blocks)" -> "arch-baseline")."""
    return ARCH_KEYS[label]


def weights_sha256(model: torch.nn.Module) -> str:
    """A digest of a model's weights (for weights trained in a run: no zoo file to hash), so that cached samples
    of other weights are never taken for these."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _batches(sample_batch, x_T: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([sample_batch(x_T[i:i + batch], i).float().cpu() for i in range(0, len(x_T), batch)])


def _rung_sampler(model, rung, schedule, steps: int, *, device, batch: int):
    def sample(x_T: torch.Tensor) -> torch.Tensor:          # prepared (compiled) only when sampled, not when cached
        size = min(batch, len(x_T))
        m, _ = prepare(model, rung, device=device, batch_size=size)
        return _batches(lambda x, i: sampler_call(m, schedule, DDIM, steps, x.to(device), dtype=DTYPES[rung.dtype],
                                                  seed=1 + i)(), x_T, size)
    return sample


def _arch_sampler(model, schedule, steps: int, eta: float, *, device, batch: int):
    def sample(x_T: torch.Tensor) -> torch.Tensor:
        m = model.to(device).eval()
        return _batches(lambda x, i: sampler_call(m, schedule, DDIM.with_options(eta=eta), steps, x.to(device),
                                                  seed=1 + i)(), x_T, batch)
    return sample


def _zoo_models(device) -> tuple[dict, dict]:
    """({label: model}, {label: (entry, sha256)}) of the architecture table from the zoo (the baseline's U-Net taken
    out of its skipping wrapper, as notebook 05 evaluates it)."""
    models, weights = {}, {}
    for label, name in arch_zoo_models().items():
        model, e = zoo.load(name, device=device, verbose=False)
        models[label] = model.inner if label == ARCH_BASELINE else model
        weights[label] = (name, e.sha256)
    return models, weights


def fd_settings(device="cpu", *, models: dict | None = None, rungs=LADDER, ladder_steps: int = LADDER_STEPS,
                arch_steps: int = ARCH_STEPS, arch_eta: float = ARCH_ETA, batch: int = BATCH) -> list[FDSetting]:
    """The settings of study 5's measurement: the baseline at every rung of ``rungs``, then the architecture table's
    models. ``models``: {label: model} of the architecture table, the baseline first (weights trained in a run,
    recorded by their digest); None: the zoo's, recorded by entry and sha256."""
    device = torch.device(device)
    if models is None:
        models, weights = _zoo_models(device)
    else:
        weights = {label: (None, weights_sha256(m)) for label, m in models.items()}
    schedule = make_schedule("linear")
    baseline = models[ARCH_BASELINE].eval()
    entry, sha = weights[ARCH_BASELINE]
    out = []
    for r in rungs:
        sampling = {"sampler": DDIM.label, "eta": 0.0, "steps": ladder_steps, "batch": batch, "rung": r.name,
                    "dtype": r.dtype, "channels_last": r.channels_last, "attention": r.attention,
                    "compile": "frozen" if r.freeze else r.compile, "im2col": r.im2col}
        if r.dtype != "fp32" and device.type == "cpu":
            sampling["arithmetic"] = instruction_class()
        out.append(FDSetting(rung_key(r.name), f"digits U-Net, {r.name} (DDIM {ladder_steps} steps, eta 0)", sampling,
                             _rung_sampler(baseline, r, schedule, ladder_steps, device=device, batch=batch),
                             entry=entry, sha256=sha))
    for label, model in models.items():
        entry, sha = weights[label]
        sampling = {"sampler": DDIM.label, "eta": arch_eta, "steps": arch_steps, "batch": batch, "dtype": "fp32"}
        out.append(FDSetting(arch_key(label), f"{label} ({arch_steps} respaced steps, eta {arch_eta:g})", sampling,
                             _arch_sampler(model, schedule, arch_steps, arch_eta, device=device, batch=batch),
                             entry=entry, sha256=sha))
    return out


def notebook_study(profile, *, weights: str, models: dict, rungs, remeasure):
    """(the study `fastdiff.measure.fd_sweep.load_or_measure` reads or measures for notebook 05, the ``remeasure``
    to pass it): this module for the zoo weights at its own steps; otherwise a stand-in with the same STUDY whose
    settings sample the notebook's ``models`` at the ``profile``'s steps, always measured here (the committed file
    measured the zoo's weights at this module's steps, which these are not)."""
    own = (profile.ddim_steps, profile.arch_steps, profile.arch_eta) == (LADDER_STEPS, ARCH_STEPS, ARCH_ETA)
    if weights == "zoo" and own:
        return sys.modules[__name__], remeasure
    stand_in = SimpleNamespace(
        STUDY=STUDY, IMAGE_SIZE=IMAGE_SIZE, PAIRS=PAIRS,
        fd_settings=lambda device: fd_settings(device, models=None if weights == "zoo" else models, rungs=rungs,
                                               ladder_steps=profile.ddim_steps, arch_steps=profile.arch_steps,
                                               arch_eta=profile.arch_eta))
    return stand_in, True


# ---- reading the measurement into notebook 05's tables -----------------------------------------------------------

FD = "FD (LeNet-MNIST)"


def with_fd(rows: list[dict], section: dict, *, ladder: bool) -> list[dict]:
    """``rows`` (the ladder's, by "rung", or the architecture table's, by "model") with the measurement's FD of
    each (`fastdiff.measure.intervals.Estimate`, bias-corrected, with its 95% interval and n) under "FD (LeNet-MNIST)",
    and its paired ratio to fp32's (ladder) or to the baseline's (architecture) under "FD / fp32" or "FD /
    baseline". A row the section did not measure is left as it is."""
    fds, ratios = fd_sweep.estimates(section), fd_sweep.pairs(section)
    key_of, ref, column = (lambda r: RUNG_KEYS.get(r["rung"]), "fp32", "FD / fp32") if ladder else \
        (lambda r: ARCH_KEYS.get(r["model"]), ARCH_KEYS[ARCH_BASELINE], "FD / baseline")
    out = []
    for r in rows:
        k = key_of(r)
        extra = {FD: fds[k]} if k in fds else {}
        if (k, ref) in ratios:
            extra[column] = ratios[(k, ref)]["ratio"]
        out.append({**r, **extra})
    return out


def fd_device(env: dict, section: dict) -> str:
    """The device label of a study's FD measurement (the section's own, else the file's)."""
    return section.get("device") or env["device"]


def source(section: dict) -> str:
    """Where a result row's FD comes from: the measurement, its date and n."""
    return f"FD measurement of {section['utc'][:10]} (benchmarks/digits_fd.py --study 05 or remeasure), n = " \
           f"{section['n']} per setting, {section['n_boot']} bootstrap resamples"
