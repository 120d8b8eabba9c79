"""fastdiff against the library users would pick instead (issue 29, part 3): the same weights (study 2's plain digits
U-Net, `speed_quality_map.MODELS["U-Net"]`) exported as a diffusers ``DDPMPipeline`` folder (`export_pipeline`) and
sampled with the schedulers a diffusers user tries (`SCHEDULERS`, each ``from_config`` of the exported scheduler;
DPM-Solver++ and UniPC also with the "trailing" spacing diffusers' docs advise for few steps) at `STEPS`, against
the map's best fastdiff point, at equal quality: FD (LeNet-MNIST) at or below the upper end of 1000-step DDPM's 95%
interval (the map's reference, `speed_quality_map.REFERENCE`: the same U-Net, the same FD, the same x_T).

How diffusers samples here: ``DDPMPipeline.__call__`` runs only DDIM and DPM-Solver++ correctly (`PIPELINE_CALL`): it
passes ``generator=`` to ``scheduler.step`` (UniPC's and DEIS's take none: a TypeError) and neither scales x_T by
``init_noise_sigma`` nor calls ``scale_model_input`` (Euler needs both: it runs, on unscaled noise). So every
candidate samples in `denoise`, diffusers' standard denoising loop (as its other pipelines write it), from a given
x_T: the FDs are *paired* with the map's (the same n x_T, seed 0, batch by batch), and for DDIM and DPM-Solver++ the
loop gives what the pipeline's own call gives from the same generator (tested). A user's options on this machine:
``torch.compile(pipe.unet)`` (a timing variant; FD is measured eager) and bf16 autocast, only where bf16 is fast
(`bf16_applies`: a CPU with AMX, or a GPU with bf16; its own FD settings then).

Measure once: ``python benchmarks/digits_fd.py --study vs`` (FDs, this module's `fd_settings`); then
``python benchmarks/vs_diffusers.py`` times the two bests side by side (`compare`)."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .. import zoo
from ..devices import autocast, device_name, instruction_class, machine
from ..diffusion import make_schedule
from ..diffusers_io import _diffusers, export_pipeline
from ..measure.bench import interleaved
from ..measure.fd_sweep import FDSetting, estimates
from ..measure.pareto import fastest_within_interval
from .speed_quality_map import (FAST_RUNG, FD_INTERVAL, FD_STUDY, METRIC, MODELS, POINTS, REFERENCE, TIME,
                                build_point, estimates_in, load_models, point_call)
from .speed_quality_map_fd import point_key

STUDY = "07_vs_diffusers"
IMAGE_SIZE = 16
ENTRY = MODELS["U-Net"]          # study 2's plainly trained U-Net (its skipping wrapper taken off), as the map's
BATCH = 50                       # the map's batch: its noise seeds and its timed call
# key -> (label, diffusers class, options over the exported DDPMScheduler config: a user's from_config)
SCHEDULERS = {"ddim": ("DDIM", "DDIMScheduler", {}),
              "dpmpp2m": ("DPM-Solver++(2M)", "DPMSolverMultistepScheduler",
                          {"algorithm_type": "dpmsolver++", "solver_order": 2}),
              "unipc": ("UniPC", "UniPCMultistepScheduler", {}),
              "euler": ("Euler", "EulerDiscreteScheduler", {}),
              "deis": ("DEIS", "DEISMultistepScheduler", {}),
              # the spacing diffusers' docs advise for few steps (the exported "leading" starts DPM-Solver++ 20 at 940)
              "dpmpp2m_trailing": ("DPM-Solver++(2M) trailing", "DPMSolverMultistepScheduler",
                                   {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                    "timestep_spacing": "trailing"}),
              "unipc_trailing": ("UniPC trailing", "UniPCMultistepScheduler", {"timestep_spacing": "trailing"})}
STEPS = (5, 10, 15, 20, 25, 50)
PIPELINE_CALL = ("ddim", "dpmpp2m", "dpmpp2m_trailing")     # what DDPMPipeline.__call__ runs as meant to run
REF_KEY = point_key(REFERENCE)          # "ddpm1000" in the map's FD section


@dataclass(frozen=True)
class Candidate:
    """One way a diffusers user samples: a `SCHEDULERS` key, its steps (one U-Net call each), torch.compile on the
    pipeline's U-Net or not, and fp32 or bf16 autocast."""
    scheduler: str
    steps: int
    compile: bool = False
    dtype: str = "fp32"

    @property
    def key(self) -> str:                # its FD setting's key (compile computes the same images)
        return f"{self.scheduler}{self.steps}" + ("-bf16" if self.dtype == "bf16" else "")

    @property
    def label(self) -> str:
        return (f"diffusers {SCHEDULERS[self.scheduler][0]} {self.steps}" + (", torch.compile" if self.compile else "")
                + (", bf16 autocast" if self.dtype == "bf16" else ""))

    def record(self) -> dict:
        _, cls, options = SCHEDULERS[self.scheduler]
        return {"scheduler": cls, "scheduler key": self.scheduler, "options": options, "steps": self.steps,
                "compile": self.compile, "dtype": self.dtype, "pipeline call works": self.scheduler in PIPELINE_CALL}


def bf16_applies(device) -> bool:
    """Whether a diffusers user would turn on bf16 here: a GPU that has it, or a CPU with AMX (elsewhere it is
    emulated or slow, as study 5 measured)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and instruction_class() == "AMX"


def candidates(device, *, schedulers=tuple(SCHEDULERS), steps=STEPS) -> list[Candidate]:
    """The eager candidates whose FD is measured: every scheduler at every step count, bf16 too where it applies."""
    dtypes = ("fp32", "bf16") if bf16_applies(device) else ("fp32",)
    return [Candidate(s, k, dtype=d) for d in dtypes for s in schedulers for k in steps]


def load_pipeline(model, folder, *, device="cpu"):
    """diffusers' ``DDPMPipeline`` of the fastdiff U-Net ``model``, exported into ``folder`` and loaded back as a
    user loads it (``from_pretrained``, offline), on ``device``, its progress bar off."""
    diffusers = _diffusers()
    export_pipeline(model, "linear", folder)
    pipe = diffusers.DDPMPipeline.from_pretrained(folder, local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_scheduler(pipe, name: str):
    """The scheduler ``name`` (a `SCHEDULERS` key) as a user makes it: ``from_config(pipe.scheduler.config)``."""
    _, cls, options = SCHEDULERS[name]
    return getattr(_diffusers(), cls).from_config(pipe.scheduler.config, **options)


@torch.no_grad()
def denoise(unet, scheduler, x_T: torch.Tensor, steps: int, *, dtype: torch.dtype = torch.float32,
            step_options: dict | None = None) -> torch.Tensor:
    """diffusers' denoising loop (its pipelines' own): x_T scaled by ``init_noise_sigma``, then per timestep the
    U-Net on ``scale_model_input(x, t)`` (under autocast for bf16) and ``scheduler.step``; images in [-1, 1]
    (DDPMPipeline's ``(x / 2 + 0.5).clamp(0, 1)``, read back). Every scheduler here is deterministic (DDIM at eta 0,
    Euler without churn): no generator."""
    scheduler.set_timesteps(steps, device=x_T.device)
    x = x_T * scheduler.init_noise_sigma
    options = dict(step_options or {})
    for t in scheduler.timesteps:
        with autocast(x.device, dtype):
            eps = unet(scheduler.scale_model_input(x, t), t).sample
        x = scheduler.step(eps.float(), t, x, **options).prev_sample
    return x.clamp(-1, 1)


def candidate_call(pipe, candidate: Candidate, x_T: torch.Tensor, *, unet=None):
    """One sampling call of ``candidate`` from the batch ``x_T``, not yet run (``unet``: the compiled U-Net to use
    for a compiled candidate, else ``torch.compile(pipe.unet)``)."""
    if candidate.compile and unet is None:
        unet = torch.compile(pipe.unet)
    net = unet if candidate.compile else pipe.unet
    scheduler = make_scheduler(pipe, candidate.scheduler)
    dtype = torch.bfloat16 if candidate.dtype == "bf16" else torch.float32
    return lambda: denoise(net, scheduler, x_T, candidate.steps, dtype=dtype)


def _plain_unet(device):
    model, entry = zoo.load(ENTRY, device=device, verbose=False)
    return model.inner, entry.sha256


def fd_settings(device="cpu", *, model=None, schedulers=tuple(SCHEDULERS), steps=STEPS,
                batch: int = BATCH) -> list[FDSetting]:
    """One setting per eager candidate (`candidates`), each sampled by `denoise` batch by batch from the sweep's x_T.
    ``model``: a fastdiff U-Net instead of the zoo's (the tests' tiny one; recorded as not the zoo's)."""
    device = torch.device(device)
    model, sha = _plain_unet(device) if model is None else (model, None)
    with tempfile.TemporaryDirectory(prefix="vs_diffusers_") as folder:    # the pipeline is in memory once loaded
        pipe = load_pipeline(model.eval(), Path(folder) / "pipeline", device=device)
    version = _diffusers().__version__
    out = []
    for c in candidates(device, schedulers=schedulers, steps=steps):
        def sample(x_T, c=c):
            return torch.cat([candidate_call(pipe, c, x_T[i:i + batch].to(device))().float().cpu()
                              for i in range(0, len(x_T), batch)])
        sampling = {"library": f"diffusers {version}", **c.record(), "batch": batch,
                    "loop": "init_noise_sigma, scale_model_input, unet, step"}
        if c.dtype != "fp32" and device.type == "cpu":
            sampling["arithmetic"] = instruction_class()
        out.append(FDSetting(c.key, c.label, sampling, sample, entry=ENTRY if sha else "given in this run",
                             sha256=sha))
    return out


# the pairs: each scheduler at fewer steps against itself at 50 (has it converged?), and each against DPM-Solver++
PAIRS = tuple((f"{s}{k}", f"{s}50") for s in SCHEDULERS for k in STEPS if k != 50) + \
    tuple((f"{s}{k}", f"dpmpp2m{k}") for s in SCHEDULERS if s != "dpmpp2m" for k in STEPS)


# ---------------------------------------------------------------------------------------------- the comparison

def reference(digits_fd: dict, device) -> tuple[dict, dict]:
    """(the map's reference setting, DDPM 1000, from its FD section; this study's section) of a digits_fd.json's
    content, refused when either was measured on another CPU model or GPU than ``device`` or on other weights."""
    here = device_name(torch.device(device))
    studies = digits_fd.get("studies", {})
    for name in (FD_STUDY, STUDY):
        if name not in studies:
            raise ValueError(f"digits_fd.json has no {name} section: run `python benchmarks/digits_fd.py --study "
                             f"{'07' if name == FD_STUDY else 'vs'}`")
        if machine(studies[name]["device"]) != machine(here):
            raise ValueError(f"the {name} FDs were measured on {studies[name]['device']}, this is {here}: one machine "
                             f"per verdict; measure them here (`python benchmarks/digits_fd.py`)")
    ref = studies[FD_STUDY]["settings"][REF_KEY]
    others = {r["sha256"] for r in studies[STUDY]["settings"].values()} - {ref["sha256"]}
    if others:
        raise ValueError(f"the {STUDY} FDs sampled other weights ({sorted(others)}) than the reference's "
                         f"{ref['sha256']}: measure again")
    return {**ref, "fd": estimates(studies[FD_STUDY])[REF_KEY]}, studies[STUDY]


def diffusers_rows(section: dict) -> list[dict]:
    """The candidates measured in ``section`` (this study's), one row each: label, key, scheduler, steps, NFE, dtype,
    `METRIC` (bias-corrected FD) and `FD_INTERVAL` (its `Estimate`)."""
    fds = estimates(section)
    return [{"label": r["label"], "key": k, "scheduler": r["sampling"]["scheduler key"],
             "steps": r["sampling"]["steps"], "NFE": r["sampling"]["steps"], "dtype": r["sampling"]["dtype"],
             METRIC: fds[k].value, FD_INTERVAL: fds[k]} for k, r in section["settings"].items()]


def shortlist(rows: list[dict], limit: float) -> tuple[list[dict], str]:
    """The rows worth timing: those with FD at or below ``limit`` at the fewest U-Net calls (every scheduler here
    calls it once a step, and more calls of the same network cost more), and why; none when none qualifies."""
    within = [r for r in rows if r[METRIC] <= limit]
    if not within:
        best = min(rows, key=lambda r: r[METRIC])
        return [], (f"no diffusers candidate reaches the reference's interval (FD <= {limit:.3g}); the lowest is "
                    f"{best['label']} at {best[METRIC]:.3g}")
    fewest = min(r["NFE"] for r in within)
    return [r for r in within if r["NFE"] == fewest], f"FD <= {limit:.3g} at {fewest} U-Net calls"


def fastest_within(rows: list[dict], limit: float) -> tuple[dict | None, str]:
    """The fastest timed row (`TIME`) whose FD is at or below ``limit`` (the reference's upper 95% end), and why;
    None with the reason when none is."""
    within = sorted((r for r in rows if r.get(TIME) is not None and r[METRIC] <= limit), key=lambda r: r[TIME])
    if not within:
        return None, f"none of {[r['label'] for r in rows]} has FD <= {limit:.3g}"
    return within[0], f"the fastest of {len(within)} with FD <= {limit:.3g}"


def fastdiff_best(map_part: dict, device, *, label: str | None = None) -> tuple[dict, object]:
    """(the map's row, its `Point`): ``label``'s, else the map's own choice by the same rule (judge_map's "within
    interval": the fastest point whose FD lies at or below the reference's upper 95% end). A map timed on another
    machine is refused."""
    here = device_name(torch.device(device))
    if machine(map_part["device"]) != machine(here):
        raise ValueError(f"the map was timed on {map_part['device']}, this is {here}: time it here "
                         f"(`python benchmarks/report_map.py`) or name fastdiff's point with --fastdiff")
    part = estimates_in(map_part)
    rows = part["rows"]
    ref = next(r for r in rows if r["label"] == part["reference"])
    if label is None:
        within = fastest_within_interval(rows, ref, x=TIME, y=METRIC, interval=FD_INTERVAL)   # judge_map's rule
        if within["headline"] is None:
            raise ValueError(f"no point of the map lies within the reference's interval (FD <= {within['limit']:.3g})")
        label = within["headline"]["label"]
    points = {p.label: p for p in POINTS["quick"]}
    row = next((r for r in rows if r["label"] == label), None)
    if row is None or label not in points:
        raise ValueError(f"no map point {label!r}; the map's: {[r['label'] for r in rows]}")
    return row, points[label]


def fastdiff_variants(point, *, compile: bool = True) -> dict[str, tuple[object, str]]:
    """{name: (point, note)}: the best, the best without its rung (its fp32 point), or with ``compile`` the best
    with the compiled rung when it has none and no wrapper (FD: the fp32 point's; the map measured the compiled rung
    leaving FD unchanged)."""
    out = {"fastdiff best": (point, "as measured")}
    if point.rung != "fp32":
        out["fastdiff best without its rung"] = (replace(point, rung="fp32", label=f"{point.label}, fp32"),
                                                   "FD: the best's, measured with its rung")
    elif compile and point.cache is None and point.skip_c is None:
        out[f"fastdiff best + {FAST_RUNG}"] = (replace(point, rung=FAST_RUNG, label=f"{point.label} + {FAST_RUNG}"),
                                               "FD: the best's, measured without compile")
    return out


def time_calls(calls: dict, *, device, rounds: int, batch: int) -> dict[str, dict]:
    """One interleaved run (`interleaved`, one warm-up call each: a compiled graph is built there) of ``calls``
    ({name: zero-argument call of one batch}): {name: {TIME, "IQR (ms)", "repeats"}} per image."""
    got = interleaved(calls, device=torch.device(device), rounds=rounds, warmup=1, progress=True)
    return {k: {TIME: v["median_s"] * 1e3 / batch, "IQR (ms)": v["iqr_s"] * 1e3 / batch, "repeats": v["repeats"]}
            for k, v in got.items()}


def ratio(slow: dict, fast: dict) -> dict:
    """slow / fast time per image, with a range from the two IQRs (each median +- half its IQR, the ends that
    make the ratio smallest and largest)."""
    (a, da), (b, db) = (slow[TIME], slow["IQR (ms)"] / 2), (fast[TIME], fast["IQR (ms)"] / 2)
    return {"ratio": a / b, "ratio range (IQRs)": [(a - da) / (b + db), (a + da) / max(b - db, 1e-12)]}


def compare(digits_fd: dict, map_part: dict, *, device, fastdiff_label: str | None = None, rounds: int = 5,
            batch: int = BATCH, compile: bool = True, model=None) -> dict:
    """The comparison: the reference's limit and both bests (`reference`, `shortlist`, `fastdiff_best`), then ONE
    interleaved run of one batch-``batch`` call of each shortlisted diffusers candidate (eager and, with ``compile``,
    compiled) and of fastdiff's best and its variant (`fastdiff_variants`), all from the same x_T; diffusers' best
    is the fastest timed candidate within the limit (`fastest_within`). Returns the result file's content."""
    device = torch.device(device)
    ref, section = reference(digits_fd, device)
    limit = ref["fd"].high
    short, why = shortlist(diffusers_rows(section), limit)
    fd_row, point = fastdiff_best(map_part, device, label=fastdiff_label)
    # ``model`` (the tests'): the U-Net of both sides; else the zoo's, and the fastdiff point's own zoo model
    models = {point.model: model} if model is not None else load_models([point.model], device=device)[0]
    model = _plain_unet(device)[0] if model is None else model
    with tempfile.TemporaryDirectory(prefix="vs_diffusers_") as folder:
        pipe = load_pipeline(model.eval(), Path(folder) / "pipeline", device=device)
    c = pipe.unet.config       # the map's first batch of x_T (seed 0), its sampler noise seeded 1 (`sample_point`)
    x = torch.randn((batch, c.in_channels, c.sample_size, c.sample_size), generator=torch.Generator().manual_seed(0))
    x = x.to(device)
    compiled = torch.compile(pipe.unet) if compile and short else None
    calls, rows = {}, {}
    for r in short:
        base = Candidate(r["scheduler"], r["steps"], dtype=r["dtype"])
        for c in (base, replace(base, compile=True)) if compiled is not None else (base,):
            calls[c.label] = candidate_call(pipe, c, x, unet=compiled)
            rows[c.label] = {"label": c.label, "library": "diffusers", **c.record(), METRIC: r[METRIC],
                             FD_INTERVAL: r[FD_INTERVAL].format(3)}
    schedule = make_schedule("linear")
    for name, (p, note) in fastdiff_variants(point, compile=compile).items():
        built = build_point(p, models, schedule, device=device, batch_size=batch)
        calls[name] = point_call(p, built, schedule, x, seed=1)
        rows[name] = {"label": p.label, "library": "fastdiff", "model": p.model, "sampler": p.sampler.label,
                      "steps": p.steps, "NFE": p.nfe,
                      "methods": p.cache or (f"layer skipping c={p.skip_c:g}" if p.skip_c is not None else None),
                      "rung": p.rung, METRIC: fd_row[METRIC], FD_INTERVAL: fd_row[FD_INTERVAL].format(3), "FD": note}
    for name, t in time_calls(calls, device=device, rounds=rounds, batch=batch).items():
        rows[name].update(t)
    diff_best, diff_why = fastest_within([r for r in rows.values() if r["library"] == "diffusers"], limit) \
        if short else (None, why)
    # fastdiff's side as diffusers': the faster of its timed variants (the same point and FD; compile as diffusers')
    fast = min((r for r in rows.values() if r["library"] == "fastdiff"), key=lambda r: r[TIME])
    for r in rows.values():          # every row against fastdiff's best: the runners-up read here
        r["time / fastdiff best"] = r[TIME] / fast[TIME]
    out = {"reference": {"label": REFERENCE.label, "FD [95%]": ref["fd"].format(3), "limit": limit},
           "diffusers shortlist": why, "diffusers best": diff_best, "why": diff_why, "fastdiff best": fast,
           "rows": list(rows.values()), "batch": batch, "rounds": rounds,
           "target": "fastdiff at least 2x faster than diffusers' best at equal quality"}
    out["fastdiff within limit"] = fast[METRIC] <= limit        # a point named by label may lie outside it
    if diff_best is not None:
        out["speed-up"] = ratio(diff_best, fast)
        out["target met"] = out["speed-up"]["ratio"] >= 2 and out["fastdiff within limit"]
    return out
