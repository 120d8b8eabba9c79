"""Measurement, importing only the core (``fastdiff/README.md`` maps every module):

- `bench`: the one timing harness (warm-up, synchronisation, median and spread, FLOPs, peak memory);
- `dtype_choice`: the precision a model samples in, chosen by timing it here (fp32 unless bf16 pays by a margin);
- `roofline`: this machine's measured roofs and a per-layer roofline of a forward call;
- `peers`: diffusers' U-Net in fastdiff's calling convention, for side-by-side timing;
- `metrics`: PSNR, SSIM, LR-PSNR, LPIPS, FID/KID, FD (LeNet-MNIST);
- `lenet`: the bundled LeNet-MNIST digit feature net;
- `intervals`: intervals on quality numbers (bootstrap FD and means, KID, paired differences, Wilson), `Estimate`;
- `sr_eval`: SR outputs from the same noise and their scores, bicubic beside them;
- `sr_sanity`: the bars an SR model must pass before a study judges it (LR-PSNR, the sample mean's PSNR, colour);
- `foolrate`: the human fool-rate game: the trial plan, the game as a state machine, fool rates with Wilson intervals;
- `answers`: the game's answers file (append-only JSONL, one writer per session, every record checked);
- `game_images`: the game's image folders (real, generated per model, low-res) and the offline demo images;
- `foolrate_widget`: the game's JupyterLab widget.
"""
