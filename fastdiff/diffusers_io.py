"""fastdiff's U-Net <-> HuggingFace diffusers' ``UNet2DModel`` of the DDPM layout, weights both ways, and DDPM
pipeline folders (``DDPMPipeline.from_pretrained(folder)`` loads them offline).

The two are the same DDPM U-Net (Ho et al. 2020, appendix B) under other names: encoder level l is
``down_blocks.l``, decoder level l is ``up_blocks.(N-1-l)``, ``middle`` is ``mid_block``; a `fastdiff.nn.ResAttnBlock`
is a ``ResnetBlock2D`` and, at attention levels, an ``Attention`` (``qkv``, one 1x1 conv, is ``to_q/to_k/to_v``).
`block_pairs` and the three rename tables below are the whole state-dict mapping.

A diffusers config maps when it is the DDPM layout: positional time embedding with w_i = 10000^(-i / (half - 1))
(``freq_shift=1``; ``flip_sin_to_cos`` either way: the first linear layer's columns are swapped), (Attn)DownBlock2D
and their mirror (Attn)UpBlock2D, conv resampling, one GroupNorm group count with eps 1e-6, SiLU, one head count,
no class embedding. ``downsample_padding=1`` is fastdiff's downsampling (padding 1 on every side); ``0``
(google/ddpm-cifar10-32, after the TensorFlow original: right and bottom only) loads with `AsymmetricDownsample`
in its place. A fastdiff config maps when its blocks are ``resnet``, it has no conditioning channels and
``channel_mult[0] == 1`` (diffusers' ``conv_in`` and time embedding are as wide as level 0). Anything else is a
`ValueError` naming the first block that does not map.

The scheduler written is a ``DDPMScheduler`` with fastdiff's betas (linear by its ends, others as
``trained_betas``), epsilon prediction, ``clip_sample`` (fastdiff's samplers clip x_0), ``fixed_small`` variance
(as `fastdiff.sampling.sample_ddpm`) and ``leading`` spacing with no offset: diffusers' DDIM at N steps then visits
the steps of ``space_timesteps(T, "ddimN")`` (0, T/N, ...), i.e. `sample_ddim` on ``respace(schedule, those)``, when
N divides T (at N = 3 diffusers visits 0, 333, 666 and fastdiff 0, 334, 668).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import Schedule, cosine_alpha_bar, linear_betas, make_schedule
from .files import file_lock
from .nn import Downsample, count_parameters
from .unet import UNet, UNetConfig, UNetWrapper

NORM_EPS = 1e-6        # fastdiff's GroupNorm eps (`fastdiff.nn.group_norm`)

# fastdiff name -> diffusers name inside one block: a ResBlock is a ResnetBlock2D, an AttentionBlock an Attention
# (its qkv, a 1x1 conv to q, k, v in that order, is split into three linear layers; proj is a linear layer)
RESNET_RENAMES = {"norm1": "norm1", "conv1": "conv1", "emb_proj": "time_emb_proj", "norm2": "norm2",
                  "conv2": "conv2", "shortcut": "conv_shortcut"}
ATTENTION_RENAMES = {"norm": "group_norm", "qkv": ("to_q", "to_k", "to_v"), "proj": "to_out.0"}
# The layers outside the levels:
TOP_RENAMES = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
               "stem": "conv_in", "head.0": "conv_norm_out", "head.2": "conv_out"}


def _diffusers():
    try:
        import diffusers
    except ImportError as e:
        raise ImportError("exchanging weights with diffusers needs HuggingFace diffusers: pip install diffusers") from e
    return diffusers


class AsymmetricDownsample(Downsample):
    """diffusers' ``Downsample2D`` at ``downsample_padding=0`` (the DDPM original): pad right and bottom by one, then
    a 3x3 stride-2 conv without padding. Its buffer ``diffusers_padding`` is in the state dict, so a fastdiff
    checkpoint of such a model cannot load silently into a U-Net that pads symmetrically (a strict load names it)."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.conv.padding = (0, 0)
        self.register_buffer("diffusers_padding", torch.tensor([0, 1, 0, 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


# ---------------------------------------------------------------------------------------------- the block mapping

def block_pairs(config: UNetConfig) -> list[tuple[str, str, str]]:
    """(fastdiff prefix, diffusers prefix, kind) for every block and layer: kind is ``resnet``, ``attention``,
    ``resample`` (a Downsample's or Upsample's conv) or ``layer`` (a linear, conv or norm of `TOP_RENAMES`)."""
    c, n = config, config.num_levels

    def blocks(f: str, d: str, count: int, level: int) -> list:     # the ResNet blocks (and attention) of a level
        attn = (c.image_size >> level) in c.attention_resolutions
        return [pair for j in range(count) for pair in [(f"{f}.blocks.{j}.res", f"{d}.resnets.{j}", "resnet")]
                + ([(f"{f}.blocks.{j}.attn", f"{d}.attentions.{j}", "attention")] if attn else [])]
    pairs = [(f, d, "layer") for f, d in TOP_RENAMES.items()]
    for level in range(n):
        pairs += blocks(f"encoder.{level}", f"down_blocks.{level}", c.num_res_blocks, level)
        if level < n - 1:
            pairs.append((f"encoder.{level}.down.conv", f"down_blocks.{level}.downsamplers.0.conv", "resample"))
    pairs.append(("middle.block1.res", "mid_block.resnets.0", "resnet"))
    if c.middle_attention:
        pairs.append(("middle.block1.attn", "mid_block.attentions.0", "attention"))
    pairs.append(("middle.block2.res", "mid_block.resnets.1", "resnet"))
    for level in reversed(range(n)):
        up = n - 1 - level
        pairs += blocks(f"decoder.{level}", f"up_blocks.{up}", c.num_res_blocks + 1, level)
        if level > 0:
            pairs.append((f"decoder.{level}.up.conv", f"up_blocks.{up}.upsamplers.0.conv", "resample"))
    return pairs


def _tensor_pairs(pairs, fastdiff_keys) -> list[tuple[str, str | tuple[str, ...]]]:
    """(fastdiff key, diffusers key or keys) for every tensor, from the block pairs and the renames."""
    out = []
    for f, d, kind in pairs:
        for rest in sorted(k[len(f) + 1:] for k in fastdiff_keys if k.startswith(f + ".")):
            layer, _, param = rest.rpartition(".")
            if kind in ("layer", "resample"):
                target = f"{d}.{rest}"
            else:
                renames = RESNET_RENAMES if kind == "resnet" else ATTENTION_RENAMES
                if layer not in renames:
                    raise ValueError(f"block {f} (diffusers' {d}) has a tensor {rest!r} that no diffusers block holds")
                new = renames[layer]
                target = tuple(f"{d}.{x}.{param}" for x in new) if isinstance(new, tuple) else f"{d}.{new}.{param}"
            out.append((f"{f}.{rest}", target))
    return out


def _as_linear(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], w.shape[1]) if w.ndim == 4 else w     # a 1x1 conv's weight as a linear one


def state_dict_to_diffusers(state: dict, config: UNetConfig) -> dict:
    """A fastdiff U-Net state dict under diffusers' ``UNet2DModel`` names (`block_pairs`, the renames)."""
    state = {k: v for k, v in state.items() if not k.endswith(".diffusers_padding")}
    pairs = _tensor_pairs(block_pairs(config), state)
    extra = sorted(set(state) - {f for f, _ in pairs})
    if extra:
        raise ValueError(f"fastdiff tensor {extra[0]} has no place in diffusers' UNet2DModel")
    out = {}
    for f, d in pairs:
        w = state[f]
        if isinstance(d, tuple):                   # qkv -> to_q, to_k, to_v
            for name, part in zip(d, w.chunk(3, dim=0)):
                out[name] = _as_linear(part).clone()
        else:
            out[d] = (_as_linear(w) if d.endswith("to_out.0.weight") else w).clone()   # proj: 1x1 conv -> linear
    return out


def state_dict_from_diffusers(state: dict, config: UNetConfig, *, flip_sin_to_cos: bool = False) -> dict:
    """diffusers' ``UNet2DModel`` state dict under fastdiff's names (the inverse of `state_dict_to_diffusers`).
    ``flip_sin_to_cos``: diffusers' embedding is [cos, sin], fastdiff's [sin, cos]: the first time-embedding layer's
    two halves of columns are swapped."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in UNet(config).state_dict().items()}
    pairs = _tensor_pairs(block_pairs(config), shapes)
    out = {}
    for f, d in pairs:
        names = d if isinstance(d, tuple) else (d,)
        missing = [x for x in names if x not in state]
        if missing:
            raise ValueError(f"diffusers tensor {missing[0]} (fastdiff's {f}) is not in the state dict")
        w = torch.cat([state[x] for x in names]) if len(names) > 1 else state[d]
        out[f] = w.reshape(shapes[f]).clone()      # a linear layer's weight as a 1x1 conv's where fastdiff has one
    if flip_sin_to_cos:
        w, half = out["time_embed.0.weight"], config.base_channels // 2
        out["time_embed.0.weight"] = torch.cat([w[:, half:2 * half], w[:, :half], w[:, 2 * half:]], dim=1)
    extra = sorted(set(state) - {x for _, d in pairs for x in (d if isinstance(d, tuple) else (d,))})
    if extra:
        raise ValueError(f"diffusers tensor {extra[0]} has no place in fastdiff's U-Net")
    return out


# ------------------------------------------------------------------------------------------------- the configs

def diffusers_config(config: UNetConfig) -> dict:
    """The ``UNet2DModel`` config of a fastdiff U-Net config, or a `ValueError` naming the first block that has no
    diffusers counterpart."""
    c, n = config, config.num_levels
    if c.block != "resnet":
        raise ValueError(f"block encoder.0.blocks.0 is a {c.block!r} block; diffusers' UNet2DModel holds ResNet "
                         f"blocks ('resnet') only")
    if c.cond_channels:
        raise ValueError(f"block stem takes {c.cond_channels} conditioning channels (SR3's low-res image); a DDPM "
                         f"pipeline has no conditioning input")
    if c.channel_mult[0] != 1:
        raise ValueError(f"block encoder.0.blocks.0: fastdiff's stem has base_channels={c.base_channels} channels "
                         f"and level 0 {c.level_channels(0)}; diffusers' conv_in and time embedding are as wide as "
                         f"the first level (needs channel_mult[0] == 1, got {c.channel_mult})")
    attn = [(c.image_size >> level) in c.attention_resolutions for level in range(n)]
    head_dim = None
    if c.num_heads > 1:    # diffusers has one head width for every attention: the head counts must come out equal
        places = [(f"encoder.{lv}.blocks.0.attn", c.level_channels(lv)) for lv in range(n) if attn[lv]]
        places += [("middle.block1.attn", c.level_channels(n - 1))] if c.middle_attention else []
        if places:
            head_dim = places[0][1] // c.num_heads
            for name, ch in places:
                if ch != places[0][1]:
                    raise ValueError(f"block {name}: {c.num_heads} heads of {ch} channels need head width "
                                     f"{ch // c.num_heads}, but {places[0][0]} needs {head_dim}; diffusers' "
                                     f"UNet2DModel has one attention_head_dim")
    return dict(sample_size=c.image_size, in_channels=c.in_channels, out_channels=c.out_channels,
                center_input_sample=False, time_embedding_type="positional", flip_sin_to_cos=False, freq_shift=1,
                down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
                mid_block_type="UNetMidBlock2D",
                up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
                block_out_channels=tuple(c.level_channels(lv) for lv in range(n)), layers_per_block=c.num_res_blocks,
                mid_block_scale_factor=1, downsample_padding=1, downsample_type="conv", upsample_type="conv",
                dropout=c.dropout, act_fn="silu", attention_head_dim=head_dim, norm_num_groups=c.norm_groups,
                norm_eps=NORM_EPS, resnet_time_scale_shift="default", add_attention=c.middle_attention)


def unet_config_from_diffusers(config) -> tuple[UNetConfig, dict]:
    """(fastdiff `UNetConfig`, details: ``downsample_padding``, ``flip_sin_to_cos``) of a ``UNet2DModel`` config,
    or a `ValueError` naming the first block that does not map."""
    get = dict(config).get
    down, up = list(get("down_block_types", ())), list(get("up_block_types", ()))
    widths, n = list(get("block_out_channels", ())), len(get("block_out_channels", ()))

    def need(ok: bool, block: str, what: str):
        if not ok:
            raise ValueError(f"block {block} does not map to fastdiff's U-Net: {what}")

    need(get("time_embedding_type", "positional") == "positional" and get("freq_shift", 0) == 1, "time_embedding",
         f"fastdiff's time embedding is positional with frequencies 10000^(-i/(half-1)) (freq_shift=1); this one is "
         f"{get('time_embedding_type')!r} with freq_shift={get('freq_shift')}")
    need(get("time_embedding_dim") in (None, 4 * widths[0] if widths else None), "time_embedding",
         f"its width {get('time_embedding_dim')} is not 4 x block_out_channels[0]")
    need(get("class_embed_type") is None and get("num_class_embeds") is None, "class_embedding",
         "fastdiff's U-Net takes no class labels")
    need(not get("center_input_sample", False), "conv_in", "center_input_sample=True rescales the input")
    need(get("act_fn", "silu") == "silu", "conv_in", f"activation {get('act_fn')!r} (fastdiff uses SiLU)")
    need(get("norm_eps", 1e-5) == NORM_EPS, "conv_norm_out", f"GroupNorm eps {get('norm_eps')} (fastdiff: 1e-6)")
    groups = get("norm_num_groups", 32)
    need(get("attn_norm_num_groups") in (None, groups), "mid_block.attentions.0",
         f"attention GroupNorm groups {get('attn_norm_num_groups')} differ from the ResNet blocks' {groups}")
    need(get("resnet_time_scale_shift", "default") == "default", "down_blocks.0.resnets.0",
         f"resnet_time_scale_shift={get('resnet_time_scale_shift')!r} (fastdiff adds the time embedding)")
    need(n >= 1 and len(down) == n and len(up) == n, "down_blocks",
         f"{n} block_out_channels for {len(down)} down and {len(up)} up blocks")
    base = widths[0]
    sample = get("sample_size")
    if isinstance(sample, (list, tuple)):
        need(len(set(sample)) == 1, "conv_in", f"non-square sample_size {sample}")
        sample = sample[0]
    need(isinstance(sample, int), "conv_in", "sample_size is not set (fastdiff places attention by resolution)")
    attn = []
    for i, kind in enumerate(down):
        need(kind in ("DownBlock2D", "AttnDownBlock2D"), f"down_blocks.{i}", f"type {kind!r}")
        need(widths[i] % base == 0, f"down_blocks.{i}", f"{widths[i]} channels, not a multiple of {base}")
        attn.append(kind == "AttnDownBlock2D")
    for i, kind in enumerate(up):
        mirror = "AttnUpBlock2D" if attn[n - 1 - i] else "UpBlock2D"
        need(kind == mirror, f"up_blocks.{i}", f"type {kind!r} where fastdiff's decoder mirrors down_blocks."
             f"{n - 1 - i} with {mirror!r}")
    need(get("downsample_type", "conv") == "conv" and get("upsample_type", "conv") == "conv",
         "down_blocks.0.downsamplers.0", "resampling is not by convolution")
    need(get("downsample_padding", 1) in (0, 1), "down_blocks.0.downsamplers.0",
         f"downsample_padding={get('downsample_padding')}")
    need(get("mid_block_type", "UNetMidBlock2D") == "UNetMidBlock2D", "mid_block", f"type {get('mid_block_type')!r}")
    need(get("mid_block_scale_factor", 1) == 1, "mid_block", f"scale factor {get('mid_block_scale_factor')}")
    middle = get("add_attention", True)
    head_dim, heads = get("attention_head_dim", 8), None
    places = [(f"down_blocks.{i}.attentions.0", widths[i]) for i in range(n) if attn[i]]
    places += [("mid_block.attentions.0", widths[-1])] if middle else []
    for name, ch in places:      # every attention: heads = channels / attention_head_dim (None: one head)
        h = 1 if head_dim is None else ch // head_dim
        heads = h if heads is None else heads
        need(h == heads, name, f"{h} heads where {places[0][0]} has {heads} (fastdiff: one num_heads)")
    fd = UNetConfig(image_size=sample, in_channels=get("in_channels", 3), out_channels=get("out_channels", 3),
                    base_channels=base, channel_mult=tuple(w // base for w in widths),
                    num_res_blocks=get("layers_per_block", 2),
                    attention_resolutions=tuple(sample >> i for i in range(n) if attn[i]), middle_attention=middle,
                    dropout=float(get("dropout", 0.0)), num_heads=heads or 1, norm_groups=groups)
    return fd, {"downsample_padding": get("downsample_padding", 1), "flip_sin_to_cos": get("flip_sin_to_cos", True)}


# ------------------------------------------------------------------------------------------------- the models

def plain_unet(model: nn.Module) -> UNet:
    """The fastdiff `UNet` a model is: itself, or the base of a wrapper whose plain call gives the base's output
    bit for bit (layer skipping at k = 0); a wrapper that changes the output, or an SR U-Net, is refused."""
    if isinstance(model, UNetWrapper):
        base = model.base
        x, t, cond = base.example_inputs(1, generator=torch.Generator().manual_seed(0))
        if cond:
            raise ValueError(f"{type(model).__name__} wraps a conditional U-Net; a DDPM pipeline has no conditioning")
        was, _ = model.training, model.eval()
        with torch.no_grad():
            try:
                same = torch.equal(model(x, t), base(x, t))
            except TypeError:          # the wrapper needs conditioning of its own
                same = False
        model.train(was)
        if not same:
            raise ValueError(f"{type(model).__name__} changes what its U-Net computes; only the plain U-Net (or a "
                             f"wrapper that leaves it as it is) goes into diffusers' UNet2DModel")
        return base
    if type(model) is not UNet:
        raise ValueError(f"a {type(model).__name__} is not a plain fastdiff UNet (an SR U-Net needs its low-res "
                         f"input, which a DDPM pipeline does not have)")
    return model


def unet_to_diffusers(model: nn.Module):
    """diffusers' ``UNet2DModel`` computing what the fastdiff U-Net ``model`` computes (fp32 weights, eval mode)."""
    diffusers = _diffusers()
    unet = plain_unet(model)
    cfg = diffusers_config(unet.config)
    padded = {isinstance(level.down, AsymmetricDownsample) for level in unet.encoder[:-1]}
    if padded == {True}:
        cfg["downsample_padding"] = 0
    elif len(padded) > 1:
        raise ValueError("block encoder.0.down: some downsamplers pad asymmetrically and some do not")
    out = diffusers.UNet2DModel(**cfg)
    state = {k: v.detach().float().cpu() for k, v in unet.state_dict().items()}
    out.load_state_dict(state_dict_to_diffusers(state, unet.config), strict=True)
    return out.eval()


def unet_from_diffusers(model) -> UNet:
    """fastdiff's `UNet` computing what diffusers' ``UNet2DModel`` ``model`` computes (its dtype, eval mode)."""
    config, details = unet_config_from_diffusers(model.config)
    unet = UNet(config)
    for level in unet.encoder[:-1] if details["downsample_padding"] == 0 else []:
        level.down = AsymmetricDownsample(level.down.conv.in_channels)
    state = state_dict_from_diffusers(dict(model.state_dict()), config, flip_sin_to_cos=details["flip_sin_to_cos"])
    missing, unexpected = unet.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("diffusers_padding")]:
        raise ValueError(f"the mapped state dict does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return unet.to(next(model.parameters()).dtype).eval()


# -------------------------------------------------------------------------------------------- the schedulers

def scheduler_config(schedule: Schedule) -> dict:
    """The ``DDPMScheduler`` config of fastdiff's training schedule (see the module docstring for each field)."""
    T = schedule.num_train_timesteps
    if len(schedule) != T or not torch.equal(schedule.timesteps.cpu(), torch.arange(T)):
        raise ValueError(f"export the training schedule ({T} steps), not a respaced one of {len(schedule)}: the "
                         f"pipeline's scheduler picks its sampling steps itself")
    betas = schedule.betas.double().cpu()
    start, end = betas[0].item(), betas[-1].item()
    linear = torch.allclose(betas, linear_betas(T, start, end), rtol=0, atol=1e-12)
    return dict(num_train_timesteps=T, beta_schedule="linear", beta_start=start, beta_end=end,
                trained_betas=None if linear else betas.tolist(), variance_type="fixed_small", clip_sample=True,
                clip_sample_range=1.0, prediction_type="epsilon", thresholding=False, timestep_spacing="leading",
                steps_offset=0)


def schedule_from_scheduler(config) -> Schedule:
    """fastdiff's `Schedule` of a diffusers scheduler config (betas in float64, as fastdiff computes them)."""
    c = dict(config)
    T = c.get("num_train_timesteps", 1000)
    if c.get("prediction_type", "epsilon") != "epsilon":
        raise ValueError(f"the scheduler predicts {c['prediction_type']!r}; fastdiff's samplers take the noise "
                         f"(prediction_type='epsilon')")
    if c.get("rescale_betas_zero_snr"):
        raise ValueError("the scheduler rescales its betas to zero terminal SNR, which fastdiff's schedules do not")
    kind = c.get("beta_schedule", "linear")
    if c.get("trained_betas") is not None:
        alpha_bar = torch.cumprod(1 - torch.tensor(c["trained_betas"], dtype=torch.float64), 0)
    elif kind == "linear":
        alpha_bar = torch.cumprod(1 - linear_betas(T, c.get("beta_start", 1e-4), c.get("beta_end", 0.02)), 0)
    elif kind == "scaled_linear":
        root_betas = linear_betas(T, c.get("beta_start", 1e-4) ** 0.5, c.get("beta_end", 0.02) ** 0.5)
        alpha_bar = torch.cumprod(1 - root_betas**2, 0)
    elif kind == "squaredcos_cap_v2":
        alpha_bar = cosine_alpha_bar(T)
    else:
        raise ValueError(f"beta_schedule {kind!r} has no fastdiff counterpart (linear, scaled_linear, "
                         f"squaredcos_cap_v2 or trained_betas)")
    return Schedule(torch.arange(T), alpha_bar, T)


# ---------------------------------------------------------------------------------------------- the folders

def export_pipeline(model: nn.Module | str, schedule: Schedule | str | None, folder: str | Path) -> Path:
    """Write ``model`` (a fastdiff U-Net, a wrapper that leaves it unchanged, or a zoo entry's name) with
    ``schedule`` (a `Schedule`, a `make_schedule` name, or None: the zoo recipe's) as a diffusers ``DDPMPipeline``
    folder: model_index.json, unet/ (safetensors), scheduler/, fastdiff_export.json (its source). Written into a
    temporary folder and renamed into place; an earlier pipeline folder is replaced, another non-empty one refused."""
    diffusers = _diffusers()
    source = {"fastdiff_config": None}
    if isinstance(model, str):
        from . import zoo
        source["zoo_entry"] = model
        model, entry = zoo.load(model, verbose=False)
        schedule = entry.recipe.get("schedule", "linear") if schedule is None else schedule
        source["provenance"] = entry.provenance
    if schedule is None:
        raise ValueError("export_pipeline needs the schedule the model was trained with (a Schedule or a name)")
    schedule = make_schedule(schedule) if isinstance(schedule, str) else schedule
    unet = plain_unet(model)
    source["fastdiff_config"] = {"parameters": count_parameters(unet), "config": dict(vars(unet.config))}
    pipeline = diffusers.DDPMPipeline(unet=unet_to_diffusers(unet),
                                      scheduler=diffusers.DDPMScheduler(**scheduler_config(schedule)))
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and
                                                    not (folder / "model_index.json").is_file())):
        raise FileExistsError(f"{folder} exists and is not a diffusers pipeline folder; choose another folder "
                              f"(export replaces only an earlier pipeline folder)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder, what=f"the pipeline folder {folder}"):
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            pipeline.save_pretrained(tmp, safe_serialization=True)
            (tmp / "fastdiff_export.json").write_text(json.dumps(source, indent=1, default=str))
            if folder.exists():
                os.replace(folder, old)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
    return folder


def _looks_local(text: str) -> bool:
    """A path rather than a hub id (``owner/name``)."""
    return os.path.isabs(text) or text.startswith(".") or text.count("/") > 1 or os.path.exists(text)


def load_pipeline(id_or_folder: str | Path, *, local_files_only: bool = False) -> tuple[UNet, Schedule]:
    """(fastdiff U-Net in eval mode, its training `Schedule`) of a diffusers pipeline with a ``UNet2DModel`` of the
    DDPM layout: a local folder, or a hub id (``google/ddpm-cifar10-32``) fetched by diffusers' ``from_pretrained``
    (network or the hub cache needed; ``local_files_only``: the cache only). A missing, foreign or damaged folder
    is a clear error."""
    diffusers = _diffusers()
    where = str(id_or_folder)
    path = Path(where)
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise ValueError(f"{path} is not a diffusers pipeline folder: it has no model_index.json")
        try:
            components = json.loads(index.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{index} is not valid JSON ({e}); re-export the pipeline") from e
        unet_kind = components.get("unet") if isinstance(components, dict) else None
        if not (isinstance(unet_kind, list) and unet_kind[-1:] == ["UNet2DModel"]):
            raise ValueError(f"{path} is a {components.get('_class_name') if isinstance(components, dict) else '?'} "
                             f"folder whose unet is {unet_kind}, not a UNet2DModel (a DDPM pipeline)")
    elif _looks_local(where):
        raise FileNotFoundError(f"no pipeline folder {where}")
    try:
        net = diffusers.UNet2DModel.from_pretrained(where, subfolder="unet", local_files_only=local_files_only)
        scheduler = diffusers.DDPMScheduler.load_config(where, subfolder="scheduler",
                                                        local_files_only=local_files_only)
    except Exception as e:   # OSError, safetensors and hub errors alike: the folder or the download is unusable
        message = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if path.is_dir():
            raise ValueError(f"pipeline folder {path} is damaged: its U-Net or scheduler cannot be read "
                             f"({type(e).__name__}: {message}); re-export it") from e
        raise OSError(f"no folder {where!r} here, and it could not be fetched as a hub id ({type(e).__name__}: "
                      f"{message}); with no network, only a local pipeline folder or the hub cache works") from e
    return unet_from_diffusers(net), schedule_from_scheduler(scheduler)
