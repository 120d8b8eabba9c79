"""Study 0's FD settings, measured once by ``python benchmarks/digits_fd.py --study 00`` (`fastdiff.measure.fd_sweep`):
the zoo model `basics/quick-ddpm` sampled by DDIM (eta 0) at 5-50 steps, by DDIM at eta 0.5 and 1 at 10 and 20
steps (the DDIM paper's Table 1 columns: its eta columns differ most at 10 steps), and by DDPM's full 1000-step
ancestral chain (1000 network calls per image: 10 s on one core, 3 hours for 1000 images, sampled in chunks of
250 that an interrupted run keeps), every setting from the same x_T."""
from __future__ import annotations

import torch

from .. import zoo
from ..diffusion import make_schedule
from ..measure import fd_sweep
from ..measure.fd_sweep import FDSetting
from ..sampling import DDIM, DDPM, Sampler, sampler_call

STUDY = "00_diffusion_basics"
ZOO_MODEL = "basics/quick-ddpm"
DDIM_STEPS = (5, 10, 20, 25, 50)
ETA_STEPS = (10, 20)
ETAS = (0.5, 1.0)
DDPM_STEPS = 1000
BATCH = 250
IMAGE_SIZE = 32
# the pairs the verdicts read (a, b): FD(a) - FD(b) and FD(a) / FD(b) over their common x_T
PAIRS = (("ddim50", "ddpm1000"), ("ddim10", "ddim50"), ("ddim10", "ddim10-eta1"), ("ddim20", "ddim20-eta1"),
         ("ddim10", "ddim10-eta0.5"), ("ddim20", "ddim20-eta0.5"))


def key(steps: int, eta: float = 0.0) -> str:
    """A setting's key: "ddim50", "ddim20-eta1", "ddpm1000"."""
    return f"ddim{steps}" + ("" if eta == 0 else f"-eta{eta:g}")


def _sampling_fn(model, schedule, sampler: Sampler, steps: int, *, device, seed: int = 0):
    def sample(x_T: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Images from x_T, batch by batch, each batch seeded by its index in the whole x_T (``start``: where
        this x_T begins there), so a chunk draws what the whole does."""
        x_T = x_T.to(device)
        return torch.cat([sampler_call(model, schedule, sampler, steps, x_T[i:i + BATCH],
                                       seed=seed + 1 + start + i)()
                          .float().cpu() for i in range(0, len(x_T), BATCH)])
    return sample


def fd_settings(device="cpu", *, model=None, schedule=None) -> list[FDSetting]:
    """The settings of study 0's measurement: the zoo model (loaded once, its sha256 recorded), or ``model`` (one
    trained in a notebook run, recorded as such) on ``schedule`` (default: DDPM's linear one; its DDPM setting takes
    every training step)."""
    if model is None:
        model, e = zoo.load(ZOO_MODEL, device=device, verbose=False)
        common = dict(entry=ZOO_MODEL, sha256=e.sha256)
    else:
        common = dict(entry="trained in this run", sha256=None)
    model.to(device).eval()
    schedule = schedule or make_schedule("linear")
    T = schedule.num_train_timesteps

    def setting(sampler: Sampler, steps: int, label: str, k: str, chunk: int | None = None) -> FDSetting:
        sampling = {"sampler": sampler.label, "options": dict(sampler.options), "steps": steps, "batch": BATCH}
        return FDSetting(k, label, sampling, _sampling_fn(model, schedule, sampler, steps, device=device),
                         chunk=chunk,
                         **common)
    out = [setting(DDIM, k, f"DDIM {k} steps, eta 0", key(k)) for k in DDIM_STEPS if k <= T]
    out += [setting(DDIM.with_options(eta=eta), k, f"DDIM {k} steps, eta {eta:g}", key(k, eta))
            for k in ETA_STEPS for eta in ETAS if k <= T]
    out.append(setting(DDPM, T, f"DDPM {T} steps (ancestral)", "ddpm1000", chunk=BATCH))
    return out


# ---- the notebook's views of the committed measurement ---------------------------------------------------------

def fd_curve(fd: dict) -> list[dict]:
    """The committed FDs of DDIM (eta 0) against steps, and the floor, as `fastdiff.plotting.plot_fd_vs_steps`
    rows: the bias-corrected FD with its 95% interval."""
    est, rows = fd_sweep.estimates(fd), []
    for k, r in [("floor", fd.get("floor"))] + list(fd["settings"].items()):
        if r is None or (k != "floor" and (r["sampling"]["sampler"] != DDIM.label or r["sampling"]["options"]["eta"])):
            continue
        rows.append({"source": r["label"], "steps": None if k == "floor" else r["sampling"]["steps"],
                     "FD (LeNet-MNIST)": est[k].value, "low": est[k].low, "high": est[k].high})
    return sorted(rows, key=lambda r: -1 if r["steps"] is None else r["steps"])


def eta_table(fd: dict):
    """DDIM's eta columns at the measured step counts: each FD (bias-corrected, 95% interval) and the paired
    difference FD(eta 0) - FD(eta e) over the same x_T."""
    import pandas as pd
    est, gaps, rows = fd_sweep.estimates(fd), fd_sweep.pairs(fd), []
    for steps in ETA_STEPS:
        row = {"steps": steps}
        for eta in (0.0, *ETAS):
            if (e := est.get(key(steps, eta))) is not None:
                row[f"FD, eta {eta:g}"] = e.format(2)
            if eta and (p := gaps.get((key(steps), key(steps, eta)))) is not None:
                row[f"FD(eta 0) - FD(eta {eta:g}), paired"] = p["difference"].format(2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("steps")


def beside_committed(fd_rows: list[dict], fd: dict):
    """The live demonstration's FDs beside the committed measurement of the same setting: both bias-corrected with
    their 95% intervals (the plug-in FD of n = 100 sits far above that of n = 1000; the corrected values compare),
    and whether the intervals overlap."""
    import pandas as pd
    committed = fd_sweep.estimates(fd)
    rows = []
    for r in fd_rows:
        k = "floor" if r["steps"] is None else key(r["steps"], r["eta"])
        live, then = r["FD bias-corrected [95%]"], committed.get(k)
        rows.append({"setting": r["source"], "live (n={})".format(live.n): live.format(2),
                     "committed": "-" if then is None else f"{then.format(2)} (n={then.n})",
                     "intervals overlap": None if then is None else live.low <= then.high and then.low <= live.high})
    return pd.DataFrame(rows).set_index("setting")
