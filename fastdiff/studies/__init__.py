"""One module per notebook: the profiles, variants, the papers' published numbers and claims, the zoo recipes and the
drivers that the notebooks call. Only notebooks, ``benchmarks/``, the command line and other study modules import
these (``fastdiff/README.md`` maps every module).

- `common`: the notebook setup helper (device, dtype, seed, output folder, provenance banner) and every study's
  zoo recipes (`recipes`, `train_recipe`: ``fastdiff train``);
- `diffusion_basics` (00): DDPM against DDIM, the sampling sweep, FD against steps;
- `vgg_conditioned_sr` (01): the VGG-SR paper's U-Net variants, profiles, training, zoo recipes;
- `vgg_sr_evaluation` (01): forward timing, the VGG share of sampling, the SR quality table, claims;
- `digit_vgg` (01): the digit-trained stand-in for ImageNet VGG-11;
- `adaptive_layer_skipping` (02): the paper's Tables 1-3, the five variants, their training, sampling and timing;
- `adaptive_layer_skipping_fd` (02): the FD sweep's settings (Tables 1 and 3, DDIM at equal time), measured once
  (``benchmarks/digits_fd.py --study 02``), and the notebook's way in to them;
- `adaptive_layer_skipping_claims` (02): the claims, their verdicts on intervals, the tables, the results file;
- `continuous_unet` (03): the U-Net and cU-Net (with ablations) at two sizes, FD against steps, solvers;
- `continuous_unet_fd` (03): the FD sweep's settings, measured once (``benchmarks/digits_fd.py --study 03``);
- `patch_parallel_sr` (04): the thesis's tables, the nine variants, SR with a shift plan, 1 against 2 processes;
- `patch_parallel_sr_summary` (04): the notebook's closing cells (the process table, the results file, what we found);
- `performance` (05): the inference ladder (precisions, channels_last, attention, torch.compile, im2col) with each
  rung's quality cost, the diffusers comparison, bottleneck blocks and fewer levels;
- `performance_claims` (05): the proposal's expectations, their verdicts and the results file;
- `fool_rate_game` (06): the paper's fool rates and the game's profiles;
- `sr_map` (07): the SR panels of studies 1 and 4 (time per image against PSNR / SSIM / LR-PSNR);
- `speed_quality_map` (07): the digits speed/quality map: its points' measurement, the Pareto front and the headline;
  `speed_quality_map_points`: the points (a model, a sampler and steps, the methods that wrap it: layer skipping,
  DeepCache, a ladder rung, a step cache), the zoo models they sample;
- `report` (07, ``fastdiff report``): every results file's verdicts in one table, the maps read back and drawn;
- `report_claims` (07): the claims of the methods the report adds (fast solvers, step caches, int8, distillation).
"""
