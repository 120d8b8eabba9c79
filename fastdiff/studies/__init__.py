"""One module per notebook: the profiles, variants, the papers' published numbers and the drivers that the
notebooks call. Only notebooks, ``benchmarks/``, the command line and other study modules import these.

- `common`: the notebook setup helper (device, dtype, seed, output folder, provenance banner);
- `diffusion_basics` (00), `vgg_conditioned_sr` (01), `adaptive_layer_skipping` (02), `fool_rate_game` (06).
"""
