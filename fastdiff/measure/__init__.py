"""Measurement, importing only the core: `bench` (the one timing harness), `metrics` (PSNR, SSIM, LPIPS,
FID/KID, FD (LeNet-MNIST)), `lenet` (the bundled digit feature net), `sr_eval` (SR outputs and their scores),
`foolrate` and `foolrate_widget` (the human fool-rate game)."""
