"""The points of the digits speed/quality map (`fastdiff.studies.speed_quality_map`, notebook 07): which zoo models
they sample (`MODELS`, the distilled `STUDENTS`), and each point as data (`Point`): its model, sampler and step count,
and the methods that wrap it. `POINTS["quick"]` is the map; `POINTS["smoke"]` a few seconds of it for the tests. A
leaf of the map: it imports no other module of it."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..methods.consistency_distillation import CONSISTENCY
from ..sampling import DDIM, DDPM, DEIS, DPMPP_2M, HEUN, IPNDM, UNIPC, Sampler
from .inference_ladder import INT8_DYNAMIC, INT8_SIMULATED, LADDER

# label -> zoo entry; "U-Net" is study 2's plainly trained model taken out of its skipping wrapper (as study 5's
# baseline), "U-Net, skip-trained" the one trained for skipping at c = 2 (the wrapper kept).
MODELS = {"U-Net": "skipping/baseline-plain", "U-Net, skip-trained": "skipping/zero-consistent-c2",
          "fewer levels": "perf/fewer-levels", "bottleneck": "perf/bottleneck",
          "U-Net (study 3)": "cunet/unet", "cU-Net": "cunet/cunet",
          **{f"PD student, {n} step{'s' * (n > 1)}": f"distill/pd-{n}" for n in (8, 4, 2, 1)},
          "CD student": "distill/cd", "CD student, mu 0.95": "distill/cd-mu95",
          "U-Net, Block Caching 0.2 + scale-shift": "blockcache/ddim50-0.2-ss"}
# a model that caches by itself (Block Caching with its learned scale-shift, `AdjustedBlockCaching`): trained for one
# sampler and step count, the map's "Block Caching 0.2, DDIM 50" (the schedule its calibration gives): {label: steps}
CACHING_MODELS = {"U-Net, Block Caching 0.2 + scale-shift": 50}
# the distilled students: progressive distillation's (`fastdiff.methods.progressive_distillation`) and consistency
# distillation's (`fastdiff.methods.consistency_distillation`: target network mu = 0, the paper's CIFAR-10 setting,
# and mu = 0.95, its ImageNet 64 one). A PD student samples by DDIM in its own number of steps on its trailing grid
# (`student_schedule`), not on the map's evenly respaced one; a CD student in one step so too (its consistency
# function at pure noise is one DDIM step on that grid), or in 2 by multistep consistency sampling (Alg. 1:
# `CONSISTENCY`, re-noised to the middle of its 18-point training grid).
STUDENTS = {label: 1 if entry.startswith("distill/cd") else int(entry.rsplit("-", 1)[1])
            for label, entry in MODELS.items() if entry.startswith("distill/")}
CONSISTENCY_MODELS = tuple(label for label, entry in MODELS.items() if entry.startswith("distill/cd"))
UNWRAP = ("U-Net",)
RUNGS = {r.name: r for r in (*LADDER, INT8_DYNAMIC, *INT8_SIMULATED)}     # int8: the map's, not study 5's ladder
# Block Caching's schedule is set from the blocks' changes on a calibration run of the point's own sampler and
# steps, from other noise than the FD's x_T (seed 0); so are the static int8 rung's activation ranges
CALIBRATION = {"n": 16, "seed": 12345, "shape": (1, 16, 16)}
FAST_RUNG = "compile, frozen weights"
@dataclass(frozen=True)
class Point:
    label: str
    family: str                          # the map's colour: what kind of speed-up this is
    model: str = "U-Net"                 # a `MODELS` label
    sampler: Sampler = DDIM              # a `fastdiff.sampling.Sampler`, with its options (DDIM: eta 0)
    steps: int = 50
    skip_c: float | None = None          # layer skipping's k(t) at c (study 2)
    cache_interval: int | None = None    # deep-feature caching: a full call every N calls
    rung: str = "fp32"                   # a rung of study 5's ladder (`inference_ladder.LADDER`)
    fb_threshold: float | None = None    # adaptive first-block cache: relative L1 change below which a call is cached
    encprop_interval: int | None = None  # encoder propagation: the whole U-Net every N calls, the decoder between
    block_threshold: float | None = None  # Block Caching: a block computes when its change since it last did reaches it

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"point {self.label!r}: model {self.model!r} is not one of {list(MODELS)}")
        if not isinstance(self.sampler, Sampler):
            raise ValueError(f"point {self.label!r}: sampler must be a fastdiff.sampling.Sampler (DDPM, DDIM, "
                             f"DPMPP_2M, HEUN, UNIPC, DEIS, IPNDM, CONSISTENCY), got {self.sampler!r}")
        if self.rung not in RUNGS:
            raise ValueError(f"point {self.label!r}: rung {self.rung!r} is not one of {list(RUNGS)}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"point {self.label!r}: steps must be a positive integer, got {self.steps!r}")
        if self.sampler.name == CONSISTENCY.name and self.model not in CONSISTENCY_MODELS:
            raise ValueError(f"point {self.label!r}: {CONSISTENCY.label} samples a consistency model "
                             f"({', '.join(CONSISTENCY_MODELS)}), not the {self.model}")
        multistep = self.model in CONSISTENCY_MODELS and self.sampler.name == CONSISTENCY.name
        if self.model in STUDENTS and not multistep and (self.sampler.name != DDIM.name
                                                         or self.steps != STUDENTS[self.model]):
            also = f" (or by {CONSISTENCY.label})" if self.model in CONSISTENCY_MODELS else ""
            raise ValueError(f"point {self.label!r}: the {self.model} samples by DDIM in "
                             f"{STUDENTS[self.model]} steps{also}, not {self.sampler.label} in {self.steps}")
        others = (self.cache_interval, self.encprop_interval, self.fb_threshold, self.block_threshold, self.skip_c)
        if self.model in CACHING_MODELS and (self.sampler != DDIM or self.steps != CACHING_MODELS[self.model]
                                             or any(o is not None for o in others)):
            raise ValueError(f"point {self.label!r}: the {self.model} caches by itself, trained for DDIM "
                             f"{CACHING_MODELS[self.model]} (no other step cache)")
        if self.encprop_interval is not None and self.cache_interval is not None:
            raise ValueError(f"point {self.label!r}: encoder propagation and DeepCache both own the deep levels; "
                             f"give one of encprop_interval and cache_interval")

    @property
    def cache(self) -> str | None:
        """The point's step cache in words (None: none)."""
        names = [f"DeepCache N={self.cache_interval}" if self.cache_interval else None,
                 f"encoder propagation N={self.encprop_interval}" if self.encprop_interval else None,
                 f"first-block cache {self.fb_threshold:g}" if self.fb_threshold is not None else None,
                 f"Block Caching {self.block_threshold:g}" if self.block_threshold is not None else None,
                 self.model.split(", ", 1)[1] if self.model in CACHING_MODELS else None]
        return " + ".join(n for n in names if n) or None

    @property
    def nfe(self) -> int:
        """U-Net evaluations per image: the sampler's own count (Heun: two per step but the last)."""
        return self.sampler.nfe(self.steps)

    @property
    def full_calls(self) -> int:
        """Evaluations that run the whole U-Net (deep-feature caching runs only the shallow path in between, encoder
        propagation only the decoder); None for the adaptive first-block cache (it decides while sampling)."""
        if self.fb_threshold is not None or self.block_threshold is not None or self.model in CACHING_MODELS:
            return None
        interval = self.cache_interval or self.encprop_interval
        return math.ceil(self.nfe / interval) if interval else self.nfe


REFERENCE = Point("DDPM 1000", "DDPM (ancestral)", sampler=DDPM, steps=1000)
STUDENT_POINTS = tuple(
    [Point(label, "distillation", model=label, steps=n) for label, n in STUDENTS.items()
     if label not in CONSISTENCY_MODELS]
    + [Point(f"{label}, {n} step{'s' * (n > 1)}", "distillation", model=label, steps=n,
             **({"sampler": CONSISTENCY} if n > 1 else {})) for label in CONSISTENCY_MODELS for n in (1, 2)])


def _solvers() -> list[Point]:
    pts = [REFERENCE] + [Point(f"DDPM {n}", "DDPM (ancestral)", sampler=DDPM, steps=n) for n in (250, 100)]
    pts += [Point(f"DDIM {n}", "DDIM", steps=n) for n in (100, 50, 20, 10)]
    pts += [Point(f"DPM-Solver++(2M) {n}", "DPM-Solver++(2M)", sampler=DPMPP_2M, steps=n) for n in (50, 20, 10, 5)]
    pts += [Point(f"Heun (Karras) {n}", "Heun (Karras)", sampler=HEUN, steps=n) for n in (20, 10, 5)]
    pts += [Point(f"UniPC {n}", "UniPC (bh2)", sampler=UNIPC, steps=n) for n in (20, 10, 5)]
    pts += [Point(f"DEIS {n}", "DEIS", sampler=DEIS, steps=n) for n in (20, 10)]
    pts += [Point(f"iPNDM {n}", "iPNDM", sampler=IPNDM, steps=n) for n in (20, 10, 5)]
    return pts


def _methods() -> list[Point]:
    pts = [Point(f"skipping c={c:g}, DDIM 50", "layer skipping (study 2)", model="U-Net, skip-trained", skip_c=c)
           for c in (0, 1, 2, 3, 5)]
    pts += [Point(f"DeepCache N={n}, DDIM 100", "DeepCache", steps=100, cache_interval=n) for n in (2, 3, 5)]
    pts += [Point("DeepCache N=3, DDIM 50", "DeepCache", cache_interval=3)]
    pts += [Point(f"first-block cache {t:g}, DDIM 50", "first-block cache", fb_threshold=t) for t in (0.05, 0.1)]
    pts += [Point(f"encoder propagation N={n}, DDIM 50", "encoder propagation", encprop_interval=n) for n in (2, 3)]
    pts += [Point(f"Block Caching {t:g}, DDIM 50", "Block Caching", block_threshold=t) for t in (0.1, 0.2)]
    pts += [Point("Block Caching 0.2 + scale-shift, DDIM 50", "Block Caching",
                  model="U-Net, Block Caching 0.2 + scale-shift")]
    pts += [Point(f"{INT8_DYNAMIC.name}, DDIM 50", "precision / compile (study 5)", rung=INT8_DYNAMIC.name)]
    pts += STUDENT_POINTS
    pts += [Point(f"{m}, DDIM 50", "architecture (studies 3, 5)", model=m)
            for m in ("fewer levels", "bottleneck", "U-Net (study 3)", "cU-Net")]
    pts += [Point(f"{r}, DDIM 50", "precision / compile (study 5)", rung=r)
            for r in ("channels_last", "bf16 autocast", FAST_RUNG)]
    return pts


def _combinations() -> list[Point]:
    # Not offered: layer skipping under torch.compile. Its k(t) is read from the tensor t at every step, so dynamo
    # specialises the rest of the call on that step and recompiles for each of a run's timesteps (measured here:
    # 5 s per network call instead of 50 ms), which no user would run.
    dpm = dict(sampler=DPMPP_2M, steps=10)
    return [
        Point(f"DPM-Solver++ 10 + {FAST_RUNG}", "combination", rung=FAST_RUNG, **dpm),
        Point("skipping c=2 + DPM-Solver++ 10", "combination", model="U-Net, skip-trained", skip_c=2, **dpm),
        Point("DeepCache N=2 + DPM-Solver++ 20", "combination", cache_interval=2, **{**dpm, "steps": 20}),
        Point(f"fewer levels + DPM-Solver++ 10 + {FAST_RUNG}", "combination", model="fewer levels", rung=FAST_RUNG,
              **dpm),
        Point("cU-Net + DPM-Solver++ 10", "combination", model="cU-Net", **dpm),
        Point("first-block cache 0.05 + DPM-Solver++ 20", "combination", fb_threshold=0.05, **{**dpm, "steps": 20}),
        Point("encoder propagation N=2 + DPM-Solver++ 20", "combination", encprop_interval=2,
              **{**dpm, "steps": 20}),
        Point("Block Caching 0.2 + DPM-Solver++ 20", "combination", block_threshold=0.2, **{**dpm, "steps": 20}),
    ]


POINTS = {"quick": tuple(_solvers() + _methods() + _combinations()),
          # seconds, for the tests: one point of each kind of wrapper, a few steps
          "smoke": (Point("DDPM 4", "DDPM (ancestral)", sampler=DDPM, steps=4),
                    Point("DDIM 3", "DDIM", steps=3),
                    Point("DPM-Solver++(2M) 3", "DPM-Solver++(2M)", sampler=DPMPP_2M, steps=3),
                    Point("Heun (Karras) 2", "Heun (Karras)", sampler=HEUN, steps=2),
                    Point("skipping c=2, DDIM 3", "layer skipping (study 2)", model="U-Net, skip-trained", skip_c=2,
                          steps=3),
                    Point("DeepCache N=2, DDIM 3", "DeepCache", steps=3, cache_interval=2),
                    Point("UniPC 3", "UniPC (bh2)", sampler=UNIPC, steps=3),
                    Point("first-block cache 0.1, DDIM 3", "first-block cache", steps=3, fb_threshold=0.1),
                    Point("encoder propagation N=2, DDIM 3", "encoder propagation", steps=3, encprop_interval=2),
                    Point("Block Caching 0.3, DDIM 3", "Block Caching", steps=3, block_threshold=0.3),
                    Point("channels_last, DDIM 3", "precision / compile (study 5)", steps=3, rung="channels_last"))}
# settings measured for their quality alone, never timed and never on the map: int8 simulated in floating point
# (its time would be the simulation's). The FD measurement scores them beside the map's points, from the same x_T.
QUALITY_ONLY = {"quick": tuple(Point(f"{r.name}, DDIM 50", "int8 simulated (quality only)", rung=r.name)
                               for r in INT8_SIMULATED),
                "smoke": ()}
