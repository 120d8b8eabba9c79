"""Study 1, notebook 01, the measurements: forward timing of the variants side by side, the VGG share of a
sampling call, the SR quality table (with FD (LeNet-MNIST) and digit accuracy on the digits), the claims with
their thresholds and the results rows. The variants, profiles and training live in
`fastdiff.studies.vgg_conditioned_sr`."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import papers
from ..data import downsample
from ..devices import autocast, dtype_name
from ..diffusion import Schedule
from ..measure import foolrate, game_images, sr_sanity
from ..measure.bench import count_flops, interleaved, measure
from ..measure.lenet import digit_accuracy
from ..measure.intervals import Estimate, fd_interval, paired_difference_interval, proportion_interval
from ..measure.metrics import psnr
from ..measure.seed_spread import lenet_features
from ..measure.sr_eval import bicubic, metrics_table, super_resolve
from ..methods.vgg_features import VGGFeatureFusion
from ..results import Results
from ..sampling import prepare_condition
from ..verdicts import Claim, all_of, grade, grade_interval, holds, need, shown, verdict_lines, within
from .vgg_conditioned_sr import (PAPER_PARAMETERS, PAPER_SETUP, PAPER_SPEEDUP_SMALL_VS_ORIGINAL, PAPER_WIDTHS,
                                 SRProfile, Widths, build_variant, trainable_parameters)


def forward_times(variants=("original", "half", "small", "small + attention", "small + VGG (add)"), *,
                  widths: Widths = PAPER_WIDTHS, scale: int = 4, batch_size: int = 1, device, dtype=torch.float32,
                  repeats: int = 5, progress: bool = True) -> list[dict]:
    """One denoising step (a forward pass) of each variant, with the LR upsampling and concatenation included and
    VGG precomputed as during sampling; plus one VGG-11 pass (what sampling pays once per image). Weights are
    untrained and VGG random: time does not depend on them. Timed side by side in one run
    (`fastdiff.measure.bench.interleaved`: one warm-up each, then ``repeats`` rounds of one call of every
    variant); each row gives the median and IQR over the rounds. Speedup is relative to ``original``."""
    s = widths.image_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, widths.channels, s, s, generator=gen).to(device)
    lr = torch.randn(batch_size, widths.channels, s // scale, s // scale, generator=gen).clamp(-1, 1).to(device)
    t = torch.full((batch_size,), 500, dtype=torch.long, device=device)
    calls, info = {}, {}
    with torch.no_grad(), autocast(device, dtype):
        for name in variants:
            model = build_variant(name, widths, vgg_weights="random", load_vgg=False).to(device).eval()
            cond = prepare_condition(model, x, {"lr": lr})
            calls[name] = lambda model=model, cond=cond: model(x, t, **cond)
            info[name] = (trainable_parameters(model), count_flops(calls[name]))
            vgg = getattr(model, "vgg", None)
            if vgg is not None and not any(k.startswith("VGG-11") for k in calls):
                key = f"VGG-11 features, {vgg.num_stages} stages (once per image)"
                calls[key] = lambda model=model: model.vgg_features(lr, x.shape[-2:])
                info[key] = (0, count_flops(calls[key]))
        times = interleaved(calls, device=device, rounds=repeats, warmup=1, progress=progress)
    rows = [{"variant": name, "trainable (M)": round(info[name][0] / 1e6, 2), "GFLOPs": round(info[name][1] / 1e9, 2),
             "median_ms": 1e3 * t["median_s"], "iqr_ms": 1e3 * t["iqr_s"], "repeats": t["repeats"],
             "dtype": dtype_name(dtype)} for name, t in times.items()]
    base = next((r for r in rows if r["variant"] == "original"), None)
    for r in rows:
        r["speedup vs original"] = None if base is None or r["variant"].startswith("VGG") else \
            base["median_ms"] / r["median_ms"]
        r["params ratio"] = (None if base is None or not r["trainable (M)"]
                             else base["trainable (M)"] / r["trainable (M)"])
    return rows


def vgg_share(model: VGGFeatureFusion, lr: torch.Tensor, schedule: Schedule, steps: int, *, device,
              dtype: torch.dtype = torch.float32, repeats: int = 3) -> dict:
    """How much of one sampling call (``steps`` ancestral steps, VGG computed once inside it) the VGG-11 pass
    takes: both timed by the harness in the same run."""
    size = model.base.config.image_size
    model = model.to(device).eval()
    lr = lr.to(device)
    with torch.no_grad(), autocast(device, dtype):
        v = measure(lambda: model.vgg_features(lr, (size, size)), device=device, warmup=1, repeats=max(repeats, 5))
    calls = model.vgg.calls
    s = measure(lambda: super_resolve(model, lr, schedule, steps, device=device, dtype=dtype, size=size),
                device=device, warmup=0, repeats=repeats)
    vgg_calls = (model.vgg.calls - calls) / s["repeats"]
    return {"steps": steps, "batch": len(lr), "vgg_ms": 1e3 * v["median_s"], "sampling_s": s["median_s"],
            "vgg_share_percent": 100 * v["median_s"] / s["median_s"], "vgg_calls_per_sampling": vgg_calls}


STUDY = "01_vgg_conditioned_sr"
PAPER_SOURCE = "VGG-SR paper (Klement et al.), Secs. 3.1 and 4.6"


def collect_results(run, *, dataset: str, weights: str, params_paper: list[dict], forward: list[dict],
                    trained: dict, metrics: list[dict], eval_n: int, eval_steps: int, timing_batch: int,
                    curve_intervals: dict | None = None):
    """The notebook's numbers as `fastdiff.results` rows; ``curve_intervals`` (`final_curve_intervals`) gives the
    curves' last points their intervals (the curve's own value kept as ``curve_value``)."""
    res = Results(STUDY, device=run.env["device"], dtype=run.dtype_name, dataset=dataset, weights=weights,
                  profile=run.profile, seed=run.seed, environment=run.env)
    for r in params_paper:
        res.add("SR3 variants", r["variant"], "parameters", r["trainable (M)"], setting={"widths": "paper"},
                paper_value=r.get("paper (M)"), paper_source=PAPER_SOURCE if r.get("paper (M)") else "")
    for r in forward:
        common = dict(n=r["repeats"], batch=timing_batch, size="128x128, paper widths", weights="untrained (timing)",
                      **({"dtype": r["dtype"]} if "dtype" in r else {}))
        res.add("SR3 variants", r["variant"], "time per call", r["median_ms"], **common)
        if r["speedup vs original"] is not None:
            paper = PAPER_SPEEDUP_SMALL_VS_ORIGINAL if r["variant"] == "small" else None
            res.add("SR3 variants", r["variant"], "speed-up", r["speedup vs original"], **common, paper_value=paper,
                    paper_source=PAPER_SOURCE if paper else "", versus="original")
    for name, r in trained.items():
        last = r["evals"][-1]
        for metric in ("val PSNR", "denoise PSNR"):
            e = (curve_intervals or {}).get(name, {}).get(metric)
            extra = {} if e is None else {"curve_value": last[metric]}
            res.add("VGG features" if "VGG" in name else "SR3 variants", name, metric, last[metric] if e is None else e,
                    steps=r["step"], training_step=last["step"], **extra)
    for r in metrics:
        for metric in ("PSNR", "SSIM", "LPIPS", "LR-PSNR"):
            if r.get(metric) is not None:
                method = "bicubic" if r["model"].startswith("bicubic") else \
                    ("VGG features" if "VGG" in r["model"] else "SR3 variants")
                res.add(method, r["model"], metric, r.get("intervals", {}).get(metric, r[metric]), n=eval_n,
                        steps=eval_steps)
        for metric in ("FD (LeNet-MNIST)", "digit accuracy"):
            if r.get("intervals", {}).get(metric) is not None:
                res.add("real data" if r["model"].startswith("real") else "SR3 variants", r["model"], metric,
                        r["intervals"][metric], steps=eval_steps, uncorrected=r[metric])
    return res


# ------------------------------------------------------------------------------------------ evaluation and claims

def sr_table(models: dict, hr: torch.Tensor, schedule: Schedule, profile: SRProfile, *, device, dtype=torch.float32,
             labels: torch.Tensor | None = None, reference: torch.Tensor | None = None, seed: int = 0):
    """PSNR, SSIM, LPIPS and LR-PSNR of every model's SR outputs (`fastdiff.measure.sr_eval.metrics_table`, bicubic
    first), and on digits (``labels``, ``reference``: the training digits) FD (LeNet-MNIST) of the outputs and the
    share LeNet-MNIST reads as their digit, with the real HR images as the floor row. Returns (rows, outputs)."""
    rows, outputs = metrics_table(models, hr, schedule, scale=profile.scale, steps=profile.eval_steps, device=device,
                                  dtype=dtype, seed=seed)
    if labels is not None and reference is not None:
        features, ref_stats = lenet_features(reference, device=device)
        outputs = {"real HR (floor)": hr, **outputs}
        rows = [{"model": "real HR (floor)", "PSNR": None, "SSIM": None, "LPIPS": None, "LR-PSNR": None,
                 "per image": {}, "intervals": {}}] + rows
        for r in rows:
            fd = fd_interval(features(outputs[r["model"]]), ref_stats)
            acc = digit_accuracy(outputs[r["model"]], labels)
            r["FD (LeNet-MNIST)"], r["digit accuracy"] = fd.uncorrected, acc
            r["intervals"].update({"FD (LeNet-MNIST)": fd,
                                   "digit accuracy": proportion_interval(round(acc * len(labels)), len(labels))})
    return rows, outputs


def sr_display(rows: list[dict]):
    """The SR table for the notebook: each metric's mean with its 95% interval (bootstrap over the images; Wilson
    for the digit accuracy; FD bias-corrected, its plug-in value in the column "FD plug-in") and n."""
    import pandas as pd
    out = []
    for r in rows:
        shown = {"model": r["model"]}
        for metric in ("PSNR", "SSIM", "LR-PSNR", "LPIPS", "FD (LeNet-MNIST)", "digit accuracy"):
            e = r.get("intervals", {}).get(metric)
            shown[metric] = e.format(3 if metric in ("SSIM", "digit accuracy") else 2) if e is not None else \
                (None if r.get(metric) is None else round(r[metric], 3))
        if r.get("FD (LeNet-MNIST)") is not None:
            shown["FD plug-in"] = round(r["FD (LeNet-MNIST)"], 2)
        shown["n"] = next((e.n for e in r.get("intervals", {}).values()), None)
        out.append(shown)
    return pd.DataFrame(out).set_index("model").dropna(axis=1, how="all")


def paired_gaps(rows: list[dict], pairs=(("original", "small"), ("small + VGG (concat)", "bicubic (no model)"),
                                          ("small + VGG (add)", "small")), metric: str = "PSNR") -> dict:
    """{"a|b": mean(metric_a - metric_b) over the same images with its paired bootstrap interval}, for the pairs
    whose rows are there (both sampled from the same noise and LR images)."""
    per = {r["model"]: r.get("per image", {}).get(metric) for r in rows}
    return {f"{a}|{b}": paired_difference_interval(per[a], per[b]) for a, b in pairs if per.get(a) and per.get(b)}


def _paired(e) -> str:
    return f" (paired, n={e.n})" if hasattr(e, "n") else ""


def _claims():
    def params(m):
        ratio = need(m, "params ratio, paper widths")
        paper = PAPER_PARAMETERS["original"] / PAPER_PARAMETERS["small"]
        return "by construction", f"{ratio:.1f}x fewer ({need(m, 'original (M)'):.1f}M vs " \
            f"{need(m, 'small (M)'):.1f}M; paper {paper:.1f}x)", "the widths (PAPER_WIDTHS) were chosen to give " \
            "SR3's 66M; dropping the two deepest levels then removes most of the weights"

    def speed(m):
        s = need(m, "speed-up small")
        verdict = grade(within(s, PAPER_SPEEDUP_SMALL_VS_ORIGINAL, 0.25), s >= 1.2)
        return verdict, f"{s:.2f}x faster per step at 128x128 on {m.get('device', 'this device')}", \
            "the dropped levels hold the weights but few of the FLOPs" if verdict != "contradicted" else \
            "the dropped levels hold the weights, and here little of the time"

    def converges(m):
        gain, acc = need(m, "curve gain:val PSNR", "curve gain:digit accuracy")
        verdict = grade_interval(holds(gain, 0.2, better="higher"), holds(gain, 0.0, better="higher"))
        return verdict, (f"mean over the curve: {shown(gain)} dB val PSNR, {100 * acc:+.1f} points digit accuracy, "
                         f"small + VGG vs small"), \
            f"with the digit-trained VGG stand-in ({m.get('vgg', '?')}), not ImageNet VGG-11" + \
            (f"; {gain.method}" if hasattr(gain, "method") else "; no interval (no paired held-out gap measured)")

    def vgg_cost(m):
        share = need(m, "vgg share %")
        return "by construction", f"{share:.2f}% of a {need(m, 'vgg share steps')}-step sampling call", \
            f"VGG ran {need(m, 'vgg calls per sampling'):.0f} time(s) per sampling call: the sampler computes the " \
            "features once per image by how it is written, so their share is one VGG pass over all the steps"

    def concat(m):
        add, cat = need(m, "final val PSNR:small + VGG (add)", "final val PSNR:small + VGG (concat)")
        gap = need(m, "PSNR gap:small + VGG (concat)|bicubic (no model)")
        failed, add_better = holds(gap, 0.1, better="lower"), add > cat + 0.1
        verdict = grade_interval(all_of(add_better, failed), add_better)
        learned = {True: "did not beat bicubic upsampling", False: "learned, it did not fail",
                   None: "its gap to bicubic straddles 0.1 dB"}[failed]
        return verdict, f"final val PSNR: add {add:.2f} vs concat {cat:.2f} dB; concat - bicubic {shown(gap)} dB " \
            f"on the held-out images{_paired(gap)}", \
            f"concat {learned}" + ("; add learned better" if add_better else "; add did no better than concat")

    def bigger(m):
        gap = need(m, "PSNR gap:original|small")
        verdict = grade_interval(holds(gap, 0.1, better="higher"),
                                 all_of(holds(gap, -0.1, better="higher"), holds(gap, 0.1, better="lower")))
        return verdict, f"PSNR original - small {shown(gap)} dB{_paired(gap)}", \
            f"at the same training budget ({m.get('steps', '?')} steps)" + \
            ("; the interval straddles a bound" if verdict == "inconclusive" else "")
    rules = {"params": params, "speed": speed, "converges": converges, "vgg-cost": vgg_cost, "concat": concat,
             "bigger-better": bigger, "fool-rate": lambda m: ("not testable here", "-", "")}
    return [Claim(key, *CLAIM_TEXT[key], rules[key]) for key in CLAIM_TEXT]


_PARAMS = papers.numbers(STUDY, metric="parameters")                # original, half, small
_SPEEDUP = PAPER_SPEEDUP_SMALL_VS_ORIGINAL
_FOOL = papers.numbers(STUDY, metric="fool rate")
_PARTICIPANTS = papers.value(STUDY, "human study", "participants")
# (claim, the paper's number, what we measure, reproduced if): written before any run
CLAIM_TEXT = {
    "params": ("the small U-Net has about 7x fewer parameters than SR3's", " / ".join(f"{p.value:g}{p.unit}" for p in _PARAMS) + " (Sec. 3.1)",
               "trainable parameters at the paper's widths", "by construction: the widths were chosen to give SR3's "
               "66M, so the ratio is shown, not judged"),
    "speed": (f"the small U-Net is {_SPEEDUP:g}x faster per forward pass", f"{_SPEEDUP:g}x (Fig. 9, GPU)",
              "one denoising step at 128x128, the paper's widths, batch 1, side by side on this device",
              f"within 25% of {_SPEEDUP:g}x (partly: at least 1.2x, over a third of the paper's 44% time saving; "
              "slower: contradicted)"),
    "converges": ("frozen pretrained VGG features let the small U-Net converge faster",
                  "small + VGG above small in validation PSNR during training (Fig. 3; no values given)",
                  "validation PSNR and digit accuracy during training, small + VGG (add) against small, same budget",
                  "val PSNR higher by > 0.2 dB on average over the curve, its interval wholly above 0.2 (partly: "
                  "wholly above 0; contradicted: wholly below 0; inconclusive: it straddles a bound); digit accuracy "
                  "shown"),
    "vgg-cost": ("the VGG features cost next to nothing: computed once per image",
                 "computed once, reused at every step (Sec. 3.2)", "VGG-11 pass against a whole sampling call",
                 "by construction: the sampler computes the features once per image (the share is shown, not "
                 "judged)"),
    "concat": ("adding the features works, concatenating them does not",
               "concatenation 'failed to learn at all' (Sec. 4.1)",
               "final validation PSNR, add against concat; held-out PSNR of concat against bicubic upsampling",
               "add better by > 0.1 dB and concat no more than 0.1 dB above bicubic (the paired interval of "
               "concat - bicubic wholly below 0.1 dB): it failed to learn (partly: concat learned, add better by > "
               "0.1 dB; contradicted: concat within 0.1 dB of add or better; inconclusive: the interval straddles "
               "0.1 dB)"),
    "bigger-better": ("the original (66M) U-Net reaches better quality than the small one",
                      "original and half best in PSNR (Fig. 3)",
                      "PSNR of the held-out SR outputs, original against small, paired over the same images",
                      "original better by > 0.1 dB: the paired interval of original - small wholly above 0.1 "
                      "(partly: wholly within ± 0.1 dB; inconclusive: it straddles a bound)"),
    "fool-rate": ("people are fooled by small + VGG nearly as often as by the original",
                  "fool rates " + " / ".join(f"{p.value:g}{p.unit}" for p in _FOOL) +
                  f" (Fig. 8, {_PARTICIPANTS:g} participants)", "the fool-rate game (notebook 06)",
                  "within 10 points of the paper with n >= 50 per model"),
}


CLAIMS = _claims()
# the SR models each claim's rule reads (a claim that reads a model failing the SR sanity checks is not testable)
CLAIM_MODELS = {"converges": ("small", "small + VGG (add)"), "concat": ("small + VGG (add)", "small + VGG (concat)"),
                "bigger-better": ("original", "small")}


def sanity_records(models: dict, hr: torch.Tensor, schedule: Schedule, profile: SRProfile, *, device,
                   dtype=torch.float32, seed: int = 0, bars: sr_sanity.SanityBars = sr_sanity.BARS) -> list[dict]:
    """Every model's SR sanity record (`fastdiff.measure.sr_sanity`) on the LR images of ``hr``: ``bars.samples``
    samples each, ``profile.eval_steps`` ancestral steps (sample k from seed + 1000 k)."""
    lr = downsample(hr, profile.scale)
    return sr_sanity.check_models({name: lambda k, m=m: super_resolve(m, lr, schedule, profile.eval_steps,
                                                                      device=device, dtype=dtype, seed=seed + 1000 * k,
                                                                      size=hr.shape[-1])
                                   for name, m in models.items()}, hr, lr, bars=bars)


def sanity_not_testable(records: list[dict]) -> dict[str, str]:
    """`fastdiff.verdicts.judge`'s ``not_testable`` for the claims that read a model failing the sanity checks."""
    return sr_sanity.not_testable(CLAIM_MODELS, records)


def measured_for_claims(*, params_paper: list[dict], forward: list[dict], curves: dict[str, list[dict]],
                        sr_rows: list[dict], share: dict | None, device: str, vgg: str, steps: int,
                        val_n: int | None = None) -> dict:
    """The numbers the claims read, from the notebook's tables (``val_n``: the validation images of the curves,
    which gives the curve's gain its interval, `curve_gain_interval`)."""
    m = {"device": device, "vgg": vgg, "steps": steps}
    p = {r["variant"]: r["trainable (M)"] for r in params_paper}
    if "original" in p and "small" in p:
        m.update({"original (M)": p["original"], "small (M)": p["small"], "params ratio, paper widths": p["original"] / p["small"]})
    for r in forward:
        if r["variant"] == "small":
            m["speed-up small"] = r["speedup vs original"]
    for name, evals in curves.items():
        if evals:
            m[f"final val PSNR:{name}"] = evals[-1]["val PSNR"]
    if "small" in curves and "small + VGG (add)" in curves:
        for key in ("val PSNR", "digit accuracy"):
            a = [e.get(key) for e in curves["small + VGG (add)"] if e["step"] > 0]
            b = [e.get(key) for e in curves["small"] if e["step"] > 0]
            if a and b and None not in a + b and len(a) == len(b):
                m[f"curve gain:{key}"] = sum(a) / len(a) - sum(b) / len(b)
    for r in sr_rows:
        if r.get("PSNR") is not None:
            m[f"PSNR:{r['model']}"] = r.get("intervals", {}).get("PSNR", r["PSNR"])
    m.update({f"PSNR gap:{k}": e for k, e in paired_gaps(sr_rows).items()})
    final_gap = m.get("PSNR gap:small + VGG (add)|small")
    if val_n and final_gap is not None and isinstance(m.get("curve gain:val PSNR"), float):
        m["curve gain:val PSNR"] = curve_gain_interval(m["curve gain:val PSNR"], final_gap, val_n)
    if share:
        m.update({"vgg share %": share["vgg_share_percent"], "vgg share steps": share["steps"],
                  "vgg calls per sampling": share["vgg_calls_per_sampling"]})
    return m


def curve_gain_interval(gain: float, final_gap: Estimate, val_n: int) -> Estimate:
    """The mean val-PSNR gain over the training curve with an interval of sampling noise. The curve's points are
    mean PSNRs over the same ``val_n`` images and noise, and their per-image values are not kept; the per-image
    spread of the paired difference is taken from ``final_gap`` (the final models on the held-out images, paired),
    scaled to ``val_n`` images, and the points are taken as fully correlated (the widest case: averaging them then
    removes no noise). Training noise is not in it."""
    half = (final_gap.high - final_gap.low) / 2 * math.sqrt(final_gap.n / val_n)
    return Estimate(gain, gain - half, gain + half, val_n,
                    f"± the paired per-image spread of the final models ({final_gap.n} held-out images) at the "
                    f"curve's {val_n} images, its points taken as fully correlated")


# ------------------------------------------------------------------------------------------ notebook 01's cells

def speed_lines(forward: list[dict]) -> list[str]:
    """Small and half against original, from `forward_times`' rows: fewer parameters, fewer FLOPs, faster."""
    import pandas as pd
    speed = pd.DataFrame(forward).set_index("variant")
    small, half, orig = speed.loc["small"], speed.loc["half"], speed.loc["original"]
    return [f"small vs original: {small['params ratio']:.1f}x fewer parameters, "
            f"{orig['GFLOPs'] / small['GFLOPs']:.2f}x fewer FLOPs, {small['speedup vs original']:.2f}x "
            f"faster here · paper: 7x fewer parameters, {PAPER_SPEEDUP_SMALL_VS_ORIGINAL}x faster",
            f"half vs original: {100 * (1 - half['trainable (M)'] / orig['trainable (M)']):.0f}% fewer parameters, "
            f"{100 * (1 - half['GFLOPs'] / orig['GFLOPs']):.0f}% fewer FLOPs"]


def convergence_baseline(val_hr: torch.Tensor, val_labels: torch.Tensor | None, *, scale: int):
    """(bicubic upsampling's validation PSNR, and digit accuracy with ``val_labels``: the dashed line of the
    convergence plot; the metrics the plot draws)."""
    up = bicubic(downsample(val_hr, scale), scale)
    baseline = {"val PSNR": psnr(up, val_hr).mean().item(), "label": "bicubic"}
    if val_labels is None:
        return baseline, ("val PSNR", "denoise PSNR")
    baseline["digit accuracy"] = digit_accuracy(up, val_labels)
    return baseline, ("val PSNR", "digit accuracy", "denoise PSNR")


def curve_table(curves: dict[str, list[dict]]):
    """Validation PSNR of every variant (columns) at every logged training step (rows), as a DataFrame."""
    import pandas as pd
    table = pd.DataFrame({name: {e["step"]: e["val PSNR"] for e in c} for name, c in curves.items()})
    table.index.name = "step"
    return table


GAME_MODELS = ("original", "small", "small + VGG (add)")


def open_fool_rate_game(out_dir, hr: torch.Tensor, outputs: dict[str, torch.Tensor], *, n: int, scale: int,
                        models=GAME_MODELS, player: str = "player-1") -> dict:
    """Write the first ``n`` held-out images, their LR inputs and each model's SR outputs in the fool-rate game's
    folders (the layout notebook 06 reads) under ``out_dir``, and open a session on them. Returns the folder,
    ``n``, the models, the image sources, the answers file and the session."""
    n = min(n, len(hr))
    folder = game_images.write_game_folders(Path(out_dir) / "01_fool_rate_game", hr[:n],
                                            {name: outputs[name][:n] for name in models}, downsample(hr[:n], scale))
    sources = game_images.game_sources(game_dir=str(folder))[0]
    answers = Path(out_dir) / "01_fool_rate_answers.jsonl"
    session = foolrate.open_session(sources, answers, player=player, trials_per_model=n // len(models))
    return {"dir": folder, "n": n, "models": models, "sources": sources, "answers": answers, "session": session}


def results_with_details(run, profile: SRProfile, *, data_name: str, n_train: int, provenance: dict[str, str],
                         vgg: dict, params_paper: list[dict], params_ours: list[dict], forward: list[dict],
                         curves: dict[str, list[dict]], bicubic_val: dict, sr_rows: list[dict], eval_n: int,
                         share: dict, game_dir, measured: dict, verdicts: list[dict], paper_fool_rates: dict,
                         curve_intervals: dict | None = None):
    """The results file of notebook 01: its rows (`collect_results`, with the verdicts) and its details.
    ``vgg``: the features requested, used and their note; ``paper_fool_rates``: notebook 06's published rates."""
    dataset = (f"{data_name}, {n_train} training images, {profile.hr_size}x{profile.hr_size} from "
               f"{profile.hr_size // profile.scale}x{profile.hr_size // profile.scale}")
    weights_note = "; ".join(f"{n}: {p}" for n, p in provenance.items()) + f"; frozen features: {vgg['note']}"
    res = collect_results(run, dataset=dataset, weights=weights_note, params_paper=params_paper, forward=forward,
                          trained={name: {"evals": c, "step": profile.train.steps} for name, c in curves.items()},
                          metrics=sr_rows, eval_n=eval_n, eval_steps=profile.eval_steps,
                          timing_batch=profile.timing_batch, curve_intervals=curve_intervals)
    res.verdicts = verdicts
    details = {"vgg": vgg, "widths": vars(profile.widths), "schedule": profile.schedule,
               "parameters": {"paper_widths": params_paper, "this_profile": params_ours},
               "forward_timing": {"batch": profile.timing_batch, "size": 128, "rows": forward}, "weights": provenance,
               "curves": curves, "bicubic_val": bicubic_val,
               "metrics": {"n": eval_n, "steps": profile.eval_steps,
                           "rows": [{k: v for k, v in r.items() if k != "per image"} for r in sr_rows]}, "vgg_share": share,
               "game_dir": str(game_dir), "measured_for_claims": measured,
               "paper": {"parameters": PAPER_PARAMETERS, "speedup_small_vs_original": PAPER_SPEEDUP_SMALL_VS_ORIGINAL,
                         "fool_rates": paper_fool_rates, "setup": PAPER_SETUP}}
    return res, details


def summary(profile: SRProfile, env: dict, *, forward: list[dict], curves: dict[str, list[dict]],
            sr_rows: list[dict], eval_n: int, vgg_note: str, verdicts: list[dict]) -> None:
    """What we found, printed: small against original per step (and what one VGG-11 pass costs), the final
    validation PSNR of the VGG variants against small, the best diffusion model's PSNR against bicubic, FD, the
    features used and the verdicts."""
    import pandas as pd
    speed = pd.DataFrame(forward).set_index("variant")
    small = speed.loc["small"]
    m = pd.DataFrame(sr_rows).set_index("model")
    lines = [f"speed (128x128, batch {profile.timing_batch}, {env['device']}, {env['dtype']}): small is "
             f"{small['speedup vs original']:.2f}x faster than original per step with {small['params ratio']:.1f}x "
             f"fewer parameters (paper: 1.77x with 7x); one VGG-11 pass costs "
             f"{speed.filter(like='VGG-11', axis=0)['median_ms'].iloc[0] / small['median_ms']:.2f} small-U-Net steps, "
             f"paid once per image"]
    a = "small"
    for b in (v for v in ("small + VGG (add)", "small, VGG only", "small + VGG (concat)") if v in curves):
        ea, eb = curves[a], curves[b]
        lines.append(f"{b:>22} vs {a}: final val PSNR {eb[-1]['val PSNR']:.2f} vs {ea[-1]['val PSNR']:.2f} dB at step "
                     f"{ea[-1]['step']}")
    models_only = m.drop(index=[i for i in m.index if i.startswith(("bicubic", "real"))])
    best = models_only["PSNR"].idxmax()
    lines.append(f"best PSNR of the diffusion models: {best} {m.loc[best, 'PSNR']:.2f} dB; bicubic "
                 f"{m.loc['bicubic (no model)', 'PSNR']:.2f} dB ({eval_n} images, {profile.eval_steps} steps)")
    if "FD (LeNet-MNIST)" in m:
        lines.append("FD (LeNet-MNIST): " + ", ".join(f"{i} {v:.1f}" for i, v in m["FD (LeNet-MNIST)"].items()))
    lines.append(f"features: {vgg_note}")
    print("\n".join(lines + verdict_lines(verdicts)))
