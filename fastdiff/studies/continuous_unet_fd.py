"""Study 3's FD settings, measured once by ``python benchmarks/digits_fd.py --study 03`` (`fastdiff.measure.fd_sweep`):
the zoo U-Net and cU-Net sampled as `continuous_unet.fd_curve` samples them (DDPM ancestral on a respaced schedule,
batches of 200 whose sampler noise is seeded 1 + the batch's first index) at every step count of the quick grid and
at 30, the paper's best step count for the U-Net (Table 1), which the grid lacks; and the cU-Net's three ablations
at the step count the notebook scores them at. Every setting starts from the same n = 1000 x_T.

`sweep_of` gives the same sweep of models trained in a notebook run (their weights' sha256 computed here), for the
profiles that measure in the notebook.
"""
from __future__ import annotations

import hashlib
import sys
from types import SimpleNamespace

import torch

from .. import zoo
from ..diffusion import make_schedule
from ..measure.fd_sweep import FDSetting
from ..sampling import DDPM, sampler_call
from .continuous_unet import PROFILES, STUDY, ZOO_MODELS

IMAGE_SIZE = PROFILES["quick"].image_size
STEPS = tuple(sorted({*PROFILES["quick"].steps, 30}))     # the quick grid and the paper's U-Net count
MAIN = ("U-Net", "cU-Net")
ABLATION_STEPS = PROFILES["quick"].ablation_steps
BATCH = PROFILES["quick"].fd_batch


def key(name: str, steps: int) -> str:
    """A setting's key: the zoo entry's name and the step count, "unet-ddpm30", "cunet-wo-a-ddpm20"."""
    return f"{ZOO_MODELS[name].split('/', 1)[1]}-ddpm{steps}"


def pairs_of(steps=STEPS, ablations=tuple(n for n in ZOO_MODELS if n not in MAIN),
             ablation_steps: int = ABLATION_STEPS) -> tuple[tuple[str, str], ...]:
    """The pairs the verdicts read: every two step counts of one model (which step counts are indistinguishable
    from its best, "fewer-steps"), the cU-Net against the U-Net at each step count, each ablation against the
    cU-Net."""
    within = [(key(m, a), key(m, b)) for m in MAIN for i, a in enumerate(steps) for b in steps[i + 1:]]
    across = [(key("cU-Net", k), key("U-Net", k)) for k in steps]
    return tuple(within + across + [(key(m, ablation_steps), key("cU-Net", ablation_steps)) for m in ablations])


PAIRS = pairs_of()


def _sampling_fn(model, schedule, steps: int, *, device, batch: int, seed: int = 0):
    def sample(x_T: torch.Tensor) -> torch.Tensor:
        x_T = x_T.to(device)
        return torch.cat([sampler_call(model, schedule, DDPM, steps, x_T[i:i + batch], seed=seed + 1 + i)()
                          .float().cpu() for i in range(0, len(x_T), batch)])
    return sample


def settings_of(models: dict, *, entries: dict[str, tuple[str | None, str | None]], steps=STEPS,
                ablation_steps: int = ABLATION_STEPS, device="cpu", batch: int = BATCH) -> list[FDSetting]:
    """The settings of ``models`` ({name: model}; U-Net and cU-Net at every step count of ``steps``, the others at
    ``ablation_steps``), ``entries``: {name: (zoo entry or None, sha256 of the weights)}."""
    schedule = make_schedule("linear")
    out = []
    for name, model in models.items():
        model = model.to(device).eval()
        entry, sha = entries[name]
        for k in (steps if name in MAIN else (ablation_steps,)):
            sampling = {"model": name, "sampler": DDPM.label, "options": dict(DDPM.options), "steps": k, "batch": batch,
                        "schedule": "linear"}
            out.append(FDSetting(key(name, k), f"{name}, DDPM {k} steps", sampling,
                                 _sampling_fn(model, schedule, k, device=device, batch=batch), entry=entry,
                                 sha256=sha))
    return out


def fd_settings(device="cpu") -> list[FDSetting]:
    """The settings of study 3's measurement: the five zoo models, each loaded once, their sha256 recorded."""
    models, entries = {}, {}
    for name, entry in ZOO_MODELS.items():
        models[name], e = zoo.load(entry, device=device, verbose=False)
        entries[name] = (entry, e.sha256)
    return settings_of(models, entries=entries, device=device)


def weights_sha256(model: torch.nn.Module) -> str:
    """The sha256 of a model's weights (its state dict's names and float32 bytes): what a cached measurement of a
    model trained here must match."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def sweep_of(models: dict, *, steps=STEPS, ablation_steps: int = ABLATION_STEPS, batch: int = BATCH):
    """This study's sweep (STUDY, IMAGE_SIZE, PAIRS, fd_settings) of models trained in a run rather than the zoo's,
    for `fastdiff.measure.fd_sweep.load_or_measure`: ``steps`` the U-Net's and cU-Net's step counts (sorted)."""
    steps = tuple(sorted(steps))
    ablations = tuple(n for n in models if n not in MAIN)
    entries = {name: (None, weights_sha256(m)) for name, m in models.items()}
    return SimpleNamespace(
        STUDY=STUDY, IMAGE_SIZE=IMAGE_SIZE, PAIRS=pairs_of(steps, ablations, ablation_steps),
        fd_settings=lambda device="cpu": settings_of(models, entries=entries, steps=steps,
                                                     ablation_steps=ablation_steps, device=device, batch=batch))


def sweep_for(models: dict, *, weights: str, remeasure, steps=STEPS, ablation_steps: int = ABLATION_STEPS,
              batch: int = BATCH):
    """(the sweep, remeasure) for a notebook run's `fastdiff.measure.fd_sweep.load_or_measure`: the zoo's
    (this module) with ``remeasure`` as given when the run loaded the zoo's weights; else a sweep of ``models``
    (`sweep_of`), measured in the run ("auto" becomes True: the committed measurement is of the zoo's weights)."""
    if weights == "zoo":
        return sys.modules[__name__], remeasure
    return sweep_of(models, steps=steps, ablation_steps=ablation_steps, batch=batch), \
        True if remeasure == "auto" else remeasure
