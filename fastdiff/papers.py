"""The papers' own numbers, as data in one shape: the input-side twin of `fastdiff.results` rows.

Each `PaperNumber` is one number a paper reports: the study it backs, the table or figure, the variant (model,
sampler, setting), the metric, the value, its unit and where it is. The claims of a study render their "paper"
column from these (`cite`), the tests run them through the claims' rules (a rule fed the paper's own numbers must
say "reproduced"), and the notebooks show them beside ours (`table`). A number typed once, here.

Studies converted so far: 00 (DDPM and DDIM) and 01 (VGG-conditioned SR); the others still keep theirs in their
claims' text.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["PaperNumber", "NUMBERS", "numbers", "value", "cite", "table"]


@dataclass(frozen=True)
class PaperNumber:
    study: str          # the notebook it backs, e.g. "00_diffusion_basics"
    table: str          # "Table 1", "Fig. 9", "Sec. 3.1"
    variant: str        # the model, sampler or setting: "DDIM 50, eta 0"
    metric: str         # "FID", "parameters", "speed-up", "fool rate"
    value: float
    unit: str           # "" for a plain number, "x", "%", "M" ...
    source: str         # the paper, and what the number was measured on

    def text(self) -> str:
        """"FID 4.67 (DDIM 50, eta 0)"."""
        v = f"{self.value:g}{self.unit}"
        return f"{self.metric} {v} ({self.variant})"


_DDIM = "DDIM paper (Song et al. 2021), CIFAR-10, FID on 50k samples"
_DDPM = "DDPM paper (Ho et al. 2020), CIFAR-10, FID on 50k samples"
_VGGSR = "VGG-SR paper (Klement et al.), FFHQ 32->128"

NUMBERS: tuple[PaperNumber, ...] = (
    # DDIM, Table 1: FID by steps S and eta (eta 0 is DDIM; the DDIM-1000 column is the "1000-step chain" of DDIM)
    *(PaperNumber("00_diffusion_basics", "Table 1", f"DDIM {s}, eta {eta:g}", "FID", fid, "", _DDIM)
      for eta, row in ((0.0, {10: 13.36, 20: 6.84, 50: 4.67, 100: 4.16, 1000: 4.04}),
                       (1.0, {10: 41.07, 20: 18.36, 50: 8.01, 100: 5.78}))
      for s, fid in row.items()),
    PaperNumber("00_diffusion_basics", "Table 1", "DDPM 1000", "FID", 3.17, "", _DDPM),
    # VGG-SR: the SR3 variants' sizes (Sec. 3.1), the small U-Net's speed-up per forward pass (Fig. 9, GPU) and the
    # fool rates of the human study (Fig. 8, 10 participants, 5 s per trial)
    *(PaperNumber("01_vgg_conditioned_sr", "Sec. 3.1", name, "parameters", m, "M", _VGGSR)
      for name, m in (("original", 66.0), ("half", 33.0), ("small", 9.0))),
    PaperNumber("01_vgg_conditioned_sr", "Fig. 9", "small vs original", "speed-up", 1.77, "x", _VGGSR),
    *(PaperNumber("01_vgg_conditioned_sr", "Fig. 8", name, "fool rate", rate, "%", _VGGSR)
      for name, rate in (("original (66M)", 40.0), ("small + VGG (9M)", 36.0), ("small (9M)", 32.0))),
)


def numbers(study: str, **match) -> list[PaperNumber]:
    """The numbers of ``study`` whose fields equal ``match`` (e.g. ``metric="FID"``)."""
    bad = set(match) - set(PaperNumber.__dataclass_fields__)
    if bad:
        raise ValueError(f"unknown field(s) {sorted(bad)}; fields are {list(PaperNumber.__dataclass_fields__)}")
    return [p for p in NUMBERS if p.study == study and all(getattr(p, k) == v for k, v in match.items())]


def value(study: str, variant: str, metric: str) -> float:
    """The one number of ``study`` for ``variant`` and ``metric`` (a KeyError names what is there if none)."""
    found = numbers(study, variant=variant, metric=metric)
    if len(found) != 1:
        have = sorted({f"{p.variant} / {p.metric}" for p in numbers(study)})
        raise KeyError(f"{study}: {len(found)} numbers for {variant!r} / {metric!r}; there are: {have}")
    return found[0].value


def cite(study: str, *variants: str, metric: str, where: bool = True) -> str:
    """The paper column of a claim: "FID 4.67 (DDIM 50, eta 0) vs 3.17 (DDPM 1000); DDIM paper ..., Table 1"."""
    found = [numbers(study, variant=v, metric=metric) for v in variants]
    if any(len(f) != 1 for f in found):
        raise KeyError(f"{study}: no single {metric} for each of {variants}")
    ps = [f[0] for f in found]
    body = f"{metric} " + " vs ".join(f"{p.value:g}{p.unit} ({p.variant})" for p in ps)
    places = sorted({f"{p.source.split(',')[0]}, {p.table}" for p in ps})
    return body + ("; " + "; ".join(places) if where else "")


def table(study: str):
    """The study's paper numbers as a table (one row per number, the results rows' columns)."""
    import pandas as pd
    return pd.DataFrame([asdict(p) for p in numbers(study)]).drop(columns="study")
