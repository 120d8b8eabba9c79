"""The 16x16 digits U-Net and its training recipe, shared by study 2 (`adaptive_layer_skipping`: its five zoo
models) and study 5 (`performance`: the architecture changes trained at that baseline's budget). A leaf: it imports
no study module."""
from __future__ import annotations

from ..train import TrainConfig

# the U-Net preset "quick" at 16x16 with these overrides: 4 levels (16, 8, 4, 2), 0.4M parameters
QUICK_MODEL = dict(base_channels=16, channel_mult=(1, 2, 2, 2), attention_resolutions=(4,), norm_groups=8)
# The five zoo models' recipe (the quick profile's training): the same budget for every variant, 8k steps of
# batch 32 (the paper trained to convergence; 800 steps, the earlier budget, left every model far from it).
QUICK_TRAIN = TrainConfig(steps=8000, batch_size=32, lr=2e-3, warmup_steps=200, cosine_decay=True, min_lr_ratio=0.05,
                          ema_decay=0.999, grad_clip=1.0, amp="fp32", checkpoint_every=500, log_every=50)
