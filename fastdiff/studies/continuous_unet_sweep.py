"""Study 3's FD sweep as the notebook shows it: the committed measurement (`continuous_unet_fd`, read through
`fastdiff.measure.fd_sweep`) as rows, tables and a figure with 95% intervals, the step counts within noise of each
model's best (paired intervals), the ablations at one step count, and the small live demonstration beside the
committed numbers. `continuous_unet` re-exports these, so the notebook and the claims reach them there."""
from __future__ import annotations

import torch

from ..measure import fd_sweep
from ..measure.bench import measure
from ..measure.intervals import Estimate, fd_interval
from ..measure.seed_spread import fixed_noise, generate, lenet_features
from ..sampling import DDPM

FD = "FD (LeNet-MNIST)"
MAIN = ("U-Net", "cU-Net")


def _value(x) -> float:
    """An `Estimate`'s value, or the number itself."""
    return getattr(x, "value", x)


def sweep_rows(fd: dict) -> list[dict]:
    """The rows of a study-3 FD sweep (``fd``: its section of ``digits_fd.json``, `fastdiff.measure.fd_sweep`): the
    floor (the real held-out digits, steps None) first, then one row per setting, {"model", "steps", "n", "key",
    FD: the bias-corrected `Estimate` with its 95% interval, "FD plug-in", "KID", "KID std"}."""
    est = fd_sweep.estimates(fd)
    recs = ([("floor", fd["floor"], "real held-out digits", None)] if fd.get("floor") else []) + [
        (k, r, r["sampling"]["model"], r["sampling"]["steps"]) for k, r in fd["settings"].items()]
    return [{"model": model, "steps": steps, "n": r["n"], "key": k, FD: est[k], "FD plug-in": est[k].uncorrected,
             "KID": r["kid"]["mean"], "KID std": r["kid"]["std"]} for k, r, model, steps in recs]


def fd_table(rows: list[dict]):
    """FD [95%] of every model (rows) at every step count (columns), with n in the column names."""
    import pandas as pd
    pts = [r for r in rows if r["steps"] is not None]
    ns = sorted({r["n"] for r in pts})
    table = pd.DataFrame([{"model": r["model"], "steps": r["steps"], "FD": r[FD].format(2)} for r in pts])
    table = table.pivot(index="model", columns="steps", values="FD").reindex(
        [m for m in dict.fromkeys(r["model"] for r in pts)]).fillna("")
    table.columns = [f"{k} steps" for k in table.columns]
    table.columns.name = f"FD, bias-corrected [95%], n = {', '.join(map(str, ns))}"
    return table


def plot_fd_vs_steps(rows: list[dict], *, models=MAIN, ax=None, title: str | None = None):
    """FD against DDPM steps (log-log) with 95% intervals as error bars, one line per model, the real-data floor
    (its interval shaded; a bound at 0 runs off the log axis)."""
    import matplotlib.pyplot as plt
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for i, name in enumerate(models):
        pts = sorted(((r["steps"], r[FD]) for r in rows if r["model"] == name and r["steps"] is not None),
                     key=lambda p: p[0])
        if pts:
            k = [p[0] * (1 + 0.03 * (i - (len(models) - 1) / 2)) for p in pts]   # side by side, not on top
            v = [p[1].value for p in pts]
            ax.errorbar(k, v, yerr=[[p[1].value - p[1].low for p in pts], [p[1].high - p[1].value for p in pts]],
                        fmt="o-", capsize=3, label=f"{name} (n = {pts[0][1].n})")
    for r in rows:
        if r["steps"] is None:
            ax.axhline(r[FD].value, ls="--", color="grey", label=f"{r['model']} (n = {r[FD].n})")
            ax.axhspan(r[FD].low, r[FD].high, color="grey", alpha=0.15)
    ax.set(xscale="log", yscale="log", xlabel="DDPM steps", ylabel="FD, bias-corrected (lower is better)")
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
    ax.xaxis.set_major_locator(FixedLocator(sorted({r["steps"] for r in rows if r["steps"] is not None})))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_title(title or f"{FD} against steps, 95% intervals", fontsize=9)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax


def ablation_table(rows: list[dict], fd_pairs: dict, params_rows: list[dict], *, steps: int):
    """The ablations at ``steps`` beside their size: FD [95%] and the paired ratio to the cU-Net's FD [95%]."""
    import pandas as pd
    at = {r["model"]: r for r in rows if r["steps"] == steps and r["model"] != "U-Net"}
    cunet = at.get("cU-Net")
    out = []
    for p in params_rows:
        r = at.get(p["model"])
        if r is None:
            continue
        pair = cunet and fd_pairs.get((r["key"], cunet["key"]))
        out.append({"model": p["model"], "parameters (M)": round(p["parameters (M)"], 3),
                    "GFLOPs per call": round(p["GFLOPs per call"], 3), "NFE per call": p["NFE per call"],
                    f"FD [95%], {steps} steps": r[FD].format(2), "n": r["n"],
                    "FD / cU-Net's [95%, paired]": pair["ratio"].format(2) if pair else "-"})
    return pd.DataFrame(out).set_index("model") if out else pd.DataFrame()


def best_steps(rows: list[dict], metric: str = FD) -> dict[str, dict]:
    """{model: the row of its best (lowest) FD}."""
    best: dict[str, dict] = {}
    for r in rows:
        if r["steps"] is not None and (r["model"] not in best or _value(r[metric]) < _value(best[r["model"]][metric])):
            best[r["model"]] = r
    return best


def _beyond_noise(worse: dict, best: dict, fd_pairs: dict) -> bool:
    """Whether ``worse``'s FD lies above ``best``'s beyond noise: the paired 95% interval of FD(worse) - FD(best)
    (same x_T) lies above 0; without that pair, ``worse``'s interval lies above ``best``'s (plain numbers: larger)."""
    a, b = worse.get("key"), best.get("key")
    if (a, b) in fd_pairs:
        return fd_pairs[(a, b)]["difference"].low > 0
    if (b, a) in fd_pairs:
        return fd_pairs[(b, a)]["difference"].high < 0
    return getattr(worse[FD], "low", worse[FD]) > getattr(best[FD], "high", best[FD])


def steps_like_best(rows: list[dict], model: str, fd_pairs: dict | None = None) -> list[int]:
    """The step counts whose FD is not distinguishable from ``model``'s best (`_beyond_noise` fails), the best
    included: where the best step count may lie."""
    mine = [r for r in rows if r["model"] == model and r["steps"] is not None]
    best = best_steps(mine)[model]
    return sorted(r["steps"] for r in mine if r is best or not _beyond_noise(r, best, fd_pairs or {}))


def paired_table(rows: list[dict], fd_pairs: dict):
    """At every step count: each model's FD(k) - FD(its best) and the ratio FD(cU-Net) / FD(U-Net), with their
    paired 95% intervals (same x_T, same resampled indices); "best" marks the best step count."""
    import pandas as pd
    by = {(r["model"], r["steps"]): r for r in rows if r["steps"] is not None}
    best = best_steps([r for r in rows if r["model"] in MAIN])
    out = []
    for k in sorted({s for m, s in by if m in MAIN}):
        row = {"steps": k}
        for name in MAIN:
            r, b = by.get((name, k)), best.get(name)
            row[f"{name}: FD - best's"] = "best" if r is b else _pair(fd_pairs, r, b, "difference")
        row["cU-Net / U-Net"] = _pair(fd_pairs, by.get(("cU-Net", k)), by.get(("U-Net", k)), "ratio")
        out.append(row)
    return pd.DataFrame(out).set_index("steps")


def _pair(fd_pairs: dict, a: dict | None, b: dict | None, what: str) -> str:
    """The paired interval of a and b (a - b or a / b) as text, "-" where it was not measured."""
    if a is None or b is None:
        return "-"
    ka, kb = a.get("key"), b.get("key")
    if (ka, kb) in fd_pairs:
        return fd_pairs[(ka, kb)][what].format(2)
    if (kb, ka) in fd_pairs and what == "difference":
        e = fd_pairs[(kb, ka)][what]
        return Estimate(-e.value, -e.high, -e.low, e.n, e.method).format(2)
    return "-"


def live_fd(models: dict, schedule, reference: torch.Tensor, *, steps: dict[str, int], n: int, batch_size: int,
            device, dtype=torch.float32, seed: int = 0, n_boot: int = 1000) -> list[dict]:
    """A small live demonstration: FD (LeNet-MNIST, bias-corrected, with its bootstrap interval) of ``n`` DDPM
    samples of each model at its step count ``steps[name]``, from the first ``n`` x_T of the committed sweep
    (`fastdiff.measure.fd_sweep`: `fixed_noise` of seed 0), scored against ``reference``; and its sampling time."""
    features, stats = lenet_features(reference, device=device)
    x_T = fixed_noise(max(n, 1000), reference.shape[1:], seed=seed)[:n]
    rows = []
    for name, k in steps.items():
        t = measure(lambda: generate(models[name], x_T, schedule=schedule, sampler=DDPM, steps=k,
                                     batch_size=batch_size, seed=seed, device=device, dtype=dtype),
                    device=device, warmup=0, repeats=1)
        rows.append({"model": name, "steps": k, "n": n, FD: fd_interval(features(t["result"]), stats, n_boot=n_boot),
                     "ms per sample": 1e3 * t["median_s"] / n})
    return rows


def beside_committed(live_rows: list[dict], rows: list[dict]):
    """The live FDs beside the committed ones of the same model and step count (both bias-corrected with their 95%
    intervals; a plug-in FD of n = 100 sits far above one of n = 1000, the corrected values compare), and whether
    the intervals overlap."""
    import pandas as pd
    committed = {(r["model"], r["steps"]): r[FD] for r in rows}
    out = []
    for r in live_rows:
        live, then = r[FD], committed.get((r["model"], r["steps"]))
        out.append({"model": r["model"], "steps": r["steps"], "live": f"{live.format(2)} (n={live.n})",
                    "committed": "-" if then is None else f"{then.format(2)} (n={then.n})",
                    "intervals overlap": None if then is None else live.low <= then.high and then.low <= live.high})
    return pd.DataFrame(out).set_index("model")
