"""fastdiff's U-Net <-> diffusers' UNet2DModel (DDPM layout), offline on random weights: the converted model computes
the same noise prediction both ways (fp32, within 1e-5), the key mapping round-trips, the DDPM CIFAR-10 preset maps
onto google/ddpm-cifar10-32's layout, a zoo model exported as a DDPMPipeline folder loads in diffusers and samples
with its DDIM scheduler what fastdiff's DDIM samples from the same x_T, and what does not map is named."""
import json

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from fastdiff import zoo  # noqa: E402
from fastdiff.cli import main  # noqa: E402
from fastdiff.diffusers_io import (AsymmetricDownsample, diffusers_config, export_pipeline, load_pipeline,  # noqa: E402
                                   state_dict_from_diffusers, state_dict_to_diffusers, unet_config_from_diffusers,
                                   unet_from_diffusers, unet_to_diffusers)
from fastdiff.diffusion import make_schedule, respace, space_timesteps  # noqa: E402
from fastdiff.nn import count_parameters  # noqa: E402
from fastdiff.sampling import sample_ddim  # noqa: E402
from fastdiff.unet import UNet, build_unet, unet_config  # noqa: E402

TOL = 1e-5     # fp32, converted model vs original

CONFIGS = {    # tiny fastdiff configs that exercise every part of the mapping
    "tiny": {},
    "two-heads": dict(channel_mult=(1, 1), num_heads=2, norm_groups=2),
    "deeper": dict(channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(8, 4), image_size=16, in_channels=3,
                   out_channels=2),
    "no-attention": dict(attention_resolutions=(), middle_attention=False, base_channels=12, norm_groups=3),
}


def randomized(model, seed=0):
    """Every weight random (GroupNorm scales too), so that a swapped or transposed tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def inputs(channels, size, batch=3):
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, channels, size, size, generator=g), torch.tensor([0, 417, 999][:batch])


@pytest.mark.parametrize("name", CONFIGS)
def test_fastdiff_to_diffusers_gives_the_same_output(name):
    unet = randomized(build_unet("tiny", **CONFIGS[name]))
    c = unet.config
    x, t = inputs(c.in_channels, c.image_size)
    twin = unet_to_diffusers(unet)
    with torch.no_grad():
        diff = (twin(x, t).sample - unet(x, t)).abs().max().item()
    assert diff < TOL, diff
    assert count_parameters(twin) == count_parameters(unet)


DIFFUSERS = {  # UNet2DModel configs of the DDPM layout, as diffusers users write them
    "ddpm-cifar10-like": dict(flip_sin_to_cos=False, downsample_padding=0, attention_head_dim=None),
    "diffusers-defaults": dict(flip_sin_to_cos=True, downsample_padding=1, attention_head_dim=None),
    "head-dim-8": dict(flip_sin_to_cos=False, downsample_padding=1, attention_head_dim=8,
                       block_out_channels=(16, 16), norm_num_groups=4),
}


def ddpm_layout(**kw):
    return {**dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                   down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                   freq_shift=1, norm_num_groups=4, norm_eps=1e-6), **kw}


@pytest.mark.parametrize("name", DIFFUSERS)
def test_diffusers_to_fastdiff_gives_the_same_output(name):
    torch.manual_seed(0)
    net = randomized(diffusers.UNet2DModel(**ddpm_layout(**DIFFUSERS[name])))
    unet = unet_from_diffusers(net)
    assert type(unet) is UNet
    x, t = inputs(1, 8)
    with torch.no_grad():
        diff = (unet(x, t) - net(x, t).sample).abs().max().item()
    assert diff < TOL, diff
    padded = DIFFUSERS[name]["downsample_padding"] == 0
    assert isinstance(unet.encoder[0].down, AsymmetricDownsample) == padded
    back = unet_to_diffusers(unet)             # and back again: the same config and weights
    assert back.config.downsample_padding == net.config.downsample_padding
    with torch.no_grad():
        assert (back(x, t).sample - net(x, t).sample).abs().max().item() < TOL


def test_asymmetric_padding_cannot_load_silently_into_a_plain_unet():
    unet = unet_from_diffusers(diffusers.UNet2DModel(**ddpm_layout(downsample_padding=0)))
    with pytest.raises(RuntimeError, match="diffusers_padding"):
        UNet(unet.config).load_state_dict(unet.state_dict())


@pytest.mark.parametrize("name", CONFIGS)
def test_the_key_mapping_round_trips(name):
    unet = randomized(build_unet("tiny", **CONFIGS[name]))
    state = unet.state_dict()
    mapped = state_dict_to_diffusers(state, unet.config)
    with torch.device("meta"):
        expected = diffusers.UNet2DModel(**diffusers_config(unet.config)).state_dict()
    assert set(mapped) == set(expected)
    assert all(mapped[k].shape == expected[k].shape for k in mapped)
    back = state_dict_from_diffusers(mapped, unet.config)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_the_ddpm_cifar10_preset_is_google_ddpm_cifar10_32():
    """The preset maps onto the layout of google/ddpm-cifar10-32 (its published config, but downsample_padding=1:
    fastdiff's own downsampling), tensor for tensor: 35,746,307 parameters. Built on the meta device: no weights."""
    config = unet_config("ddpm_cifar10")
    with torch.device("meta"):
        unet = UNet(config)
        twin = diffusers.UNet2DModel(**diffusers_config(config))
    published = dict(block_out_channels=(128, 256, 256, 256), layers_per_block=2, attention_head_dim=None,
                     down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), flip_sin_to_cos=False,
                     freq_shift=1, norm_num_groups=32, norm_eps=1e-6, sample_size=32, dropout=0.1)
    assert {k: twin.config[k] for k in published} == {k: tuple(v) if isinstance(v, list) else v
                                                      for k, v in published.items()}
    assert count_parameters(unet) == count_parameters(twin) == 35_746_307
    mapped = state_dict_to_diffusers(unet.state_dict(), config)
    assert {k: v.shape for k, v in mapped.items()} == {k: v.shape for k, v in twin.state_dict().items()}
    assert unet_config_from_diffusers({**twin.config, "downsample_padding": 0})[0] == config


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipelines") / "quick-ddpm"
    return export_pipeline("basics/quick-ddpm", None, folder)


def test_a_zoo_model_exported_samples_in_diffusers_ddim_as_in_fastdiff(exported):
    """diffusers' DDIMScheduler (built from the exported DDPMScheduler config: "leading" spacing, no offset) visits
    t = 900, 800, ..., 0 at 10 steps and steps each to t - 100 (to abar = 1 after t = 0); that is fastdiff's DDIM
    on space_timesteps(1000, "ddim10"). Both clip x_0 to [-1, 1] and re-derive eps from it. The images agree within
    1e-4: diffusers keeps its betas and abar in fp32, fastdiff in fp64."""
    pipeline = diffusers.DDPMPipeline.from_pretrained(exported)
    assert type(pipeline.scheduler).__name__ == "DDPMScheduler"
    scheduler = diffusers.DDIMScheduler.from_config(pipeline.scheduler.config)
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.tolist() == list(range(900, -1, -100))
    model, entry = zoo.load("basics/quick-ddpm", verbose=False)
    schedule = make_schedule(entry.recipe["schedule"])
    x_T = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    ours = sample_ddim(model, x_T, respace(schedule, space_timesteps(1000, "ddim10")), progress=False)
    x = x_T
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = pipeline.unet(x, t).sample
            x = scheduler.step(eps, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    diff = (x - ours).abs().max().item()
    assert diff < 1e-4, diff
    assert ours.abs().max() > 0.5      # images, not a blank


def test_an_exported_folder_loads_back_into_fastdiff(exported):
    unet, schedule = load_pipeline(exported)
    model, _ = zoo.load("basics/quick-ddpm", verbose=False)
    x, t = inputs(1, 32)
    with torch.no_grad():
        assert (unet(x, t) - model(x, t)).abs().max().item() < TOL
    linear = make_schedule("linear")
    assert schedule.num_train_timesteps == 1000 and torch.allclose(schedule.alpha_bar, linear.alpha_bar, rtol=1e-12)
    source = json.loads((exported / "fastdiff_export.json").read_text())
    assert source["zoo_entry"] == "basics/quick-ddpm"


def test_a_layer_skipping_zoo_model_exports_its_unet(tmp_path):
    """skipping/baseline-plain is a layer-skipping wrapper; at k = 0 it is its U-Net, which is what is exported."""
    folder = export_pipeline("skipping/baseline-plain", "linear", tmp_path / "pipe")
    unet, _ = load_pipeline(folder)
    model, _ = zoo.load("skipping/baseline-plain", verbose=False)
    x, t = inputs(1, 16)
    with torch.no_grad():
        assert (unet(x, t) - model(x, t)).abs().max().item() < TOL
    export_pipeline(model, make_schedule("linear"), folder)      # replaces the earlier pipeline folder
    assert load_pipeline(folder)[0].config == unet.config


def test_a_cosine_schedule_goes_as_trained_betas(tmp_path):
    unet = randomized(build_unet("tiny"))
    folder = export_pipeline(unet, "cosine", tmp_path / "pipe")
    assert json.loads((folder / "scheduler" / "scheduler_config.json").read_text())["trained_betas"] is not None
    _, schedule = load_pipeline(folder)
    assert torch.allclose(schedule.alpha_bar, make_schedule("cosine").alpha_bar, rtol=1e-10)


@pytest.mark.parametrize("build, block", [
    (lambda: zoo.load("cunet/cunet", verbose=False)[0], "encoder.0.blocks.0 is a 'ode' block"),
    (lambda: build_unet("tiny", channel_mult=(2, 2)), "encoder.0.blocks.0: fastdiff's stem"),
    (lambda: build_unet("tiny", num_heads=2, attention_resolutions=(8, 4), norm_groups=2),
     "block encoder.1.blocks.0.attn: 2 heads of 16 channels need head width 8"),
    (lambda: build_unet("tiny", cond_channels=1), "SuperResUNet is not a plain fastdiff UNet"),
])
def test_a_fastdiff_layout_that_does_not_map_is_named(build, block):
    with pytest.raises(ValueError, match=block):
        unet_to_diffusers(build())


@pytest.mark.parametrize("change, block", [
    (dict(num_class_embeds=10), "block class_embedding"),
    (dict(freq_shift=0), "block time_embedding"),
    (dict(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D")), "block down_blocks.1 .*'CrossAttnDownBlock2D'"),
    (dict(up_block_types=("UpBlock2D", "UpBlock2D")), "block up_blocks.0 "),
    (dict(norm_eps=1e-5), "block conv_norm_out"),
    (dict(attention_head_dim=4, down_block_types=("AttnDownBlock2D", "AttnDownBlock2D"),
          up_block_types=("AttnUpBlock2D", "AttnUpBlock2D")),
     "block down_blocks.1.attentions.0 does not map .*: 4 heads where down_blocks.0.attentions.0 has 2"),
    (dict(block_out_channels=(8, 12)), "block down_blocks.1 does not map .*: 12 channels"),
    (dict(resnet_time_scale_shift="scale_shift"), "block down_blocks.0.resnets.0"),
])
def test_a_diffusers_layout_that_does_not_map_is_named(change, block):
    with pytest.raises(ValueError, match=block):
        unet_config_from_diffusers(ddpm_layout(**change))


def test_missing_foreign_and_damaged_folders_say_so(tmp_path, exported):
    with pytest.raises(FileNotFoundError, match="no pipeline folder"):
        load_pipeline(tmp_path / "nowhere")
    with pytest.raises(OSError, match="could not be fetched as a hub id"):
        load_pipeline("nobody-here/no-model", local_files_only=True)     # the hub path itself needs a network
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="no model_index.json"):
        load_pipeline(foreign)
    with pytest.raises(FileExistsError, match="not a diffusers pipeline folder"):
        export_pipeline(build_unet("tiny"), "linear", foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
    (foreign / "model_index.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_pipeline(foreign)
    (foreign / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                          "unet": ["diffusers", "UNet2DConditionModel"]}))
    with pytest.raises(ValueError, match="StableDiffusionPipeline folder whose unet is"):
        load_pipeline(foreign)
    damaged = tmp_path / "damaged"
    export_pipeline(build_unet("tiny"), "linear", damaged)
    weights = damaged / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="is damaged"):
        load_pipeline(damaged)


def test_cli_export_diffusers(tmp_path, capsys):
    folder = tmp_path / "fewer-levels"
    assert main(["export-diffusers", "perf/fewer-levels", str(folder)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert diffusers.DDPMPipeline.from_pretrained(folder).unet.config.sample_size == 16
    assert main(["export-diffusers", "perf/bottleneck", str(tmp_path / "b")]) == 2
    assert "is a 'bottleneck' block" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
