"""Study 5's claims and verdicts (notebook 05): the proposal's expectations with our thresholds, the numbers they
read from the ladders, the architecture table, the DDP benchmark and the diffusers comparison, what each precision
did on this machine and why, and the notebook's results file. The measurements are `fastdiff.studies.performance`.
"""
from __future__ import annotations


from ..devices import machine
from ..measure import fd_sweep
from ..results import Results
from ..verdicts import Claim, all_of, grade, grade_interval, holds, need, verdict_lines
from . import performance_fd
from .common import PROJECT_TARGETS, weights_label
from .performance import machine_label


def _twin(rows: list[dict], row: dict) -> dict | None:
    """The fp32 rung configured like ``row`` in everything but precision (layout, attention, compile, im2col)."""
    keys = ("layout", "attention", "compiled", "im2col")
    return next((r for r in rows if r["dtype"] == "fp32" and all(r.get(k) == row.get(k) for k in keys)), None)


def precision_pairs(rows: list[dict]) -> list[dict]:
    """Each half-precision rung against its fp32 twin: {"rung", "twin", "speed-up"} (time of the twin / time)."""
    out = []
    for r in rows:
        twin = _twin(rows, r) if r["dtype"] in ("bf16", "fp16") else None
        if twin is not None:
            out.append({"rung": r["rung"], "twin": twin["rung"], "dtype": r["dtype"],
                        "speed-up": twin["ms per call"] / r["ms per call"]})
    return out


# ------------------------------------------------------------------------------------------ claims and verdicts

PROPOSAL = "Batra and Xhelollari, project proposal (Sec. 3)"
HALF_FD, ARCH_FD = 1.10, 1.25          # the largest FD / FD(reference) that counts as "little quality cost"
# the proposal expects, but gives no number: its half precision follows its ref. [6] (Foong 2023, a blog post on
# optimising Stable Diffusion), not a paper with measurements (so `fastdiff.papers` has no number of study 5)
HALF_PAPER = "expected, no number (Sec. 1, 3; after Foong 2023, the proposal's ref. [6])"


def _two_machines(m: dict) -> str | None:
    """Why a verdict that joins this run's times with the committed FDs cannot be judged (they come from two
    machines: one machine per verdict), or None when they come from one."""
    timing, fd = need(m, "device", "fd device")
    if machine(timing) != machine(fd):
        return f"times measured on {timing}, FD on {fd}: one machine per verdict; measure the FD on this machine " \
               f"(remeasure=True, or `python benchmarks/digits_fd.py --study 05`)"
    return None


def _machines(m: dict) -> str:
    """What a row joining times and FDs names: both devices (CPU model, instruction class, threads)."""
    return f"times: {m['device']}; FD: {m['fd device']}, n = {m.get('fd n', '?')}"


def _claims():
    def half(m):
        speed, device = need(m, "half speed-up", "half device")
        return grade(speed >= 1.2, speed > 1.05), \
            f"{m.get('half rung', 'half precision')}: {speed:.2f}x its fp32 twin ({m.get('half twin', '?')}) on " \
            f"the DDPM CIFAR-10 U-Net · {device}", \
            f"speed only: random weights, no samples to score (quality: half-digits); {m.get('half why', '')}"

    def half_digits(m):
        speed, ratio = need(m, "digits half speed-up", "digits half FD ratio")
        ours = f"{m.get('digits half rung', 'half precision')}: {speed:.2f}x its fp32 twin " \
            f"({m.get('digits half twin', '?')}); FD / FD(fp32) {ratio.format()}"
        if (why_not := _two_machines(m)) is not None:
            return "not testable here", ours, why_not
        fd_ok = holds(ratio, HALF_FD, better="lower")
        return grade_interval(all_of(speed >= 1.2, fd_ok), all_of(speed > 1.05, fd_ok)), ours, \
            f"{_machines(m)}; {m.get('digits half why', '')}"

    def im2col(m):
        speed = need(m, "im2col speed-up")
        return grade(speed >= 1.05, speed >= 0.95), f"{speed:.2f}x the library convolution's speed · {m['device']}", \
            "F.unfold + matmul against the library's direct convolution (oneDNN on the CPU, cuDNN on CUDA), the " \
            "digits model"

    def arch(key):
        def rule(m):
            flops, t_sample, t_train, ratio = need(m, f"{key} FLOPs ratio", f"{key} sampling time ratio",
                                                   f"{key} training time ratio", f"{key} FD ratio")
            t = t_train if key == "fewer levels" else t_sample
            what = "training step" if key == "fewer levels" else "sampling call"
            ours = f"{100 * flops:.0f}% of the FLOPs, {100 * t:.0f}% of the time per {what} ({100 * t_sample:.0f}% " \
                f"sampling, {100 * t_train:.0f}% training); FD / FD(baseline) {ratio.format()}"
            if (why_not := _two_machines(m)) is not None:
                return "not testable here", ours, why_not
            fd_ok = holds(ratio, ARCH_FD, better="lower")
            return grade_interval(all_of(t <= 0.8, fd_ok), all_of(t < 0.95, fd_ok)), ours, \
                f"trained with the baseline's recipe and budget ({m.get('train steps', '?')} steps); {_machines(m)}"
        return rule

    def devices(m):
        if m.get("shared cores"):
            return "not testable here", f"{need(m, 'ddp scaling'):.2f}x images/s with 2 processes · " \
                f"{m.get('ddp device', '')}", \
                "the processes share one CPU's cores: a second process adds no compute (needs 2 GPUs)"
        s = need(m, "ddp scaling")
        return grade(s >= 1.6, s > 1.1), f"{s:.2f}x images/s with 2 processes · {m.get('ddp device', '')}", ""

    def peer(m):
        r = need(m, "best vs diffusers")
        return grade(r >= 1.5, r > 1.0), f"{r:.2f}x: fastdiff {m.get('ours best', '?')} vs diffusers " \
            f"{m.get('peer best', '?')}", f"DDPM CIFAR-10 U-Net, {m.get('cifar10 device', '')}"
    fd_rule = "FD / FD({ref}) at most {x:.2f} over its whole paired 95% interval (same x_T); inconclusive where " \
        "that interval straddles {x:.2f}"
    return [
        Claim("half", "half precision cuts compute time (the proposal's DDPM CIFAR-10 U-Net)",
              HALF_PAPER,
              "each bf16 / fp16 rung against its fp32 twin (same layout, attention, compile) on the DDPM CIFAR-10 "
              "U-Net, one machine (named); random weights, so speed only: the quality is half-digits' row",
              "the best pair at least 1.2x faster (partly: any speed-up over 5%)", half),
        Claim("half-digits", "half precision cuts compute time at little quality cost (the digits U-Net)",
              HALF_PAPER,
              "each bf16 / fp16 rung against its fp32 twin on the trained digits U-Net, and FD (LeNet-MNIST) of "
              "1000 samples at that rung against fp32's from the same x_T, both on one machine",
              "the best pair at least 1.2x faster with " + fd_rule.format(ref="fp32", x=HALF_FD) +
              " (partly: any speed-up over 5%, the same FD condition)", half_digits),
        Claim("im2col", "im2col convolution is faster than the baseline convolution", "expected, no number (Sec. 3)",
              "the im2col rung against fp32 with the library convolution, the digits model",
              "at least 5% faster (partly: within 5%)", im2col),
        Claim("bottleneck", "1x1 bottleneck layers between the ResNet blocks reduce computation and speed it up",
              "expected, no number (Sec. 3)", "FLOPs, time per sampling call and FD against the baseline, the same "
              "training budget, times and FD on one machine",
              "at most 80% of the time with " + fd_rule.format(ref="baseline", x=ARCH_FD) +
              " (partly: any time saved over 5%, the same FD condition)", arch("bottleneck")),
        Claim("fewer-levels", "fewer sampling (down/up) blocks cut training time", "expected, no number (Sec. 3)",
              "time per training step, FLOPs and FD against the baseline, the same training budget, times and FD "
              "on one machine",
              "at most 80% of the training time with " + fd_rule.format(ref="baseline", x=ARCH_FD) +
              " (partly: any saving over 5%, the same FD condition)", arch("fewer levels")),
        Claim("devices", "more GPUs cut training time (data parallel)", "expected, no number (Sec. 3)",
              "images/s of DDP training under torchrun, 2 processes vs 1",
              "at least 1.6x with 2 devices (partly: more than 1.1x)", devices),
        Claim("peer", "fastdiff's fastest setting is at least 1.5x diffusers' fastest (this project's target)",
              "issue 18's target; diffusers' UNet2DModel of the same configuration",
              "ms per call of each library's best rung, side by side", "at least 1.5x (partly: faster)", peer),
    ]


CLAIMS = _claims()
STUDY = "05_performance"
# keys of CLAIMS that judge this project's own targets, not a claim of the proposal or a paper: shown with the
# claims, never counted among them (`fastdiff.studies.common.PROJECT_TARGETS`)
TARGETS = tuple(key for study, key in sorted(PROJECT_TARGETS) if study == STUDY)


def _best_half(rows: list[dict]) -> dict | None:
    pairs = precision_pairs(rows)
    if not pairs:
        return None
    best = max(pairs, key=lambda p: p["speed-up"])
    return {**best, "why": "; ".join(f"{p['rung']} {p['speed-up']:.2f}x {p['twin']}" for p in pairs)}


def measured_for_claims(*, ladder_rows: list[dict], arch_rows: list[dict], ddp: dict | None,
                        compare: dict | None, device: str, train_steps: int, cifar_rows: list[dict] | None = None,
                        cifar_device: str = "", fd: dict | None = None, fd_device: str = "") -> dict:
    """The numbers the claims read, each verdict's from one machine: the CIFAR-10 U-Net's ladder (``cifar_rows``,
    measured on ``cifar_device``) for half precision's speed there; this run's digits ladder and architecture table
    (timed on ``device``) with the FD measurement of study 5 (``fd``, `fastdiff.measure.fd_sweep`'s section,
    measured on ``fd_device``: the rules refuse to join them when that is another machine); the DDP benchmark and
    the diffusers comparison (either may be None: those claims are then not testable)."""
    m = {"device": device, "train steps": train_steps, "fd device": fd_device or None}
    by = {r["rung"]: r for r in ladder_rows}
    ratios = fd_sweep.pairs(fd) if fd else {}
    if fd:
        m["fd n"] = fd.get("n")
    if cifar_rows and (best := _best_half(cifar_rows)):
        m.update({"half rung": best["rung"], "half twin": best["twin"], "half speed-up": best["speed-up"],
                  "half why": best["why"], "half device": cifar_device or None})
    if best := _best_half(ladder_rows):
        pair = ratios.get((performance_fd.RUNG_KEYS.get(best["rung"]), "fp32"))
        m.update({"digits half rung": best["rung"], "digits half twin": best["twin"],
                  "digits half speed-up": best["speed-up"], "digits half why": best["why"],
                  "digits half FD ratio": pair and pair["ratio"]})
    if "fp32" in by and "im2col convolution" in by:
        m["im2col speed-up"] = by["fp32"]["ms per call"] / by["im2col convolution"]["ms per call"]
    for r in arch_rows[1:]:
        key = "bottleneck" if r["model"].startswith("bottleneck") else "fewer levels"
        keys = performance_fd.ARCH_KEYS
        pair = ratios.get((keys.get(r["model"]), keys.get(arch_rows[0]["model"])))
        m.update({f"{key} FLOPs ratio": r["FLOPs vs baseline"], f"{key} FD ratio": pair and pair["ratio"],
                  f"{key} sampling time ratio": r["sampling time vs baseline"],
                  f"{key} training time ratio": r["training time vs baseline"]})
    if ddp:
        runs = ddp["runs"]
        if "1" in runs and "2" in runs:
            m.update({"ddp scaling": runs["2"]["images per second"] / runs["1"]["images per second"],
                      "shared cores": ddp.get("shared cores", False),
                      "ddp device": machine_label(runs["2"]["device"], ddp.get("cpu"))})
    if compare:
        m.update({"best vs diffusers": compare["best vs best"], "ours best": compare["ours best"],
                  "peer best": compare["peer best"], "cifar10 device": compare.get("device", "")})
    return {k: v for k, v in m.items() if v is not None}


def collect_results(run, *, dataset: str, weights: str, ladders: dict[str, list[dict]], arch_rows: list[dict],
                    library_rows: list[dict], ddp: dict | None, verdicts: list[dict], ddim_steps: int,
                    sources: dict[str, str] | None = None, devices: dict[str, str] | None = None,
                    metric: str = "FD (LeNet-MNIST)"):
    """The notebook's numbers as `fastdiff.results` rows (``sources`` and ``devices`` say, per table, where and on
    what rows not measured in this run were measured; "fd": the FD measurement). An FD is an `Estimate`: its row
    carries the interval and n (its paired ratio to the reference, fp32's or the baseline's, stays in the details:
    a ratio of FDs is no metric of `fastdiff.results.METRICS`)."""
    sources = sources or {}
    on = {k: {"device": v} for k, v in (devices or {}).items() if v}
    fd_kw = dict(source=sources.get("fd", "measured in this run"), **on.get("fd", {}))
    res = Results(STUDY, device=run.env["device"], dtype=run.dtype_name, dataset=dataset, weights=weights,
                  profile=run.profile, seed=run.seed, environment=run.env)
    for model, rows in ladders.items():
        for r in rows:
            kw = dict(steps=ddim_steps, batch=r.get("batch"), rung_dtype=r["dtype"], layout=r["layout"])
            where = dict(source=sources.get(model, "measured in this run"), **on.get(model, {}))
            res.add("inference ladder", f"{model}: {r['rung']}", "time per call", r["ms per call"], **kw, **where)
            res.add("inference ladder", f"{model}: {r['rung']}", "speed-up", r["speed-up vs fp32"], **kw, **where)
            if r.get(metric) is not None:
                res.add("inference ladder", f"{model}: {r['rung']}", metric, r[metric], **kw, **fd_kw)
    for r in arch_rows:
        res.add("architecture", r["model"], "parameters", r["parameters (M)"])
        res.add("architecture", r["model"], "GFLOPs per call", r["GFLOP per call"])
        res.add("architecture", r["model"], "time per call", r["ms per sampling call"], phase="sampling")
        res.add("architecture", r["model"], "time per call", r["ms per training step"], phase="training")
        if r.get(metric) is not None:
            res.add("architecture", r["model"], metric, r[metric], steps=r["steps"], eta=r["eta"], **fd_kw)
    for r in library_rows:
        res.add(f"library: {r['library']}", r["rung"], "time per call", r["ms per call"],
                source=sources.get("libraries", "measured in this run"), **on.get("libraries", {}))
    if ddp:
        for b in ddp["runs"].values():
            res.add("DDP training (torchrun)", f"{b['processes']} processes", "time per call",
                    1e3 * b["seconds per step"], images_per_s=b["images per second"], backend=b["backend"],
                    note=ddp.get("note", ""), source=sources.get("ddp", "benchmarks/ddp_training.py"),
                    device=machine_label(b["device"], ddp.get("cpu")))
    res.verdicts = verdicts
    return res


def precision_report(roofs: dict, ladders: dict[str, list[dict]], cpu: dict | None = None) -> list[str]:
    """What each precision did on this machine and why, in lines computed from the measured roofs, the ladders
    ({model: rows}; each half rung against its fp32 twin) and the CPU's features (`fastdiff.devices.cpu_features`;
    None on a GPU)."""
    fp32_roof = roofs.get("matmul GFLOP/s (fp32)")
    lines = []
    if cpu is not None:
        flags = set(cpu.get("flags", []))
        lines.append(f"CPU features: {', '.join(sorted(flags)) or 'none of note'}; AMX "
                     f"{'present' if cpu.get('amx') else 'absent'} (torch's CPU capability "
                     f"{cpu.get('torch_cpu_capability', '?')})")
    for dtype in ("bf16", "fp16"):
        roof = roofs.get(f"matmul GFLOP/s ({dtype})")
        if roof is None or not fp32_roof:
            continue
        ratio = roof / fp32_roof
        if ratio < 0.2:
            why = f"no {dtype} arithmetic in this hardware: it emulates it (matmul roof {ratio:.3f}x fp32's)"
        elif ratio > 1.3:
            why = f"native {dtype} dot products (matmul roof {ratio:.2f}x fp32's)"
        else:
            why = f"no faster {dtype} arithmetic (matmul roof {ratio:.2f}x fp32's)"
        lines.append(f"{dtype}: {why}")
        for model, rows in ladders.items():
            for pair in precision_pairs(rows):
                if pair["dtype"] == dtype:
                    speed = pair["speed-up"]
                    verdict = "faster" if speed > 1.05 else "slower" if speed < 0.95 else "no faster"
                    lines.append(f"    {model}: {pair['rung']} ran {speed:.2f}x {pair['twin']} ({verdict})")
    return lines


# ------------------------------------------------------------------------------------------ notebook 05's last cells

def results_with_details(run, *, provenance: dict, train_info: dict, roofs: dict, digits_ladder: list[dict],
                         cifar: dict, compare: dict | None, digits_roof: dict, arch_rows: list[dict], ddp: dict | None,
                         measured: dict, verdicts: list[dict], ddim_steps: int, fd: dict | None = None,
                         fd_device: str = "", fd_source: str = ""):
    """The results file of notebook 05: its rows (`collect_results`) and its details. ``cifar``: what
    `fastdiff.studies.performance.cifar10_ladder` returned (the CIFAR-10 ladder, the library comparison, where and
    how they were measured); ``fd``: study 5's FD measurement (`fastdiff.measure.fd_sweep`'s section), measured on
    ``fd_device`` as ``fd_source`` says."""
    ladders = {"digits U-Net": digits_ladder, "DDPM CIFAR-10 U-Net": cifar["rows"]}
    res = collect_results(run, dataset="built-in MNIST digits, 16x16 (CIFAR-10 U-Net: random weights, timing only)",
                          weights=weights_label(provenance), ladders=ladders, arch_rows=arch_rows,
                          library_rows=cifar["libraries"], ddp=ddp, verdicts=verdicts, ddim_steps=ddim_steps,
                          devices={"DDPM CIFAR-10 U-Net": cifar["device"], "libraries": cifar["device"],
                                   "fd": fd_device},
                          sources={"DDPM CIFAR-10 U-Net": cifar["source"], "libraries": cifar["source"],
                                   "fd": fd_source})
    details = {"roofs": roofs, "digits_ladder": digits_ladder, "cifar10_ladder": cifar["rows"],
               "libraries": cifar["libraries"], "versus": compare, "roofline_digits": digits_roof,
               "architecture": arch_rows, "ddp": ddp, "weights": provenance, "train": train_info,
               "measured_for_claims": measured, "cifar10_source": cifar["source"], "cifar10_device": cifar["device"],
               "fd": fd, "fd_device": fd_device, "fd_source": fd_source}
    return res, details


def _text(x) -> str:
    """A number as the summary prints it: an `Estimate` with its interval, a plain number to two decimals."""
    return "-" if x is None else x.format() if hasattr(x, "low") else f"{x:.2f}"


def summary(*, digits_ladder: list[dict], arch_rows: list[dict], compare: dict | None, floor,
            verdicts: list[dict]) -> None:
    """What we found, printed: the digits U-Net's fastest rung and its FD, each architecture change's FLOPs,
    sampling and training time and FD against the baseline, fastdiff against diffusers (``compare``: `best_versus`
    with the "device" it ran on), the verdicts on the claims, then those on this project's own `TARGETS`. An FD
    may be an `Estimate` (printed with its interval, and its paired ratio to the reference where the row has it)."""
    def fd(r, ref, column):
        ratio = f", ratio {_text(r[column])}" if r.get(column) is not None else ""
        return f"FD {_text(r.get('FD (LeNet-MNIST)'))} vs {_text(ref.get('FD (LeNet-MNIST)'))}{ratio}"
    fastest = max(digits_ladder, key=lambda r: r["speed-up vs fp32"])
    lines = [f"digits U-Net: fastest rung {fastest['rung']!r}, {fastest['speed-up vs fp32']:.2f}x fp32, "
             f"{fd(fastest, digits_ladder[0], 'FD / fp32')} (floor {_text(floor)})"]
    lines += [f"{r['model']}: {100 * r['FLOPs vs baseline']:.0f}% FLOPs, {100 * r['sampling time vs baseline']:.0f}% "
              f"sampling time, {100 * r['training time vs baseline']:.0f}% training time, "
              f"{fd(r, arch_rows[0], 'FD / baseline')}" for r in arch_rows[1:]]
    if compare:
        lines.append(f"fastdiff vs diffusers, best vs best: {compare['best vs best']:.2f}x ({compare['device']})")
    targets = [r for r in verdicts if r["key"] in TARGETS]
    lines += verdict_lines([r for r in verdicts if r["key"] not in TARGETS])
    if targets:
        lines += ["this project's own targets (not a claim of the proposal):", *verdict_lines(targets)]
    print("\n".join(lines))
