"""Figures the notebooks share: image grids, the forward process, loss, timing and FD-against-steps curves,
fool rates. Presentation only: it imports the core, never a method or a study (a study passes its data in)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .diffusion import Schedule, q_sample


def image_grid(images: torch.Tensor, nrow: int = 8, pad: int = 1):
    """(N, C, H, W) in [-1, 1] -> an (H', W', C) array in [0, 1] laid out nrow images per row."""
    from torchvision.utils import make_grid
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5, nrow=nrow, padding=pad, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def show_images(images: torch.Tensor, *, nrow: int = 8, title: str | None = None, ax=None):
    ax = ax or plt.subplots(figsize=(nrow * 0.6, (len(images) + nrow - 1) // nrow * 0.6 + 0.4))[1]
    grid = image_grid(images, nrow)
    gray = images.shape[1] == 1  # make_grid repeats one channel to three; show it as grey
    ax.imshow(grid[..., 0] if gray else grid, cmap="gray" if gray else None, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def show_grids(grids: dict[str, torch.Tensor], *, nrow: int = 4, suptitle: str | None = None, panel: float = 2.3,
               columns: int | None = None):
    """Several image sets, one panel each (e.g. samples per number of steps), ``panel`` inches wide, in rows of
    ``columns`` panels (default: all in one row)."""
    columns = columns or len(grids)
    rows = -(-len(grids) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(panel * columns, (panel + 0.3) * rows), squeeze=False)
    for ax in axes.flat[len(grids):]:
        ax.set_axis_off()
    for ax, (title, images) in zip(axes.flat, grids.items()):
        show_images(images, nrow=nrow, title=title, ax=ax)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def plot_forward_process(x0: torch.Tensor, schedule: Schedule, steps: list[int], *,
                         generator: torch.Generator | None = None):
    """Rows: images; columns: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps at the given t (one eps per image)."""
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    fig, axes = plt.subplots(len(x0), len(steps), figsize=(1.1 * len(steps), 1.15 * len(x0)), squeeze=False)
    for col, t in enumerate(steps):
        xt = q_sample(schedule, x0, torch.full((len(x0),), t), noise)
        for row in range(len(x0)):
            show_images(xt[row:row + 1], nrow=1, ax=axes[row, col])
        abar = float(schedule.alpha_bar[t])
        axes[0, col].set_title(f"t={t}\n$\\sqrt{{\\bar\\alpha}}$={abar ** 0.5:.2f}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_loss(history: list[dict], *, ax=None, title: str = "training loss", ylabel: str = "noise-prediction loss"):
    ax = ax or plt.subplots(figsize=(5, 3))[1]
    steps = [h["step"] for h in history]
    loss = torch.tensor([h["loss"] for h in history])
    ax.plot(steps, loss, lw=0.6, alpha=0.4, label="loss")
    if len(loss) >= 10:
        k = max(2, len(loss) // 20)
        smooth = torch.nn.functional.avg_pool1d(loss[None, None], k, stride=1)[0, 0]
        ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"running mean ({k})")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_time_vs_steps(rows: list[dict], *, ax=None, title: str = "sampling time per image"):
    """Milliseconds per image against the number of denoising steps, one line per sampler."""
    ax = ax or plt.subplots(figsize=(5, 3))[1]
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        pts = sorted((r["steps"], r["ms_per_image"]) for r in rows if r["sampler"] == sampler)
        ax.plot(*zip(*pts), "o-", label=sampler)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("denoising steps (network evaluations)")
    ax.set_ylabel("ms per image")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_fd_vs_steps(rows: list[dict], *, metric: str = "FD (LeNet-MNIST)", ax=None, title: str | None = None):
    """FD against the number of sampling steps (log x), with the real-data floor (the row whose ``steps`` is
    None) as a dashed line, the 95% intervals where rows have ``low``/``high`` (the floor's as a grey band), and
    the time per image on a second axis where rows have ``ms_per_image``."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    floor = [r for r in rows if r["steps"] is None]
    pts = [r for r in rows if r["steps"] is not None]
    x, y = [r["steps"] for r in pts], [r[metric] for r in pts]
    if all("low" in r for r in pts):
        ax.errorbar(x, y, yerr=[[v - r["low"] for v, r in zip(y, pts)], [r["high"] - v for v, r in zip(y, pts)]],
                    fmt="o-", capsize=3, label=f"{metric}, samples (95% interval)")
    else:
        ax.plot(x, y, "o-", label=f"{metric}, samples")
    for r in floor:
        ax.axhline(r[metric], ls="--", color="grey", label=f"{metric}, {r['source']}")
        if "low" in r:
            ax.axhspan(r["low"], r["high"], color="grey", alpha=0.15)
    ax.set(xscale="log", xlabel="DDIM steps", ylabel=f"{metric} (lower is better)")
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
    ax.xaxis.set_major_locator(FixedLocator([r["steps"] for r in pts]))   # one labelled tick per measured count
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_title(title or metric, fontsize=9)
    lines = ax.get_legend_handles_labels()[0]
    if all("ms_per_image" in r for r in pts):
        ax2 = ax.twinx()
        ax2.plot(x, [r["ms_per_image"] for r in pts], "s:", color="tab:orange", label="ms per image")
        ax2.set(ylabel="ms per image", yscale="log")
        lines += ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], fontsize=8, loc="upper center")
    ax.figure.tight_layout()
    return ax


def plot_fool_rates(table, *, paper: dict[str, float] | None = None, ax=None, title: str = "fool rate"):
    """Fool rate per model (`fastdiff.measure.foolrate.fool_rate_table`) with 95% Wilson intervals and n under each
    bar; the paper's rates as hatched bars beside ours; the 50% line that a perfect generator would reach."""
    import numpy as np
    ax = ax or plt.subplots(figsize=(6.5, 3.5))[1]
    labels, heights = [], []
    for r in table.itertuples():
        labels.append(f"{r.model}\n(n={r.n})")
        heights.append(r.fool_rate)
        ax.errorbar(len(labels) - 1, r.fool_rate, yerr=[[r.fool_rate - r.ci_low], [r.ci_high - r.fool_rate]],
                    color="black", capsize=4, lw=1)
    n_ours = len(labels)
    for model, rate in (paper or {}).items():
        labels.append(f"paper:\n{model}")
        heights.append(rate)
    x = np.arange(len(labels))
    if n_ours:
        ax.bar(x[:n_ours], heights[:n_ours], color="tab:blue", label="measured here (95% Wilson interval)")
    if len(labels) > n_ours:
        ax.bar(x[n_ours:], heights[n_ours:], color="lightgrey", edgecolor="dimgrey", hatch="//",
               label="paper (no interval given)")
    ax.axhline(0.5, ls="--", color="tab:red", label="50%: indistinguishable from real")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set(ylim=(0, 1), ylabel="fool rate (generated picked as real)")
    ax.set_title(title, fontsize=9)
    if not n_ours:
        ax.text(0.02, 0.9, "no answers recorded yet", transform=ax.transAxes, fontsize=9, color="tab:blue")
    ax.legend(fontsize=7, loc="upper right")
    ax.figure.tight_layout()
    return ax


def show_trial(sources, trial, *, title: str | None = None):
    """One fool-rate trial as the player sees it (left candidate, LR input, right candidate), with the answer
    written under each candidate: for practice pairs and reports, never for a pair still to be played."""
    real_left = trial.real_side == "left"
    panels = [("real" if real_left else "generated", "real" if real_left else "generated", "left"),
              ("lr", None, "low-res input"),
              ("generated" if real_left else "real", "generated" if real_left else "real", "right")]
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.9))
    for ax, (kind, answer, caption) in zip(axes, panels):
        ax.axis("off")
        if kind == "lr" and sources.lr is None:
            ax.set_title("(no low-res images)", fontsize=8)
            continue
        image = sources.load(kind, trial.image_id, trial.model if kind == "generated" else None)
        ax.imshow(image, interpolation="nearest")
        label = caption if answer is None else f"{caption}: {answer}" + (f" ({trial.model})" if answer == "generated" else "")
        ax.set_title(label, fontsize=8)
    fig.suptitle(title or f"practice pair {trial.image_id}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_k_schedule(tables: dict[float, list[int]], num_levels: int, *, ax=None):
    """k(t) of the layer-skipping paper (eq. 1) against t for several c (``tables``: {c: k for every timestep},
    e.g. from `fastdiff.methods.layer_skipping.k_table`): the number of deepest levels skipped."""
    ax = ax or plt.subplots(figsize=(6, 3.2))[1]
    for c, table in tables.items():
        t = [i / (len(table) - 1) for i in range(len(table))]
        ax.step(t, table, where="post", label=f"c = {c:g}")
    ax.set(xlabel="t (normalised; 1 = pure noise)", ylabel="k(t): levels skipped", yticks=range(num_levels))
    ax.set_title(f"k(t) = min(N-1, floor(N - N(1-t)^c)), N = {num_levels}", fontsize=9)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax


def plot_metric_vs_c(rows: list[dict], metric: str, *, by: str = "variant", ax=None, title: str | None = None):
    """One line per ``by`` (variant) of ``metric`` against c, the layer-skipping schedule's exponent."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for key in dict.fromkeys(r[by] for r in rows):
        pts = [r for r in rows if r[by] == key and r[metric] is not None]
        ax.plot([r["c"] for r in pts], [r[metric] for r in pts], "o-", label=key)
    ax.set(xlabel="c (0 = no skipping)", ylabel=metric)
    ax.set_title(title or metric, fontsize=9)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax


def plot_eval_curves(curves: dict[str, list[dict]], metrics=("val PSNR", "denoise PSNR"), *, baseline: dict | None = None,
                     title: str | None = None):
    """One panel per metric of the rows that `fastdiff.train.train(evaluate=...)` logs, one line per model,
    against training steps (study 1's Fig. 3); ``baseline`` ({metric: value}) draws a dashed reference line."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, rows in curves.items():
            ax.plot([r["step"] for r in rows], [r[metric] for r in rows], "o-", ms=3, label=name)
        if baseline and baseline.get(metric) is not None:
            ax.axhline(baseline[metric], ls="--", c="gray", lw=1, label=baseline.get("label", "baseline"))
        ax.set(xlabel="training step", ylabel=metric, title=metric)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def show_sr_steps(grid: dict[str, dict[int, torch.Tensor]], lr: torch.Tensor, hr: torch.Tensor, *,
                  suptitle: str | None = None, cell: float = 1.25):
    """Rows: models; columns: the LR input (nearest-neighbour enlarged), SR outputs at each number of sampling
    steps, the real HR image (study 1's Fig. 10). ``grid`` is {model: {steps: images}}; image 0 is shown."""
    import torch.nn.functional as F
    steps = list(next(iter(grid.values())))
    cols = len(steps) + 2
    fig, axes = plt.subplots(len(grid), cols, figsize=(cell * cols, cell * len(grid) + 0.5), squeeze=False)
    lr_big = F.interpolate(lr[:1].float(), size=hr.shape[-2:], mode="nearest")
    for row, (name, by_steps) in enumerate(grid.items()):
        panels = [("LR input", lr_big)] + [(f"{n} steps", by_steps[n][:1]) for n in steps] + [("real HR", hr[:1])]
        for col, (label, img) in enumerate(panels):
            show_images(img, nrow=1, ax=axes[row, col], title=label if row == 0 else None)
        axes[row, 0].text(-0.1, 0.5, name, transform=axes[row, 0].transAxes, ha="right", va="center", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def plot_xy(rows: list[dict], x: str, y: str, *, by: str = "model", ax=None, title: str | None = None,
            logx: bool = False, floor: float | None = None, floor_label: str = "real data (floor)"):
    """One line per ``by`` of ``y`` against ``x`` (rows without either are left out), with an optional dashed floor."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for key in dict.fromkeys(r[by] for r in rows):
        pts = sorted((r[x], r[y]) for r in rows if r[by] == key and r.get(x) is not None and r.get(y) is not None)
        if pts:
            ax.plot(*zip(*pts), "o-", label=str(key))
    if floor is not None:
        ax.axhline(floor, ls="--", color="grey", label=floor_label)
    ax.set(xlabel=x, ylabel=y, xscale="log" if logx else "linear")
    ax.set_title(title or f"{y} against {x}", fontsize=9)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax


def plot_bars(values: dict[str, float], *, paper: dict[str, float] | None = None, ylabel: str = "", ax=None,
              title: str | None = None):
    """Bars of ``values`` (ours) with the paper's beside them, hatched."""
    import numpy as np
    ax = ax or plt.subplots(figsize=(6.5, 3.2))[1]
    names = list(values)
    xs = np.arange(len(names))
    width = 0.4 if paper else 0.7
    ax.bar(xs - (width / 2 if paper else 0), [values[n] for n in names], width, label="measured here")
    if paper:
        ax.bar(xs + width / 2, [paper.get(n, float("nan")) for n in names], width, color="lightgrey",
               edgecolor="dimgrey", hatch="//", label="paper")
    ax.set_xticks(xs, names, fontsize=8)
    ax.set(ylabel=ylabel)
    ax.set_title(title or ylabel, fontsize=9)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax


def show_seams(images: dict[str, torch.Tensor], patch: int, *, n: int = 3, scores: dict[str, float] | None = None,
               suptitle: str | None = None, panel: float = 2.2):
    """Rows: images; columns: the sets in ``images`` (e.g. HR, no shift, fixed shift), with the patch grid
    (every ``patch`` pixels) drawn dashed, and each set's seam score in its title."""
    n = min(n, min(len(v) for v in images.values()))
    fig, axes = plt.subplots(n, len(images), figsize=(panel * len(images), panel * n + 0.4), squeeze=False)
    for col, (label, imgs) in enumerate(images.items()):
        for row in range(n):
            ax = axes[row, col]
            ax.imshow(imgs[row].float().clamp(-1, 1).permute(1, 2, 0).numpy() * 0.5 + 0.5)
            size = imgs.shape[-1]
            for k in range(patch, size, patch):
                ax.axhline(k - 0.5, color="white", lw=0.6, ls="--")
                ax.axvline(k - 0.5, color="white", lw=0.6, ls="--")
            ax.set_axis_off()
            if row == 0:
                score = f"\nseam score {scores[label]:.2f}" if scores and label in scores else ""
                ax.set_title(label + score, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def plot_seam_profile(images: dict[str, torch.Tensor], patch: int, *, ax=None, title: str | None = None):
    """Mean |x[..., j + 1] - x[..., j]| against the column j (and rows alike, averaged): a patch boundary shows as a
    spike at j = patch - 1, 2 patch - 1, ..."""
    ax = ax or plt.subplots(figsize=(6.5, 3.2))[1]
    for label, imgs in images.items():
        x = imgs.float()
        jump = ((x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(0, 1, 2))
                + (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(0, 1, 3))) / 2
        ax.plot(range(len(jump)), jump.numpy(), label=label, lw=1)
    size = next(iter(images.values())).shape[-1]
    for k in range(patch, size, patch):
        ax.axvline(k - 1, color="grey", ls=":", lw=0.8)
    ax.set(xlabel="pixel j (jump between j and j + 1)", ylabel="mean |jump|")
    ax.set_title(title or "jumps between neighbouring pixels; dotted: patch boundaries", fontsize=9)
    ax.legend(fontsize=7)
    ax.figure.tight_layout()
    return ax


def plot_speedup_vs_cost(rows: list[dict], *, x: str = "speed-up vs fp32", y: str = "FD (LeNet-MNIST)",
                         label: str = "rung", ax=None, title: str | None = None, reference: float | None = None):
    """Horizontal bars of ``x`` per row (speed-up; 1 = the reference), each annotated with its ``y`` (the
    quality cost), and a dashed line at 1."""
    ax = ax or plt.subplots(figsize=(6.5, 0.45 * len(rows) + 1.2))[1]
    names = [r[label] for r in rows][::-1]
    values = [r[x] for r in rows][::-1]
    colours = ["tab:green" if v >= 1 else "tab:red" for v in values]
    ax.barh(names, values, color=colours)
    ax.axvline(1.0, ls="--", color="grey")
    for i, r in enumerate(rows[::-1]):
        cost = r.get(y)
        if cost is not None:
            ax.annotate(f"{y.split(' (')[0]} {cost:.3g}", (values[i], i), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7)
    ax.set(xlabel=x)
    ax.set_xlim(0, max(values) * 1.35)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(title or f"{x} (bars) and {y} (labels)", fontsize=9)
    ax.figure.tight_layout()
    return ax


def plot_roofline(layers: list[dict], roofs: dict, *, ax=None, title: str | None = None, dtype: str = "fp32"):
    """Every layer at (FLOP per byte, achieved GFLOP/s) under the roofs: the flat matmul peak of ``dtype`` and
    the slanted copy-bandwidth roof, both measured on this machine (log-log)."""
    import numpy as np
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    peak, bw = roofs[f"matmul GFLOP/s ({dtype})"], roofs["copy GB/s"]
    xs = np.logspace(-1, 3, 200)
    ax.plot(xs, np.minimum(peak, bw * xs), color="black", lw=1.5, label=f"roof: {peak:.0f} GFLOP/s, {bw:.0f} GB/s")
    for kind, marker in (("conv", "o"), ("linear", "s")):
        pts = [(r["FLOP per byte"], r["GFLOP/s"], r["ms"]) for r in layers if r["kind"] == kind and r["ms"] > 0]
        if pts:
            ai, gf, ms = zip(*pts)
            ax.scatter(ai, gf, s=[10 + 200 * m / max(ms) for m in ms], marker=marker, alpha=0.6,
                       label=f"{kind} layers (size: time)")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP per byte moved)",
           ylabel="achieved GFLOP/s")
    ax.set_title(title or "roofline", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.figure.tight_layout()
    return ax


def plot_speed_quality_map(rows: list[dict], *, x: str, y: str, front: list[str] | None = None, by: str = "family",
                           label: str = "label", reference: str | None = None, highlight: str | None = None,
                           floor: float | None = None, floor_label: str = "real data (floor)", logx: bool = True,
                           logy: bool = False, ax=None, title: str | None = None, interval: str | None = None,
                           spread: str | None = None, flagged=(), flagged_label: str = "flagged",
                           highlight_label: str = "headline"):
    """One point per row at (``x``, ``y``), coloured by ``by`` and labelled; the points named in ``front`` (the
    Pareto front, by ``label``) joined by a line; ``reference`` and ``highlight`` (the headline) ringed; an
    optional dashed ``floor`` (real data against real data); ``interval``: the key of each row's ``y`` interval
    (anything with ``low`` and ``high``, e.g. an `Estimate`), drawn as a vertical bar; ``spread``: the key of each
    row's ``x`` spread (the interquartile range of a timing's rounds), drawn as a horizontal bar of that width
    centred on the point; ``flagged``: labels of points marked with a red cross (``flagged_label`` in the legend)."""
    ax = ax or plt.subplots(figsize=(9, 6))[1]
    usable = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    groups = list(dict.fromkeys(r[by] for r in usable))
    cmap = plt.cm.tab10 if len(groups) <= 10 else plt.cm.tab20       # a colour per group
    for i, key in enumerate(groups):
        pts = [r for r in usable if r[by] == key]
        ax.scatter([r[x] for r in pts], [r[y] for r in pts], s=28, color=cmap(i % cmap.N), label=str(key),
                   zorder=3)
        bars = [r for r in pts if interval and hasattr(r.get(interval), "low")]
        if bars:
            ax.errorbar([r[x] for r in bars], [r[y] for r in bars], fmt="none", color=cmap(i % cmap.N), lw=0.8,
                        alpha=0.5, zorder=2, yerr=[[max(0.0, r[y] - r[interval].low) for r in bars],
                                                   [max(0.0, r[interval].high - r[y]) for r in bars]])
        wide = [r for r in pts if spread and r.get(spread) is not None]
        if wide:
            ax.errorbar([r[x] for r in wide], [r[y] for r in wide], fmt="none", color=cmap(i % cmap.N), lw=0.8,
                        alpha=0.5, zorder=2, xerr=[[min(r[spread] / 2, 0.999 * r[x]) for r in wide],
                                                   [r[spread] / 2 for r in wide]])
    for r in usable:
        ax.annotate(str(r[label]), (r[x], r[y]), xytext=(3, 2), textcoords="offset points", fontsize=6, alpha=0.85)
    if front:
        pts = sorted((r[x], r[y]) for r in usable if r[label] in front)
        ax.plot(*zip(*pts), "-", color="black", lw=1, alpha=0.6, label="Pareto front", zorder=2)
    marked = [r for r in usable if r[label] in set(flagged)]
    if marked:
        ax.scatter([r[x] for r in marked], [r[y] for r in marked], marker="x", s=70, color="tab:red", lw=1.2, zorder=5,
                   label=flagged_label)
    for name, colour, text in ((reference, "black", "reference"), (highlight, "tab:red", highlight_label)):
        hit = [r for r in usable if r[label] == name]
        if hit:
            ax.scatter([hit[0][x]], [hit[0][y]], s=160, facecolors="none", edgecolors=colour, lw=1.5, zorder=4,
                       label=f"{text}: {name}")
    if floor is not None:
        ax.axhline(floor, ls="--", color="grey", label=floor_label)
    ax.set(xlabel=x, ylabel=y, xscale="log" if logx else "linear", yscale="log" if logy else "linear")
    ax.set_title(title or f"{y} against {x}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.figure.tight_layout()
    return ax
