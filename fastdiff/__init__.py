"""fastdiff: reproductions of studies on making diffusion models faster.

The package is laid out by idea (see ``fastdiff/README.md``):

- the core, at the top level: `diffusion` (schedules, forward process, loss), `sampling` (DDPM, DDIM,
  DPM-Solver++(2M), Heun on Karras sigmas, UniPC (bh2) and DEIS, whose multistep updates live in `solvers`), `nn` and `unet` (the U-Net, its level walk and block factory),
  `registry` (model classes by name), `train` (resumable training), `checkpoint`, `zoo`, `data`, `weights`,
  `results` (the one results schema), `portable_json`, `verdicts`, `files` (atomic writes, file locks),
  `devices`, `checks`, `profiles`, `progress`;
- `fastdiff.methods`: one module per acceleration method, wrappers over the U-Net's level walk;
- `fastdiff.measure`: timing, metrics, the LeNet-MNIST feature net, SR evaluation, the fool-rate game;
- `fastdiff.studies`: one module per notebook: profiles, variants, the papers' numbers, drivers.
"""
__version__ = "0.2.0"

from . import methods as _methods  # noqa: E402,F401  (registers the methods' architectures for checkpoints)
