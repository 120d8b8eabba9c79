"""The papers' own numbers, as data in one shape: the input-side twin of `fastdiff.results` rows.

Each `PaperNumber` is one number a paper reports: the study it backs, the table or figure, the variant (model,
sampler, setting), the metric, the value, its unit and where it is. The claims of a study render their "paper"
column from these (`cite`, or `value` in the claim's own words), their rules read the paper's constants with
`value`, the tests run them through the claims' rules (a rule fed the paper's own numbers must say "reproduced"), and
the notebooks show them beside ours (`table`). A number typed once, here.

Every study with a paper behind it: 00 (DDIM and DDPM), 01 and 06 (VGG-conditioned SR and its human study), 02
(adaptive layer skipping), 03 (the continuous U-Net), 04 (the SwinDiffuser thesis) and 07's own claims (DeepCache,
DPM-Solver++, EDM). Study 05's proposal expects speed-ups but gives no number, so it has none here. The studies'
``PAPER_*`` tables are built from these, in the shapes their notebooks show.
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
_SKIP = "layer-skipping paper (Giladi et al.), CIFAR-10, FID on 50k samples"
_CUNET = "Beyond U (Calvo-Ordoñez et al.), the continuous U-Net; times on a CPU"
_SWIN = "SwinDiffuser thesis (Ye 2024), CelebA 64x64 from 32x32, 100 steps, times on RTX A4000"
_SWIN128 = "SwinDiffuser thesis (Ye 2024), CelebA 128x128 from 32x32 (4x), times on RTX A4000"
_DEEPCACHE = "DeepCache (Ma et al. 2024), DDPM on CIFAR-10"
_DPMSOLVER = "DPM-Solver++ (Lu et al. 2022), high-quality samples"
_EDM = "EDM (Karras et al. 2022), CIFAR-10"
_UNIPC = "UniPC (Zhao et al. 2023), CIFAR-10"
_FASTER = "Faster Diffusion (Li et al. 2023), Stable Diffusion"
_BLOCKCACHE = "Block Caching (Wimbauer et al. 2024, Cache Me if You Can), LDM / EMU"
_PTQ = "8-bit post-training quantization of the Stable Diffusion U-Net, as issue 30 cites it"
_CM = "Consistency Models (Song et al. 2023), CIFAR-10, FID on 50k samples"
_FBCACHE = "ParaAttention's First Block Cache (after TeaCache, Liu et al. 2024), FLUX.1-dev"
_S2, _S3, _S4, _S7 = "02_adaptive_layer_skipping", "03_continuous_unet", "04_swindiffuser", "07_report"

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
    # ... and the protocol of that study (notebook 06 plays it): each pair shown 5 s (Sec. 3), 10 participants
    # (Sec. 4.5)
    PaperNumber("01_vgg_conditioned_sr", "Sec. 3", "human study", "seconds shown", 5.0, "s", _VGGSR),
    PaperNumber("01_vgg_conditioned_sr", "Sec. 4.5", "human study", "participants", 10.0, "", _VGGSR),

    # Layer skipping, Table 1: FID by skip type and c ("DDPM": the pre-trained model, skipping only at inference)
    *(PaperNumber(_S2, "Table 1", f"{row}, c={c}", "FID", fid, "", _SKIP)
      for row, cells in (("DDPM", {0: 3.17, 1: 16.38, 2: 73.15, 3: 115.09, 5: 143.34}),
                         ("zero", {0: 4.58, 1: 4.46, 2: 5.59, 3: 9.40, 5: 16.19}),
                         ("duplicate", {0: 4.91, 1: 4.55, 2: 7.62, 3: 14.69, 5: 31.79}),
                         ("interpolate", {0: 4.96, 1: 4.71, 2: 5.03, 3: 7.02, 5: 11.47}))
      for c, fid in cells.items()),
    # Table 2: % less sampling time than c = 0 (its c = 0 column, 0% by definition, is not a number of the paper's)
    *(PaperNumber(_S2, "Table 2", f"{row}, c={c}", "time saved", pct, "%", _SKIP)
      for row, cells in (("zero", {1: 30.59, 2: 47.52, 3: 51.44, 5: 57.46}),
                         ("duplicate", {1: 32.15, 2: 45.63, 3: 51.99, 5: 58.38}),
                         ("interpolate", {1: 20.86, 2: 29.34, 3: 32.68, 5: 36.19}))
      for c, pct in cells.items()),
    # Table 3: zero skipping at c = 2 ("zero c=2, ...") and the DDIM paper's DDPM U-Net, by sampler and steps (eta None:
    # DDPM's ancestral sampler). The baseline columns copy the DDIM paper's Table 1, as printed here: 13.46 at 10 steps,
    # eta 0, where the DDIM paper has 13.36 (study 00's number).
    *(PaperNumber(_S2, "Table 3", f"{who}DDPM {s}" if eta is None else f"{who}DDIM {s}, eta {eta:g}", "FID", fid, "",
                  _SKIP)
      for who, by_eta in (("zero c=2, ", {0.0: {20: 16.80, 40: 12.48, 100: 9.74, 200: 8.75, 1000: 7.79},
                                          0.5: {20: 17.96, 40: 12.754, 100: 9.43, 200: 8.23, 1000: 6.90},
                                          1.0: {20: 29.00, 40: 18.71, 100: 11.90, 200: 8.92, 1000: 6.00},
                                          None: {20: 209.72, 40: 124.69, 100: 56.15, 200: 28.01, 1000: 4.57}}),
                          ("", {0.0: {10: 13.46, 20: 6.84, 50: 4.67, 100: 4.16, 1000: 4.04},
                                0.5: {10: 16.66, 20: 8.35, 50: 5.25, 100: 4.46, 1000: 4.29},
                                1.0: {10: 41.07, 20: 18.36, 50: 8.01, 100: 5.78, 1000: 4.73},
                                None: {10: 367.43, 20: 133.37, 50: 32.72, 100: 9.99, 1000: 3.17}}))
      for eta, row in by_eta.items() for s, fid in row.items()),

    # Beyond U, Table 1's MNIST column (FID, the step count of the best FID, seconds per sample on a CPU), Table 2
    # (GFLOPs and MB per model) and the headline numbers the claims quote (abstract; Sec. 3)
    *(PaperNumber(_S3, "Table 1", f"{model}, MNIST", metric, v, unit, _CUNET)
      for model, row in (("U-Net", (3.61, 30.0, 3.56)), ("cU-Net", (2.98, 5.0, 0.54)))
      for (metric, unit), v in zip((("FID", ""), ("best steps", ""), ("seconds per sample", "s")), row)),
    *(PaperNumber(_S3, "Table 2", model, metric, v, unit, _CUNET)
      for model, row in (("U-Net", (7.21, 545.5)), ("cU-Net", (2.90, 137.9)), ("cU-Net wo/A", (2.81, 128.7)),
                         ("cU-Net wo/R", (1.71, 92.0)), ("cU-Net wo/A/R", (1.62, 88.4)))
      for (metric, unit), v in zip((("GFLOPs", ""), ("memory", "MB")), row)),
    PaperNumber(_S3, "Abstract", "cU-Net vs U-Net", "FLOPs share", 30.0, "%", _CUNET),
    PaperNumber(_S3, "Sec. 3", "cU-Net vs U-Net, low end", "faster", 30.0, "%", _CUNET),
    PaperNumber(_S3, "Sec. 3", "cU-Net vs U-Net, high end", "faster", 80.0, "%", _CUNET),

    # SwinDiffuser thesis: Tables 3.1-3.3 (64x64 from 32x32: PSNR, SSIM, LPIPS, LR-PSNR by shift step, shift pattern and
    # patch size; step 8, the fixed pattern and 32x32 patches are one run), 3.4 and 3.6 (seconds per sample on 1 and
    # 2 GPUs), 3.5 (128x128 from 32x32, against SRDiff)
    *(PaperNumber(_S4, table, variant, metric, v, unit, source)
      for table, source, rows in (
          ("Table 3.1", _SWIN, {"step 0": (25.773, 0.854, 0.029, 33.664), "step 4": (27.556, 0.896, 0.017, 34.764),
                                "step 8": (28.179, 0.908, 0.014, 34.441), "step 12": (27.893, 0.902, 0.015, 34.503),
                                "step 16": (28.182, 0.906, 0.015, 34.578)}),
          ("Table 3.2", _SWIN, {"no shift": (25.773, 0.854, 0.029, 33.664),
                                "random pattern": (27.283, 0.888, 0.018, 34.112),
                                "fixed pattern": (28.179, 0.908, 0.014, 34.441)}),
          ("Table 3.3", _SWIN, {"16x16 patches": (24.811, 0.827, 0.0433, 32.362),
                                "32x32 patches": (28.179, 0.908, 0.014, 34.441)}),
          ("Table 3.5", _SWIN128, {"SwinDiffuser, 128x128": (26.37, 0.813, 0.077, 38.039),
                                   "SRDiff, 128x128": (28.78, 0.879, 0.042, 56.293)}))
      for variant, row in rows.items()
      for (metric, unit), v in zip((("PSNR", "dB"), ("SSIM", ""), ("LPIPS", ""), ("LR-PSNR", "dB")), row)),
    *(PaperNumber(_S4, table, variant, "seconds per sample", s, "s", source)
      for table, source, variant, s in (("Table 3.4", _SWIN, "64x64, 1 GPU", 0.924),
                                        ("Table 3.4", _SWIN, "64x64, 2 GPUs", 4.141),
                                        ("Table 3.6", _SWIN128, "SwinDiffuser 128x128, 1 GPU", 7.229),
                                        ("Table 3.6", _SWIN128, "SwinDiffuser 128x128, 2 GPUs", 4.893),
                                        ("Table 3.6", _SWIN128, "SRDiff 128x128, 1 GPU", 5.59))),

    # Notebook 07's own claims: DeepCache's DDPM CIFAR-10 row (N=5 on 100-step DDIM), DPM-Solver++'s step range for
    # high-quality samples, EDM's Heun sampler on CIFAR-10
    PaperNumber(_S7, "Table 3", "DeepCache N=5, DDIM 100", "speed-up", 1.85, "x", _DEEPCACHE),
    PaperNumber(_S7, "Table 3", "DeepCache N=5, DDIM 100", "FID", 5.73, "", _DEEPCACHE),
    PaperNumber(_S7, "Table 3", "DDIM 100", "FID", 4.19, "", _DEEPCACHE),
    PaperNumber(_S7, "Abstract", "DPM-Solver++(2M), fewest", "steps", 15.0, "", _DPMSOLVER),
    PaperNumber(_S7, "Abstract", "DPM-Solver++(2M), most", "steps", 20.0, "", _DPMSOLVER),
    PaperNumber(_S7, "Table 2", "Heun, Karras sigmas", "steps", 18.0, "", _EDM),
    PaperNumber(_S7, "Table 2", "Heun, Karras sigmas", "NFE", 35.0, "", _EDM),
    # the methods issue 30 adds, with the anchors it names
    PaperNumber(_S7, "Table 1", "UniPC (bh2), 10 NFE", "FID", 3.87, "", _UNIPC),
    # consistency distillation against progressive distillation at one step, both in the CM paper's Table 1
    PaperNumber(_S7, "Table 1", "CD (LPIPS), 1 step", "FID", 3.55, "", _CM),
    PaperNumber(_S7, "Table 1", "PD, 1 step", "FID", 8.34, "", _CM),
    PaperNumber(_S7, "Abstract", "encoder propagation, DDIM 50", "speed-up", 1.8, "x", _FASTER),
    PaperNumber(_S7, "README", "First Block Cache, FLUX.1-dev", "speed-up", 1.4, "x", _FBCACHE),
    PaperNumber(_S7, "README", "First Block Cache, FLUX.1-dev", "LPIPS", 0.08, "", _FBCACHE),
    PaperNumber(_S7, "Abstract", "Block Caching, fewest", "speed-up", 1.5, "x", _BLOCKCACHE),
    PaperNumber(_S7, "Abstract", "Block Caching, most", "speed-up", 1.8, "x", _BLOCKCACHE),
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
