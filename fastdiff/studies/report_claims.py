"""Notebook 07's own claims: the fast solvers and deep-feature caching that the cross-study map adds beside the five
studies, each judged on the digits map (`fastdiff.studies.speed_quality_map`), and the map's rows against each
point's own baseline (the same model and sampler without the method) for the results file."""
from __future__ import annotations

from .. import papers
from ..results import Results
from ..verdicts import Claim, all_of, grade_interval, holds, need, shown
from .inference_ladder import INT8_DYNAMIC, INT8_SIMULATED
from .speed_quality_map import FD_INTERVAL, FLOPS, METRIC, PAIRED, RATIO, TIME
from ..measure.fd_sweep import estimate_from
from .sr_map import SR_METRICS, interval_key

STUDY = "07_report"
PAPER_SOURCE = "DeepCache (Ma et al. 2024), DPM-Solver++ (Lu et al. 2022), EDM (Karras et al. 2022)"


def _within(fd, ref, paired=None) -> tuple[str, str]:
    """FD within 10% of the reference's (partly: 25%), read on the ratio's interval where the numbers carry one
    (``paired``: the ratio's paired interval over the same x_T; else two estimates whose intervals bound it):
    inconclusive on a straddle."""
    ratio = paired if paired is not None else fd / ref if not hasattr(fd, "low") else _ratio(fd, ref)
    verdict = grade_interval(holds(ratio, 1.10), holds(ratio, 1.25))
    value = getattr(ratio, "value", ratio)
    return verdict, f"{100 * (value - 1):+.0f}% FD"


def _ratio(a, b):
    """a / b with the interval the two intervals bound (unpaired: the widest reading)."""
    from ..measure.intervals import Estimate
    lo_b, hi_b = getattr(b, "low", b), getattr(b, "high", b)
    return Estimate(a.value / getattr(b, "value", b), a.low / hi_b, a.high / lo_b if lo_b > 0 else float("inf"),
                    a.n, "ratio of two intervals")


STEP_CACHE_RULE = ("reproduced: at least 80% of the anchor's speed gain (speed-up - 1) with the paired FD ratio's "
                   "interval at most 1.5; partly: at least 40% of it with the same FD bound; contradicted otherwise; "
                   "inconclusive where the interval straddles 1.5")


def _claims() -> list[Claim]:
    def paper(variant, metric):
        return papers.value(STUDY, variant, metric)
    cache_speed, cache_fid, plain_fid = (paper("DeepCache N=5, DDIM 100", "speed-up"),
                                         paper("DeepCache N=5, DDIM 100", "FID"), paper("DDIM 100", "FID"))
    dpm = [paper(f"DPM-Solver++(2M), {end}", "steps") for end in ("fewest", "most")]

    def deepcache(m):
        speed, ratio = need(m, "deepcache speed-up", "deepcache FD ratio")
        kept = holds(ratio, 1.5)
        verdict = grade_interval(all_of(speed >= 1.5, kept), all_of(speed >= 1.2, kept))
        return verdict, f"{speed:.2f}x, FD {shown(m['deepcache FD'])} vs {shown(m['ddim100 FD'])} " \
            f"({shown(ratio)}x)", "N=5 against 100-step DDIM on the same U-Net, timed side by side"

    def solver(key, label):
        def rule(m):
            fd, ref = need(m, f"{key} FD", "reference FD")
            verdict, ours = _within(fd, ref, m.get(f"{key} FD ratio"))
            return verdict, f"{label}: FD {shown(fd)} vs {shown(ref)} for DDPM 1000 ({ours}), " \
                            f"{m[f'{key} speed-up']:.0f}x faster", "same U-Net, same x_T"
        return rule

    def step_cache(key, label, base, also=None):
        anchor = paper(*key)

        def rule(m):
            speed, ratio = need(m, f"{label} speed-up", f"{label} FD ratio")
            kept = holds(ratio, 1.5)
            gain = speed - 1                             # the share of the paper's saving we see
            verdict = grade_interval(all_of(gain >= 0.8 * (anchor - 1), kept), all_of(gain >= 0.4 * (anchor - 1), kept))
            beside = "" if also is None or m.get(f"{also[0]} FD ratio") is None else \
                f"; {also[1]}: {m[f'{also[0]} speed-up']:.2f}x, FD ratio {shown(m[f'{also[0]} FD ratio'])}"
            return verdict, f"{speed:.2f}x, FD {shown(m[f'{label} FD'])} vs {shown(m[f'{base} FD'])} " \
                f"({shown(ratio)}x){beside}", f"against {base} on the same U-Net, timed side by side"
        return rule

    def unipc(m):
        ratio = need(m, "unipc10 FD ratio")
        verdict = grade_interval(holds(ratio, 1.0))
        return verdict, f"FD(UniPC 10) / FD(DPM-Solver++(2M) 10) = {shown(ratio)}", "same U-Net, same x_T, paired"

    def consistency(m):
        ratio = need(m, "cd1 FD ratio")
        verdict = grade_interval(holds(ratio, 1.0))
        cost = "" if m.get("cd1 training (min)") is None or m.get("pd1 training (min)") is None else \
            f"; trained {m['cd1 training (min)']:.0f} min against the PD chain's {m['pd1 training (min)']:.0f}"
        fds = f" ({shown(m['cd1 FD'])} vs {shown(m['pd1 FD'])})" if "cd1 FD" in m and "pd1 FD" in m else ""
        more = "".join(f"; {what} {shown(m[key])}" for key, what in (
            ("cd2 FD ratio", "at 2 steps (Alg. 1 against PD's 2-step student)"),
            ("cd-mu95 FD ratio", "with mu = 0.95 (1 step)")) if m.get(key) is not None)
        return verdict, f"FD(CD, 1 step) / FD(PD, 1 step) = {shown(ratio)}{fds}{cost}{more}", \
            "both students distilled from the same U-Net, same x_T, paired"

    def int8(m):
        ratio = need(m, "int8-static FD ratio")
        verdict = grade_interval(holds(ratio, 1.1, better="higher"))        # the claim: quality is NOT kept
        dynamic = "" if m.get("int8-dynamic FD ratio") is None else \
            f"; with each call's own ranges (dynamic) {shown(m['int8-dynamic FD ratio'])}"
        speed = "" if m.get("int8 speed-up") is None else \
            f"; torchao's int8 dynamic rung (linear layers only, run for real) {m['int8 speed-up']:.2f}x"
        return verdict, f"FD(W8A8 static PTQ) / FD(fp32), DDIM 50 = {shown(ratio)}{dynamic}{speed}", \
            "simulated int8 of every convolution and linear layer (same x_T, paired); no speed: on the CPU no " \
            "library runs an int8 convolution"

    return [
        Claim("unipc", "UniPC samples better than DPM-Solver++ at very few evaluations",
              f"FID {paper('UniPC (bh2), 10 NFE', 'FID'):g} at 10 NFE on CIFAR-10 (Zhao et al. 2023, Table 1)",
              "FD of UniPC (bh2) at 10 steps against DPM-Solver++(2M) at 10 steps, same U-Net, same x_T (the CIFAR-10 "
              "FID itself is not testable offline)",
              "reproduced: the paired FD ratio's interval wholly below 1; contradicted: wholly above; inconclusive "
              "where it straddles 1", unipc),
        Claim("consistency-distillation", "Consistency distillation makes a better one-step sampler than "
              "progressive distillation",
              f"FID {paper('CD (LPIPS), 1 step', 'FID'):g} (CD) vs {paper('PD, 1 step', 'FID'):g} (PD) at one step on "
              "CIFAR-10 (Song et al. 2023, Table 1)",
              "FD of the consistency-distilled student at 1 step against the progressive-distillation student at 1 "
              "step, both from the same digits U-Net, same x_T (L2 in image space in place of LPIPS, whose AlexNet "
              "weights are not here, and which the paper's own ablation finds better than L2; target network mu = 0 "
              "as in the paper's CIFAR-10 run, mu = 0.95 beside; one 7,500-step run against the PD chain's 14,000 "
              "steps; the training cost of each beside)",
              "reproduced: the paired FD ratio's interval wholly below 1; contradicted: wholly above; inconclusive "
              "where it straddles 1", consistency),
        Claim("encoder-propagation", "Reusing the encoder's features over adjacent steps and running only the "
              "decoder (Faster Diffusion) speeds DDIM-50 sampling up at kept quality",
              f"about {paper('encoder propagation, DDIM 50', 'speed-up'):g}x on Stable Diffusion, DDIM 50 "
              "(Li et al. 2023)",
              "time per image and FD of encoder propagation (the whole U-Net every 2nd call) against plain DDIM 50",
              STEP_CACHE_RULE,
              step_cache(("encoder propagation, DDIM 50", "speed-up"), "encprop", "DDIM 50")),
        Claim("first-block-cache", "Skipping the rest of the network while the first block's output changes "
              "little (First Block Cache) speeds sampling up at kept quality",
              f"{paper('First Block Cache, FLUX.1-dev', 'speed-up'):g}x over compiled FLUX.1-dev at LPIPS "
              f"{paper('First Block Cache, FLUX.1-dev', 'LPIPS'):g} (ParaAttention)",
              "time per image and FD of the first-block cache at threshold 0.1 against plain DDIM 50 (no LPIPS "
              "offline; FD against the plain run's instead)",
              STEP_CACHE_RULE,
              step_cache(("First Block Cache, FLUX.1-dev", "speed-up"), "fbcache", "DDIM 50")),
        Claim("block-caching", "Recomputing each block only where its output changed enough (Block Caching) "
              "speeds sampling up at kept quality",
              f"{paper('Block Caching, fewest', 'speed-up'):g}-{paper('Block Caching, most', 'speed-up'):g}x at kept "
              "quality (Wimbauer et al. 2024)",
              "time per image and FD of Block Caching at threshold 0.2 (calibrated on DDIM 50) with the paper's learned "
              "per-channel scale-shift of the cached outputs (`fastdiff train blockcache/ddim50-0.2-ss`) against plain "
              "DDIM 50; the training-free schedule alone beside",
              STEP_CACHE_RULE, step_cache(("Block Caching, fewest", "speed-up"), "blockcache", "DDIM 50",
                                          also=("blockcache-free", "without the scale-shift"))),
        Claim("int8", "8-bit post-training quantization of a diffusion U-Net does not keep quality without "
              "quantization-aware training", "reported for the Stable Diffusion U-Net (as issue 30 cites it; no "
              "number)", "FD of DDIM 50 with every convolution and linear layer in int8 (W8A8: weights per channel, "
              "activations per tensor with ranges calibrated on one sampling run, naive post-training quantization; "
              "simulated in floating point) against fp32, same x_T; dynamic ranges and torchao's real int8 rung "
              "(linear layers only) beside",
              "reproduced: the paired FD ratio to fp32 wholly above 1.1; contradicted: wholly at most 1.1; "
              "inconclusive where it straddles 1.1", int8),
        Claim("deepcache", "Caching the deep features every N steps (DeepCache) speeds sampling up at a small "
              "quality cost", f"DDPM CIFAR-10, 100-step DDIM, N=5: {cache_speed:g}x, FID {cache_fid:.2f} vs "
              f"{plain_fid:.2f} (Ma et al. 2024, Table 3)",
              "time per image and FD (LeNet-MNIST) of DeepCache N=5 against plain 100-step DDIM, same U-Net",
              "reproduced: >= 1.5x with FD at most 1.5x the plain run's (the paper's FID rose "
              f"{cache_fid / plain_fid:.2f}x); partly: "
              ">= 1.2x with the same FD bound; contradicted otherwise; inconclusive where an interval straddles the "
              "FD bound", deepcache),
        Claim("dpm-solver", f"DPM-Solver++(2M) gives high-quality samples in {dpm[0]:g} to {dpm[1]:g} steps",
              f"{dpm[0]:g}-{dpm[1]:g} steps (Lu et al. 2022, abstract)",
              "FD of DPM-Solver++(2M) at 20 steps against 1000-step ancestral DDPM, same U-Net",
              "reproduced: FD within 10% of DDPM 1000's; partly: within 25%; contradicted otherwise; inconclusive "
              "where an interval straddles a bound", solver("dpm20", "DPM-Solver++(2M) 20")),
        Claim("heun", f"Heun's method on Karras sigmas reaches converged quality in about "
              f"{paper('Heun, Karras sigmas', 'NFE'):g} evaluations",
              f"{paper('Heun, Karras sigmas', 'steps'):g} steps, {paper('Heun, Karras sigmas', 'NFE'):g} NFE on "
              "CIFAR-10 (Karras et al. 2022, EDM)",
              "FD of Heun (Karras) at 20 steps (39 NFE, the nearest point measured) against DDPM 1000, same U-Net",
              "reproduced: FD within 10% of DDPM 1000's; partly: within 25%; contradicted otherwise; inconclusive "
              "where an interval straddles a bound", solver("heun20", "Heun (Karras) 20, 39 NFE")),
    ]


CLAIMS = _claims()


def measured_for_claims(part: dict) -> dict:
    """The numbers the claims read, from a digits map (`speed_quality_map.digits_map`); absent points stay absent."""
    by = {r["label"]: r for r in part["rows"]}
    untimed = {r["label"]: r for r in part.get("quality only", [])}        # FD and paired ratios only
    ref = by[part["reference"]]
    m = {"reference FD": ref.get(FD_INTERVAL, ref[METRIC])}
    for key, label in (("dpm20", "DPM-Solver++(2M) 20"), ("heun20", "Heun (Karras) 20")):
        if label in by:
            r = by[label]
            m[f"{key} FD"], m[f"{key} speed-up"] = r.get(FD_INTERVAL, r[METRIC]), r["speed-up"]
            if r.get(RATIO) is not None:                 # paired over the same x_T: the ratio the rule reads
                m[f"{key} FD ratio"] = r[RATIO]
    unipc = by.get("UniPC 10")
    if unipc and unipc.get(PAIRED, {}).get("DPM-Solver++(2M) 10") is not None:
        m["unipc10 FD ratio"] = unipc[PAIRED]["DPM-Solver++(2M) 10"]
    cd = by.get("CD student, 1 step")
    if cd and cd.get(PAIRED, {}).get("PD student, 1 step") is not None:
        m["cd1 FD ratio"] = cd[PAIRED]["PD student, 1 step"]
        m["cd1 FD"], m["pd1 FD"] = cd.get(FD_INTERVAL, cd[METRIC]), by["PD student, 1 step"].get(
            FD_INTERVAL, by["PD student, 1 step"][METRIC])
        m["cd1 training (min)"] = cd.get("training (min)")
        m["pd1 training (min)"] = by["PD student, 1 step"].get("training (min)")
    for key, label, base in (("cd2", "CD student, 2 steps", "PD student, 2 steps"),
                             ("cd-mu95", "CD student, mu 0.95, 1 step", "PD student, 1 step")):
        if by.get(label) and by[label].get(PAIRED, {}).get(base) is not None:
            m[f"{key} FD ratio"] = by[label][PAIRED][base]
    ddim50 = by.get("DDIM 50")
    for key, label in (("encprop", "encoder propagation N=2, DDIM 50"), ("fbcache", "first-block cache 0.1, DDIM 50"),
                       ("blockcache", "Block Caching 0.2 + scale-shift, DDIM 50"),
                       ("blockcache-free", "Block Caching 0.2, DDIM 50"), ("int8", f"{INT8_DYNAMIC.name}, DDIM 50")):
        if label in by and ddim50:
            r = by[label]
            paired = r.get(PAIRED, {}).get("DDIM 50")
            m.update({f"{key} speed-up": ddim50[TIME] / r[TIME], f"{key} FD": r.get(FD_INTERVAL, r[METRIC]),
                      f"{key} FD ratio": paired if paired is not None else r[METRIC] / ddim50[METRIC],
                      "DDIM 50 FD": ddim50.get(FD_INTERVAL, ddim50[METRIC])})
    for rung in INT8_SIMULATED:          # quality only, and only paired: a ratio without an interval judges nothing
        paired = untimed.get(f"{rung.name}, DDIM 50", {}).get(PAIRED, {}).get("DDIM 50")
        if paired is not None:
            m[f"int8-{rung.simulated} FD ratio"] = paired
    cache, plain = by.get("DeepCache N=5, DDIM 100"), by.get("DDIM 100")
    if cache and plain:
        m.update({"deepcache speed-up": plain[TIME] / cache[TIME], "deepcache FD": cache.get(FD_INTERVAL, cache[METRIC]),
                  "ddim100 FD": plain.get(FD_INTERVAL, plain[METRIC]),
                  "deepcache FD ratio": cache.get(PAIRED, {}).get("DDIM 100", cache[METRIC] / plain[METRIC])})
    return m


BASE_MODEL = {"cU-Net": "U-Net (study 3)"}     # study 3 measures its cU-Net against its own U-Net


def is_solver_point(r: dict) -> bool:
    """A point that only chooses the sampler and its steps: the plain U-Net in fp32, no method."""
    return r["rung"] == "fp32" and not r["cache interval"] and not r.get("cache") and r["c"] is None \
        and r["model"] == "U-Net"


FLOP_GAP = 0.5     # flagged: a method whose time saving is less than half its FLOP saving against its baseline


def _base_of(r: dict, rows: list[dict]) -> dict | None:
    """The point a method point is measured against: the same sampler and steps in fp32 without the method, on the
    same skip-trained model at c = 0 for layer skipping where that point exists, the cU-Net on study 3's own U-Net,
    else on the plain U-Net (so a combination stands against its solver alone)."""
    if is_solver_point(r):
        return None                                    # a solver point: on the map against DDPM 1000
    same = [b for b in rows if b is not r and b["sampler"] == r["sampler"] and b["steps"] == r["steps"]
            and b["rung"] == "fp32" and not b["cache interval"] and not b.get("cache")]
    if r["c"]:
        for b in same:
            if b["model"] == r["model"] and b["c"] == 0:
                return b
    for model in (BASE_MODEL.get(r["model"]), "U-Net"):
        for b in same:
            if b["model"] == model and b["c"] is None:
                return b
    return None


def beside_base(rows: list[dict]) -> list[dict]:
    """Each method point against its own baseline (`_base_of`): speed-up and FD ratio; solver points have none.
    Where the rows carry FLOPs (`speed_quality_map.FLOPS`), also the FLOP saving and the time saving (1 - point /
    baseline) and a flag where the time saving is less than `FLOP_GAP` of a FLOP saving of at least 10%: the FLOPs
    saved did not become time (a cache's bookkeeping, a layout change, a kernel that does not speed up)."""
    out = []
    for r in rows:
        b = _base_of(r, rows)
        if b is not None:
            row = {"point": r["label"], "against": b["label"], "speed-up": b[TIME] / r[TIME],
                   "FD": r[METRIC], "FD of the baseline": b[METRIC], "FD ratio": r[METRIC] / b[METRIC]}
            if r.get(FLOPS) and b.get(FLOPS):
                flop_saving, time_saving = 1 - r[FLOPS] / b[FLOPS], 1 - r[TIME] / b[TIME]
                row.update({"FLOP saving": flop_saving, "time saving": time_saving,
                            "FLOPs not time": flop_saving >= 0.10 and time_saving < FLOP_GAP * flop_saving})
            out.append(row)
    return out


def collect_results(run, *, part: dict, sr: dict | None, verdicts: list[dict], source: str):
    """The maps as `fastdiff.results` rows (each with the device and date it was measured on, and where it came
    from) and the verdicts of `CLAIMS`."""
    res = Results(STUDY, device=part["device"], dtype="fp32 unless the rung says", dataset=part["data"],
                  weights="; ".join(f"{k}: {v}" for k, v in part["weights"].items()), profile=run.profile,
                  seed=run.seed, environment=run.env)
    for r in part["rows"]:
        kw = dict(steps=r["steps"], n=r["n"], batch=r["batch"], sampler=r["sampler"], rung=r["rung"], source=source,
                  measured=part.get("utc", ""))
        res.add("speed/quality map", r["label"], "time per image", r[TIME], **kw)
        res.add("speed/quality map", r["label"], METRIC, r.get(FD_INTERVAL) or r[METRIC], **kw)   # its interval too
    for name, panel in (sr or {}).items():
        for r in panel["rows"]:
            for metric in SR_METRICS:
                if r.get(metric) is not None:
                    value = estimate_from(r[interval_key(metric)]) if isinstance(r.get(interval_key(metric)), dict) \
                        else r[metric]                                  # with its interval where measured with one
                    res.add(f"SR map: {name}", f"{r['model']}, {r.get('steps')} steps", metric, value,
                            steps=r.get("steps"), n=panel["n"], source=source, device=panel.get("device", ""))
            if r.get(TIME) is not None:
                res.add(f"SR map: {name}", f"{r['model']}, {r.get('steps')} steps", "time per image", r[TIME],
                        steps=r.get("steps"), batch=panel["batch"], source=source, device=panel.get("device", ""))
    res.verdicts = verdicts
    return res
