"""Study 5's claims and verdicts (notebook 05): the proposal's expectations with our thresholds, the numbers they
read from the ladders, the architecture table, the DDP benchmark and the diffusers comparison, what each precision
did on this machine and why, and the notebook's results file. The measurements are `fastdiff.studies.performance`.
"""
from __future__ import annotations

from ..results import Results
from ..verdicts import Claim, grade, need, verdict_lines
from .common import PROJECT_TARGETS, weights_label


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


def _claims():
    def half(m):
        speed, fd, fd32 = need(m, "half speed-up", "half FD", "fp32 FD")
        cost = fd / fd32 - 1
        verdict = grade(speed >= 1.2 and cost <= 0.1, speed > 1.05 and cost <= 0.1)
        return verdict, f"{m.get('half rung', 'half precision')}: {speed:.2f}x its fp32 twin on " \
            f"{m.get('half model', 'the model')}; FD {fd:.2f} vs {fd32:.2f} ({100 * cost:+.0f}%, digits model)", \
            m.get("half why", "")

    def im2col(m):
        speed = need(m, "im2col speed-up")
        return grade(speed >= 1.05, speed >= 0.95), f"{speed:.2f}x the library convolution's speed", \
            "F.unfold + matmul against the library's direct convolution (oneDNN on the CPU, cuDNN on CUDA)"

    def arch(label, key):
        def rule(m):
            flops, t_sample, t_train, fd, fd0 = need(m, f"{key} FLOPs ratio", f"{key} sampling time ratio",
                                                     f"{key} training time ratio", f"{key} FD", "baseline FD")
            t = t_train if key == "fewer levels" else t_sample
            what = "training step" if key == "fewer levels" else "sampling call"
            cost = fd / fd0 - 1
            verdict = grade(t <= 0.8 and cost <= 0.25, t < 0.95 and cost <= 0.25)
            return verdict, f"{100 * flops:.0f}% of the FLOPs, {100 * t:.0f}% of the time per {what} " \
                f"({100 * t_sample:.0f}% sampling, {100 * t_train:.0f}% training); FD {fd:.2f} vs {fd0:.2f}", \
                f"trained with the baseline's recipe and budget ({m.get('train steps', '?')} steps)"
        return rule

    def devices(m):
        if m.get("shared cores"):
            return "not testable here", f"{need(m, 'ddp scaling'):.2f}x images/s with 2 processes", \
                "the processes share one CPU's cores: a second process adds no compute (needs 2 GPUs)"
        s = need(m, "ddp scaling")
        return grade(s >= 1.6, s > 1.1), f"{s:.2f}x images/s with 2 processes", m.get("ddp device", "")

    def peer(m):
        r = need(m, "best vs diffusers")
        return grade(r >= 1.5, r > 1.0), f"{r:.2f}x: fastdiff {m.get('ours best', '?')} vs diffusers " \
            f"{m.get('peer best', '?')}", f"DDPM CIFAR-10 U-Net, {m.get('cifar10 device', '')}"
    return [
        Claim("half", "half precision cuts compute time at little quality cost",
              "expected, no number (Sec. 1, 3; after Micikevicius et al.)",
              "each bf16 / fp16 rung against its fp32 twin (same layout, attention, compile) on the proposal's "
              "DDPM CIFAR-10 U-Net (the digits model where that was not run), and FD (LeNet-MNIST) of the digits "
              "model's samples at that rung", "the best pair at least 1.2x faster with FD within 10% (partly: any "
              "speed-up over 5%, FD within 10%)", half),
        Claim("im2col", "im2col convolution is faster than the baseline convolution", "expected, no number (Sec. 3)",
              "the im2col rung against fp32 with the library convolution, the digits model",
              "at least 5% faster (partly: within 5%)", im2col),
        Claim("bottleneck", "1x1 bottleneck layers between the ResNet blocks reduce computation and speed it up",
              "expected, no number (Sec. 3)", "FLOPs, time per sampling call and FD against the baseline, the same "
              "training budget", "at most 80% of the time with FD within 25% (partly: any time saved over 5%, "
              "FD within 25%)",
              arch("bottleneck", "bottleneck")),
        Claim("fewer-levels", "fewer sampling (down/up) blocks cut training time", "expected, no number (Sec. 3)",
              "time per training step, FLOPs and FD against the baseline, the same training budget",
              "at most 80% of the training time with FD within 25% (partly: any saving over 5%, FD "
              "within 25%)",
              arch("fewer levels", "fewer levels")),
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


def measured_for_claims(*, ladder_rows: list[dict], arch_rows: list[dict], ddp: dict | None,
                        compare: dict | None, device: str, train_steps: int, cifar_rows: list[dict] | None = None,
                        metric: str = "FD (LeNet-MNIST)") -> dict:
    """The numbers the claims read, from the digits ladder (quality; speed where ``cifar_rows``, the CIFAR-10
    U-Net's ladder, is missing), the architecture table, the DDP benchmark and the diffusers comparison (either
    may be None: those claims are then not testable)."""
    m = {"device": device, "train steps": train_steps}
    by = {r["rung"]: r for r in ladder_rows}
    fp32 = by.get("fp32")
    if fp32 is not None:
        m["fp32 FD"] = fp32.get(metric)
        speed_rows, model = (cifar_rows, "the DDPM CIFAR-10 U-Net") if cifar_rows else (ladder_rows, "the digits U-Net")
        pairs = precision_pairs(speed_rows)
        if pairs:
            best = max(pairs, key=lambda p: p["speed-up"])
            half = by.get(best["rung"], {})
            twin_fd = by.get(best["twin"], {}).get(metric)
            m.update({"half rung": best["rung"], "half model": model, "half speed-up": best["speed-up"],
                      "half FD": half.get(metric), "fp32 FD": twin_fd if twin_fd is not None else m["fp32 FD"]})
            m["half why"] = "; ".join(f"{p['rung']} {p['speed-up']:.2f}x {p['twin']}" for p in pairs) + \
                f" ({model})"
        if "im2col convolution" in by:
            m["im2col speed-up"] = fp32["ms per call"] / by["im2col convolution"]["ms per call"]
    if arch_rows:
        m["baseline FD"] = arch_rows[0].get(metric)
        for r in arch_rows[1:]:
            key = "bottleneck" if r["model"].startswith("bottleneck") else "fewer levels"
            m.update({f"{key} FLOPs ratio": r["FLOPs vs baseline"], f"{key} FD": r.get(metric),
                      f"{key} sampling time ratio": r["sampling time vs baseline"],
                      f"{key} training time ratio": r["training time vs baseline"]})
    if ddp:
        runs = ddp["runs"]
        if "1" in runs and "2" in runs:
            m.update({"ddp scaling": runs["2"]["images per second"] / runs["1"]["images per second"],
                      "shared cores": ddp.get("shared cores", False), "ddp device": runs["2"]["device"]})
    if compare:
        m.update({"best vs diffusers": compare["best vs best"], "ours best": compare["ours best"],
                  "peer best": compare["peer best"], "cifar10 device": compare.get("device", "")})
    return {k: v for k, v in m.items() if v is not None}


def collect_results(run, *, dataset: str, weights: str, ladders: dict[str, list[dict]], arch_rows: list[dict],
                    library_rows: list[dict], ddp: dict | None, verdicts: list[dict], ddim_steps: int,
                    sources: dict[str, str] | None = None, devices: dict[str, str] | None = None,
                    metric: str = "FD (LeNet-MNIST)"):
    """The notebook's numbers as `fastdiff.results` rows (``sources`` and ``devices`` say, per table, where and on
    what rows not measured in this run were measured)."""
    sources = sources or {}
    on = {k: {"device": v} for k, v in (devices or {}).items() if v}
    res = Results(STUDY, device=run.env["device"], dtype=run.dtype_name, dataset=dataset, weights=weights,
                  profile=run.profile, seed=run.seed, environment=run.env)
    for model, rows in ladders.items():
        for r in rows:
            kw = dict(steps=ddim_steps, batch=r.get("batch"), rung_dtype=r["dtype"], layout=r["layout"],
                      source=sources.get(model, "measured in this run"), **on.get(model, {}))
            res.add("inference ladder", f"{model}: {r['rung']}", "time per call", r["ms per call"], **kw)
            res.add("inference ladder", f"{model}: {r['rung']}", "speed-up", r["speed-up vs fp32"], **kw)
            if r.get(metric) is not None:
                res.add("inference ladder", f"{model}: {r['rung']}", metric, r[metric], n=r.get("n"), **kw)
    for r in arch_rows:
        res.add("architecture", r["model"], "parameters", r["parameters (M)"])
        res.add("architecture", r["model"], "GFLOPs per call", r["GFLOP per call"])
        res.add("architecture", r["model"], "time per call", r["ms per sampling call"], phase="sampling")
        res.add("architecture", r["model"], "time per call", r["ms per training step"], phase="training")
        if r.get(metric) is not None:
            res.add("architecture", r["model"], metric, r[metric], n=r["n"], steps=r["steps"], eta=r["eta"])
    for r in library_rows:
        res.add(f"library: {r['library']}", r["rung"], "time per call", r["ms per call"],
                source=sources.get("libraries", "measured in this run"), **on.get("libraries", {}))
    if ddp:
        for b in ddp["runs"].values():
            res.add("DDP training (torchrun)", f"{b['processes']} processes", "time per call",
                    1e3 * b["seconds per step"], images_per_s=b["images per second"], backend=b["backend"],
                    note=ddp.get("note", ""), source=sources.get("ddp", "benchmarks/ddp_training.py"),
                    device=b["device"])
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
                         measured: dict, verdicts: list[dict], ddim_steps: int):
    """The results file of notebook 05: its rows (`collect_results`) and its details. ``cifar``: what
    `fastdiff.studies.performance.cifar10_ladder` returned (the CIFAR-10 ladder, the library comparison, where and
    how they were measured)."""
    ladders = {"digits U-Net": digits_ladder, "DDPM CIFAR-10 U-Net": cifar["rows"]}
    res = collect_results(run, dataset="built-in MNIST digits, 16x16 (CIFAR-10 U-Net: random weights, timing only)",
                          weights=weights_label(provenance), ladders=ladders, arch_rows=arch_rows,
                          library_rows=cifar["libraries"], ddp=ddp, verdicts=verdicts, ddim_steps=ddim_steps,
                          devices={"DDPM CIFAR-10 U-Net": cifar["device"], "libraries": cifar["device"]},
                          sources={"DDPM CIFAR-10 U-Net": cifar["source"], "libraries": cifar["source"]})
    details = {"roofs": roofs, "digits_ladder": digits_ladder, "cifar10_ladder": cifar["rows"],
               "libraries": cifar["libraries"], "versus": compare, "roofline_digits": digits_roof,
               "architecture": arch_rows, "ddp": ddp, "weights": provenance, "train": train_info,
               "measured_for_claims": measured, "cifar10_source": cifar["source"]}
    return res, details


def summary(*, digits_ladder: list[dict], arch_rows: list[dict], compare: dict | None, floor: float,
            verdicts: list[dict]) -> None:
    """What we found, printed: the digits U-Net's fastest rung and its FD, each architecture change's FLOPs,
    sampling and training time and FD against the baseline, fastdiff against diffusers (``compare``: `best_versus`
    with the "device" it ran on), the verdicts on the claims, then those on this project's own `TARGETS`."""
    fastest = max(digits_ladder, key=lambda r: r["speed-up vs fp32"])
    lines = [f"digits U-Net: fastest rung {fastest['rung']!r}, {fastest['speed-up vs fp32']:.2f}x fp32, FD "
             f"{fastest['FD (LeNet-MNIST)']:.2f} vs {digits_ladder[0]['FD (LeNet-MNIST)']:.2f} (floor {floor:.2f})"]
    lines += [f"{r['model']}: {100 * r['FLOPs vs baseline']:.0f}% FLOPs, {100 * r['sampling time vs baseline']:.0f}% "
              f"sampling time, {100 * r['training time vs baseline']:.0f}% training time, FD "
              f"{r['FD (LeNet-MNIST)']:.2f} vs {arch_rows[0]['FD (LeNet-MNIST)']:.2f}" for r in arch_rows[1:]]
    if compare:
        lines.append(f"fastdiff vs diffusers, best vs best: {compare['best vs best']:.2f}x ({compare['device']})")
    targets = [r for r in verdicts if r["key"] in TARGETS]
    lines += verdict_lines([r for r in verdicts if r["key"] not in TARGETS])
    if targets:
        lines += ["this project's own targets (not a claim of the proposal):", *verdict_lines(targets)]
    print("\n".join(lines))
