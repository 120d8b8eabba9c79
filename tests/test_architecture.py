"""The layout holds (imports go one way), checkpoints rebuild models through the registry (old checkpoints
included), the block factory is used, and methods stack over the one level walk."""
import ast
import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from fastdiff import registry
from fastdiff.diffusion import make_schedule, respace, space_timesteps
from fastdiff.methods.layer_skipping import LayerSkippingUNet, ScheduledSkipping
from fastdiff.methods.vgg_features import VGGFeatureFusion
from fastdiff.nn import BLOCKS, ResAttnBlock, register_block
from fastdiff.sampling import sample_ddim, sample_ddpm
from fastdiff.train import TrainConfig, load_checkpoint, load_model, train
from fastdiff.unet import SuperResUNet, UNet, build_unet

PACKAGE = Path(__file__).resolve().parents[1] / "fastdiff"
DATA = Path(__file__).parent / "data"
CORE = {"diffusion", "sampling", "nn", "unet", "registry", "train", "interrupts", "checkpoint", "data", "weights",
        "results", "verdicts", "zoo", "info", "runner", "distributed", "files", "train_config",
        "devices", "checks", "profiles", "progress", "portable_json", "recipes", "papers", "solvers", "diffusers_io"}
ENTRY_POINTS = {"__init__", "__main__", "cli", "swin_torchrun"}      # may import anything (swin_torchrun: torchrun)


def imported_packages(path: Path) -> set[str]:
    """The fastdiff sub-packages and top-level modules a module imports (absolute or relative, anywhere in it)."""
    tree = ast.parse(path.read_text())
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts   # ("fastdiff", "methods", "vgg_features")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[:-node.level]) if node.level <= len(parts) - 1 else []
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if not node.module else [target]
            else:
                names = [node.module.split(".")] if node.module else []
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        for n in names:
            if n and n[0] == "fastdiff" and len(n) > 1:
                found.add(n[1])
    return found


def layer(module_path: Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    if len(rel.parts) > 1:
        return rel.parts[0]                                       # methods | measure | studies
    return "core" if rel.stem in CORE else rel.stem               # plotting, cli, __init__, __main__ ...


@pytest.mark.xdist_group("import-layers")      # with the probe test below: it writes a file this one reads
def test_imports_go_one_way():
    """core <- methods, measure <- studies <- notebooks, benchmarks, cli. Methods and measurement import only
    the core; nothing below the studies imports a study; plotting is presentation (core and measure)."""
    allowed = {"core": {"core"}, "methods": {"core", "methods"}, "measure": {"core", "measure"},
               "plotting": {"core", "measure"}, "studies": {"core", "methods", "measure", "studies", "plotting"}}
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        kind = layer(path)
        if kind in ENTRY_POINTS:
            continue
        if kind not in allowed:
            problems.append(f"{path.relative_to(PACKAGE.parent)} is in no layer: add it to CORE or a sub-package")
            continue
        for imported in imported_packages(path):
            target = imported if imported in ("methods", "measure", "studies", "plotting") else \
                ("core" if imported in CORE else imported)
            if target not in allowed[kind]:
                problems.append(f"{path.relative_to(PACKAGE.parent)} ({kind}) imports fastdiff.{imported}")
    assert not problems, "\n".join(problems)


@pytest.mark.xdist_group("import-layers")
def test_the_import_test_sees_a_violation(tmp_path, monkeypatch):
    bad = PACKAGE / "methods" / "_probe_bad_import.py"
    bad.write_text("from ..studies import diffusion_basics\nfrom fastdiff.measure import bench\n")
    try:
        assert imported_packages(bad) == {"studies", "measure"}
        with pytest.raises(AssertionError, match="_probe_bad_import.py \\(methods\\) imports fastdiff.studies"):
            test_imports_go_one_way()
    finally:
        bad.unlink()


def module_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: the fastdiff modules it imports}, every import counted (function-local ones too), each resolved to
    the deepest module it names (``from . import zoo`` is ``fastdiff.zoo``). A module's own packages are left out:
    importing them runs their ``__init__`` first anyway, and that is no cycle."""
    def name(path: Path) -> str:
        parts = path.relative_to(package.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    paths = {name(p): p for p in package.rglob("*.py")}

    def resolve(dotted: str) -> str:
        while dotted and dotted not in paths:
            dotted = dotted.rpartition(".")[0]
        return dotted
    graph = {}
    for me, path in paths.items():
        pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(pkg.split(".")[:len(pkg.split(".")) - node.level + 1]) if node.level else ""
                module = ".".join(x for x in (base, node.module) if x)
                targets = [f"{module}.{a.name}" for a in node.names]
            else:
                continue
            found |= {t for t in map(resolve, targets) if t and t != me and not me.startswith(t + ".")}
        graph[me] = found
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles():
    """No module imports itself through others, not even from inside a function (a local import that dodges a circle
    hides it)."""
    cycles = import_cycles(module_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_test_sees_a_cycle_through_a_local_import(tmp_path):
    package = tmp_path / "fastdiff"
    (package / "studies").mkdir(parents=True)
    (package / "__init__.py").write_text("from . import methods\n")
    (package / "methods.py").write_text("")
    (package / "studies" / "__init__.py").write_text("")
    (package / "studies" / "a.py").write_text("from .. import methods\nfrom . import b\n")
    (package / "studies" / "b.py").write_text("import fastdiff.studies\n\ndef f():\n    from .a import x\n")
    graph = module_graph(package)
    assert graph["fastdiff.studies.a"] == {"fastdiff.methods", "fastdiff.studies.b"}
    assert graph["fastdiff.studies.b"] == {"fastdiff.studies.a"}          # its own package is no edge
    assert import_cycles(graph) == [["fastdiff.studies.a", "fastdiff.studies.b"]]


# The study modules by notebook. A study module imports another only through a leaf (shared by several studies,
# importing no study), or inside its own notebook; `zoo_recipes` gathers every study's recipes and no study imports it.
STUDY_LEAVES = {"common", "digits_unet", "inference_ladder"}
STUDY_TOP = {"zoo_recipes"}
NOTEBOOK_OF = {"speed_quality_map_points": "07", "diffusion_basics": "00", "diffusion_basics_fd": "00", "vgg_conditioned_sr": "01", "vgg_sr_evaluation": "01", "digit_vgg": "01",
               "adaptive_layer_skipping": "02", "adaptive_layer_skipping_claims": "02",
               "adaptive_layer_skipping_fd": "02", "continuous_unet": "03", "continuous_unet_fd": "03", "continuous_unet_sweep": "03",
               "patch_parallel_sr": "04",
               "patch_parallel_sr_summary": "04", "patch_parallel_sr_quality": "04", "performance": "05",
               "performance_claims": "05", "performance_fd": "05", "fool_rate_game": "06", "speed_quality_map": "07", "speed_quality_map_fd": "07", "speed_quality_map_judge": "07", "sr_map": "07",
               "report": "07", "report_claims": "07", "vs_diffusers": "07", "pretrained": "07"}
# the cross-study report draws the SR panels of studies 1 and 4 from those studies' own models and samplers
CROSS_STUDY = {("sr_map", "vgg_conditioned_sr"), ("sr_map", "vgg_sr_evaluation"), ("sr_map", "patch_parallel_sr")}


def test_studies_import_each_other_only_through_the_leaves():
    prefix = "fastdiff.studies."
    graph = {m[len(prefix):]: {i[len(prefix):] for i in imported if i.startswith(prefix)}
             for m, imported in module_graph().items() if m.startswith(prefix)}
    unlisted = set(graph) - STUDY_LEAVES - STUDY_TOP - set(NOTEBOOK_OF)
    assert not unlisted, f"study modules in no notebook of NOTEBOOK_OF (nor a leaf): {sorted(unlisted)}"
    problems = []
    for module, imported in sorted(graph.items()):
        for other in sorted(imported):
            if module in STUDY_LEAVES:
                problems.append(f"the leaf {module} imports the study module {other}")
            elif other in STUDY_TOP:
                problems.append(f"{module} imports {other}, which only the command line and notebooks import")
            elif module in STUDY_TOP or other in STUDY_LEAVES or (module, other) in CROSS_STUDY:
                continue
            elif NOTEBOOK_OF[module] != NOTEBOOK_OF[other]:
                problems.append(f"{module} (notebook {NOTEBOOK_OF[module]}) imports {other} (notebook "
                                f"{NOTEBOOK_OF[other]}): share it through a leaf module instead")
    assert not problems, "\n".join(problems)


def test_every_module_stays_a_few_hundred_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


def stacked_model(seed=0):
    """A small SR U-Net with VGG features added at every encoder block *and* layer skipping."""
    torch.manual_seed(seed)
    sr = build_unet("tiny", channel_mult=(1, 2, 2), cond_channels=1, attention_resolutions=())
    return LayerSkippingUNet(VGGFeatureFusion(sr, vgg_weights="random", lr_channels=1), skip_type="zero").eval()


def test_vgg_features_and_layer_skipping_stack_and_sample():
    model = stacked_model()
    vgg = model.inner
    x, lr = torch.randn(2, 1, 8, 8), torch.rand(2, 1, 4, 4) * 2 - 1
    t = torch.tensor([900, 900])
    with torch.no_grad():
        # k = 0: exactly the VGG model alone; k > 0: the VGG model's U-Net walk with the deepest levels skipped
        assert torch.equal(model(x, t, k=0, lr=lr), vgg(x, t, lr=lr))
        skipped = model(x, t, k=2, lr=lr)
        assert skipped.shape == x.shape and not torch.equal(skipped, model(x, t, k=0, lr=lr))
        # the VGG hook still acts under skipping: zero features give a different output than real ones
        zeros = [torch.zeros_like(f) for f in vgg.vgg_features(lr, (8, 8))]
        assert not torch.equal(model(x, t, k=1, lr=lr, vgg=zeros), model(x, t, k=1, lr=lr))
    schedule = make_schedule("linear")
    sched = respace(schedule, space_timesteps(1000, 6))
    scheduled = ScheduledSkipping(model, c=2, num_train_timesteps=1000)
    vgg.vgg.calls = 0
    out = sample_ddim(scheduled, x.clone(), sched, cond={"lr": lr}, progress=False)
    assert vgg.vgg.calls == 1                    # prepare_condition is handed through the skipping wrappers
    assert torch.isfinite(out).all() and out.shape == x.shape
    assert set(scheduled.calls) == {0, 1, 2} and sum(scheduled.calls.values()) == 6
    # the same sampler with VGG recomputed at every step (a wrapper that hides prepare_condition): same images
    vgg.vgg.calls = 0
    again = sample_ddim(lambda x, t, **c: scheduled(x, t, **c), x.clone(), sched, cond={"lr": lr}, progress=False)
    assert vgg.vgg.calls == 6 and torch.equal(out, again)
    ddpm = sample_ddpm(scheduled, x.clone(), sched, cond={"lr": lr}, generator=torch.Generator().manual_seed(0),
                       progress=False)
    assert torch.isfinite(ddpm).all()


def test_a_stack_trains_checkpoints_and_comes_back_through_the_registry(tmp_path):
    from fastdiff.data import SRPairs
    from fastdiff.methods.layer_skipping import timestep_sampler
    hr = torch.rand(8, 1, 8, 8) * 2 - 1
    schedule = make_schedule("linear", 100)
    model = stacked_model()
    draw = timestep_sampler("consistent", schedule, model.num_levels, c=2)
    out = train(model, SRPairs(hr, 2), schedule, TrainConfig(steps=3, batch_size=2, log_every=1), checkpoint=tmp_path / "s.pt",
                progress=False, timesteps=draw)
    ckpt = load_checkpoint(tmp_path / "s.pt")
    spec = ckpt["model_spec"]
    assert spec["arch"] == "layer-skipping" and spec["config"]["inner"]["arch"] == "vgg-fusion"
    assert spec["config"]["inner"]["config"]["inner"]["arch"] == "sr-unet"
    assert spec == registry.model_spec(out["model"])
    assert torch.equal(ckpt["schedule"]["alpha_bar"], schedule.alpha_bar)   # the schedule is stored too
    loaded = load_model(tmp_path / "s.pt")
    x, lr, t = torch.randn(2, 1, 8, 8), torch.rand(2, 1, 4, 4) * 2 - 1, torch.tensor([5, 800])
    with torch.no_grad():
        assert torch.equal(loaded(x, t, k=1, lr=lr), out["ema"].eval()(x, t, k=1, lr=lr))


def test_configs_serialise_every_field():
    model = stacked_model()
    spec = registry.model_spec(model)
    unet_fields = {f.name for f in dataclasses.fields(model.base.config)}
    assert set(spec["config"]["inner"]["config"]["inner"]["config"]) == unet_fields     # asdict: nothing dropped
    rebuilt = registry.build_model(spec)
    assert registry.model_spec(rebuilt) == spec and type(rebuilt.inner.inner) is SuperResUNet


def test_nothing_read_from_a_file_chooses_code():
    with pytest.raises(registry.UnknownArchitectureError, match="unknown architecture 'this'"):
        registry.build_model({"arch": "this", "config": {}})
    with pytest.raises(registry.UnknownArchitectureError, match="no registered successor"):
        registry.from_legacy("Popen", {}, {})
    with pytest.raises(registry.UnknownArchitectureError, match="does not fit"):
        registry.build_model({"arch": "unet", "config": {"image_size": 8, "bogus": 1}})

    class Unregistered(UNet):
        pass
    with pytest.raises(registry.UnknownArchitectureError, match="not a registered architecture"):
        registry.model_spec(Unregistered(build_unet("tiny").config))


@pytest.mark.parametrize("name", ["skipping", "sr3", "vgg"])
def test_checkpoints_written_before_the_move_still_load(name):
    """Written by fastdiff 0.1 (commit 42c477c: ``arch`` a class name, ``module`` a path, ``unet.`` weights)."""
    expected = torch.load(DATA / "legacy_v1_expected.pt", weights_only=True)
    ckpt = load_checkpoint(DATA / f"legacy_v1_{name}.pt")
    assert ckpt["version"] == 2 and "module" not in ckpt and ckpt["train_config"]["amp"] == "fp32"
    model = load_model(DATA / f"legacy_v1_{name}.pt")
    x, t, lr = expected["x"], expected["t"], expected["lr"]
    kind = {"skipping": LayerSkippingUNet, "sr3": SuperResUNet, "vgg": VGGFeatureFusion}[name]
    assert type(model) is kind
    with torch.no_grad():
        out = model(x, t, k=2) if name == "skipping" else model(x, t, lr=lr)
    # the outputs saved by fastdiff 0.1 (two threads); another thread count rounds the convolutions differently
    torch.testing.assert_close(out, expected["outputs"][name], atol=1e-5, rtol=0)


def test_the_u_net_builds_its_blocks_through_the_factory():
    built = []

    @register_block("counting-resnet")
    def counting(in_ch, out_ch, **kw):
        built.append((in_ch, out_ch, kw["attention"]))
        return ResAttnBlock(in_ch, out_ch, **kw)
    try:
        torch.manual_seed(0)
        model = build_unet("tiny", block="counting-resnet")
        # encoder 2 levels x 1 block, middle 2, decoder 2 levels x 2 blocks
        assert len(built) == 2 + 2 + 4 and built[0] == (8, 8, False) and (16, 16, True) in built
        torch.manual_seed(0)
        plain = build_unet("tiny")
        x, t = torch.randn(1, 1, 8, 8), torch.tensor([1])
        with torch.no_grad():
            assert torch.equal(model(x, t), plain(x, t))   # the same blocks, built through the factory
        with pytest.raises(ValueError, match="unknown block 'spiking'"):
            build_unet("tiny", block="spiking")
        with pytest.raises(ValueError, match="already registered"):
            register_block("counting-resnet")(lambda *a, **k: nn.Identity())
    finally:
        BLOCKS.pop("counting-resnet")
