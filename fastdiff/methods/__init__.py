"""Acceleration methods, one module each, importing only the core (`fastdiff.unet`, `fastdiff.nn`, ...).

A method is a wrapper over the U-Net's one level walk (`fastdiff.unet.UNetWrapper`), a block for its block
factory (`fastdiff.nn.register_block`) or a layer swapped in any model (`im2col`), so methods combine
(``fastdiff/README.md`` maps every module):

- `layer_skipping`: skip the k(t) deepest levels at noisy steps (study 2);
- `deep_cache`: reuse the deep levels' output across adjacent steps (DeepCache, training-free; report 07);
- `first_block_cache`: skip the walk past the first block while its output barely changes (FirstBlockCache /
  TeaCache, training-free, adaptive);
- `encoder_propagation`: run the decoder alone on the last key step's encoder features (Faster Diffusion,
  training-free);
- `block_caching`: recompute each U-Net block only where its calibrated change accumulates past a threshold, its
  last output reused in between (Block Caching, "Cache Me if You Can"), and `AdjustedBlockCaching`, its learned
  per-channel scale-shift of the reused outputs (`block_caching_adjust`: the student-teacher loss that trains it);
- `vgg_features`: frozen VGG-11 features of the low-res image added at every encoder block (study 1);
- `ode_unet`: the continuous U-Net's dynamic (second-order neural-ODE) block, for the block factory (study 3);
- `progressive_distillation`: a student that takes one DDIM step for two of its teacher's (Salimans & Ho 2022),
  the v-prediction wrapper it samples with;
- `consistency_distillation`: a consistency model (Song et al. 2023) distilled from the PF-ODE of a teacher, sampled
  in 1 or 2 steps, the same v-prediction wrapper;
- `im2col`: convolution as unfold + matmul, a drop-in for ``nn.Conv2d`` (study 5);
- `int8_simulation`: W8A8 int8 of every convolution and linear layer, simulated for its quality cost (report 07);
- `bottleneck`: the 1x1 -> 3x3 -> 1x1 bottleneck ResNet block, for the block factory (study 5);
- `patch_parallel`: rolling shifts, patches and position masks of the SwinDiffuser (study 4);
- `swin_diffuser`: the SwinDiffuser over a patch denoiser, its condition extractors and shift plans (study 4).

Importing this package registers every method's architecture (`fastdiff.registry`) and block.
"""
from . import bottleneck, deep_cache, encoder_propagation, first_block_cache, im2col  # noqa: F401  (registration)
from . import layer_skipping, ode_unet, swin_diffuser, vgg_features  # noqa: F401  (registration)
from . import progressive_distillation  # noqa: F401  (registration: VPrediction)
from . import block_caching  # noqa: F401  (registration: AdjustedBlockCaching)
from . import consistency_distillation  # noqa: F401  (a loss and a sampler: nothing to register)
