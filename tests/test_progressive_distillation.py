"""Progressive distillation (`fastdiff.methods.progressive_distillation`): the grids nest, the target is the closed
form (one student DDIM step lands where the teacher's two land), the teacher's steps are the DDIM sampler's, a
student that predicts the target samples the teacher's images in half the steps, the v-prediction wrapper, and one
stage trains through `fastdiff.train.train` with exact resume, through `fastdiff train NAME`'s recipe machinery."""
import math

import pytest
import torch
from torch import nn

from fastdiff import registry, zoo
from fastdiff.diffusion import make_schedule
from fastdiff.methods.progressive_distillation import (DistillationLoss, VPrediction, distillation_target,
                                                       student_schedule, student_timesteps, teacher_steps, v_student)
from fastdiff.recipes import Recipe
from fastdiff.sampling import DDIM, sample_ddim, sampler_call
from fastdiff.studies import zoo_recipes
from fastdiff.train import TrainConfig, train
from fastdiff.unet import build_unet

SCHEDULE = make_schedule("linear")


def tiny_teacher(seed=0):
    torch.manual_seed(seed)
    return build_unet("tiny").eval()


class ToyTeacher(nn.Module):
    """A smooth eps-predictor of known form (no weights to learn): eps = tanh(z (1 + t / 1000)) + 0.1 sin(3 z)."""

    def forward(self, z, t):
        scale = 1 + t.to(z.dtype).reshape(-1, 1, 1, 1) / 1000
        return torch.tanh(z * scale) + 0.1 * torch.sin(3 * z)


class Oracle(nn.Module):
    """A perfect student of ``teacher``: at each point of its ``steps``-step grid it predicts the target itself."""

    def __init__(self, teacher, steps, factor=2, clip_x0=True):
        super().__init__()
        self.teacher, self.steps, self.factor, self.clip_x0 = teacher, steps, factor, clip_x0
        self.grid = student_timesteps(1000, steps)

    def forward(self, z, t):
        k = torch.tensor([self.grid.index(int(v)) for v in t])
        x = distillation_target(self.teacher, z, SCHEDULE, k, steps=self.steps, factor=self.factor,
                                clip_x0=self.clip_x0)
        a = SCHEDULE.alpha_bar[t].to(z.dtype).reshape(-1, 1, 1, 1)
        return (z - a.sqrt() * x) / (1 - a).sqrt()


def test_the_grids_nest_and_end_at_pure_noise():
    for n in (1, 2, 4, 8, 16, 32):
        for k in (2, 4, 8):
            assert student_timesteps(1000, n) == student_timesteps(1000, k * n)[k - 1::k]
    assert student_timesteps(1000, 1) == [999] and student_timesteps(1000, 4) == [249, 499, 749, 999]
    assert student_timesteps(1000, 64)[:3] == [15, 30, 46]
    assert student_schedule(SCHEDULE, 8).timesteps.tolist() == student_timesteps(1000, 8)
    with pytest.raises(ValueError, match="steps must be an integer in 1..1000"):
        student_timesteps(1000, 0)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("steps, factor", [(4, 2), (1, 2), (2, 4)])
def test_one_student_step_with_the_target_lands_on_the_teacher(dtype, tol, steps, factor):
    """The closed form: from z_t, one DDIM step with x_hat = x_tilde (eps_hat = (z_t - alpha_t x_tilde) / sigma_t)
    lands on z_t'', where ``factor`` teacher steps land."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(steps * 3, 1, 4, 4, generator=g, dtype=dtype)
    k = torch.arange(steps).repeat(3)
    teacher = ToyTeacher()
    x_tilde = distillation_target(teacher, z, SCHEDULE, k, steps=steps, factor=factor, clip_x0=False)
    grid = torch.tensor(student_timesteps(1000, steps * factor))
    landed = teacher_steps(teacher, z, SCHEDULE, k * factor + factor - 1, factor, grid=grid, clip_x0=False)
    student = torch.tensor(student_timesteps(1000, steps))
    abar = SCHEDULE.alpha_bar.to(dtype)
    a = abar[student[k]].reshape(-1, 1, 1, 1)
    a_end = torch.where(k > 0, abar[student[(k - 1).clamp(min=0)]], torch.ones((), dtype=dtype)).reshape(-1, 1, 1, 1)
    eps_tilde = (z - a.sqrt() * x_tilde) / (1 - a).sqrt()
    one_step = a_end.sqrt() * x_tilde + (1 - a_end).sqrt() * eps_tilde
    assert (one_step - landed).abs().max() < tol
    assert (x_tilde[k == 0] - landed[k == 0]).abs().max() == 0          # the last step lands on the clean image


def test_a_teacher_with_a_constant_x_prediction_is_its_own_target():
    """DDIM is exact when x_hat does not change along the path: then x_tilde is that x itself."""
    x_star = torch.linspace(-0.9, 0.9, 16, dtype=torch.float64).reshape(1, 1, 4, 4)

    def teacher(z, t):
        a = SCHEDULE.alpha_bar[t].reshape(-1, 1, 1, 1)
        return (z - a.sqrt() * x_star) / (1 - a).sqrt()
    z = torch.randn(6, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x_tilde = distillation_target(teacher, z, SCHEDULE, torch.tensor([0, 1, 2, 3, 4, 5]), steps=6)
    assert torch.allclose(x_tilde, x_star.expand_as(x_tilde), atol=1e-9)


def test_the_teachers_steps_are_the_ddim_samplers():
    """Two teacher steps from the sampler's state at a student grid point land on the sampler's state two steps
    later: the teacher is exactly `sample_ddim` (eta 0, x_0 clipped) on the 2N-step grid."""
    teacher, n = tiny_teacher(), 4
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    states = {}                                              # grid index -> z there (len: x_T; -1: the sample)
    states[2 * n - 1] = x_T
    sample = sample_ddim(teacher, x_T, student_schedule(SCHEDULE, 2 * n), progress=False,
                         callback=lambda d: states.__setitem__(d["i"] - 1, d["x"]))
    assert torch.equal(states[-1], sample)
    grid = torch.tensor(student_timesteps(1000, 2 * n))
    for k in range(n):
        start = torch.full((2,), 2 * k + 1)
        landed = teacher_steps(teacher, states[2 * k + 1], SCHEDULE, start, 2, grid=grid)
        assert (landed - states[2 * k - 1]).abs().max() < 1e-5, k


@pytest.mark.parametrize("steps, factor", [(2, 2), (1, 2), (2, 4)])
def test_a_student_that_predicts_the_target_samples_the_teachers_images(steps, factor):
    """A perfect student, sampled with the existing DDIM path on its grid (N steps), reproduces the teacher's
    N * factor-step DDIM samples from the same x_T."""
    teacher = tiny_teacher()
    x_T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    by_teacher = sample_ddim(teacher, x_T, student_schedule(SCHEDULE, steps * factor), progress=False)
    oracle = Oracle(teacher, steps, factor)
    by_student = sampler_call(oracle, student_schedule(SCHEDULE, steps), DDIM.with_options(clip_x0=False), steps,
                              x_T)()
    assert (by_student - by_teacher).abs().max() < 1e-4


def test_the_loss_is_zero_for_a_perfect_student_and_trains_only_the_student():
    teacher = tiny_teacher()
    loss = DistillationLoss(teacher, SCHEDULE, steps=4)
    x0 = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    g = torch.Generator().manual_seed(4)
    assert loss(Oracle(teacher, 4), x0, SCHEDULE, generator=g).item() < 1e-8
    student = v_student(teacher).train()
    value = loss(student, x0, SCHEDULE, generator=g)
    value.backward()
    assert value.item() > 0 and all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    with pytest.raises(ValueError, match="not on the 4-step student grid"):
        loss(student, x0, SCHEDULE, i=torch.full((8,), 500))
    with pytest.raises(ValueError, match="weighted L2"):
        loss(student, x0, SCHEDULE, loss="l1")


def test_v_prediction_reads_the_network_as_v_and_rebuilds_through_the_registry():
    unet = tiny_teacher()
    model = VPrediction(unet).eval()
    z = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([0, 500, 999])
    with torch.no_grad():
        v, eps = unet(z, t), model(z, t)
    a = SCHEDULE.alpha_bar[t].reshape(-1, 1, 1, 1)                          # float64, then the coefficients in fp32
    alpha, sigma = a.sqrt().float(), (1 - a).sqrt().float()
    assert torch.allclose(eps, sigma * z + alpha * v, atol=1e-6)
    assert torch.allclose((z - sigma * eps) / alpha, alpha * z - sigma * v, atol=2e-4)   # x_hat, even at t = 999
    rebuilt = registry.build_model(registry.model_spec(model))
    rebuilt.load_state_dict(model.state_dict())
    assert set(model.state_dict()) == {"inner." + k for k in unet.state_dict()}        # no extra weights
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(z, t), eps)
        assert torch.allclose(model(z, t.double()), eps, atol=1e-6)                    # fractional t: interpolated
    assert v_student(model).config == model.config and v_student(unet).config == model.config


def _train(student, teacher, path, steps, until=None, data=None):
    cfg = TrainConfig(steps=steps, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0, ema_decay=0.9)
    loss = DistillationLoss(teacher, SCHEDULE, steps=2)
    data = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(6)) * 2 - 1 if data is None else data
    return train(student, data, SCHEDULE, cfg, checkpoint=path, progress=False, device="cpu", until=until,
                 loss_fn=loss, timesteps=loss.timesteps)


def test_a_stage_trains_through_train_and_resumes_exactly(tmp_path):
    teacher = tiny_teacher()
    straight = _train(v_student(teacher), teacher, tmp_path / "straight.pt", 4)
    first = _train(v_student(teacher), teacher, tmp_path / "pieces.pt", 4, until=2)
    assert first["step"] == 2
    resumed = _train(v_student(teacher), teacher, tmp_path / "pieces.pt", 4)
    assert resumed["resumed_from"] == 2 and resumed["step"] == 4
    for key in ("model", "ema"):
        for a, b in zip(straight[key].state_dict().values(), resumed[key].state_dict().values()):
            assert torch.equal(a, b)
    assert [h["loss"] for h in straight["history"]] == [h["loss"] for h in resumed["history"]]
    assert all(math.isfinite(h["loss"]) for h in straight["history"])
    with pytest.raises(ValueError, match="objective: .* in the checkpoint"):   # another teacher is a change
        _train(v_student(teacher), tiny_teacher(seed=1), tmp_path / "pieces.pt", 6)


def test_the_recipe_machinery_trains_exports_and_loads_a_student(tmp_path, monkeypatch):
    teacher = tiny_teacher()
    data = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(7)) * 2 - 1
    recipe = Recipe(name="test/pd-2", description="a tiny student", build=lambda: v_student(teacher),
                    data=lambda: data, data_label="16 random 8x8 images",
                    train=TrainConfig(steps=2, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0),
                    loss=lambda model, schedule: DistillationLoss(teacher, schedule, steps=2))
    monkeypatch.setattr(zoo_recipes, "recipes", lambda: {"test/pd-2": recipe})
    out = zoo_recipes.train_recipe("test/pd-2", device="cpu", checkpoint_dir=tmp_path / "c", zoo_dir=tmp_path / "z",
                                   progress=False)
    model, entry = zoo.load("test/pd-2", zoo_dir=tmp_path / "z", verbose=False)
    assert isinstance(model, VPrediction) and entry.steps == 2
    by_hand = _train(v_student(teacher), teacher, tmp_path / "by_hand.pt", 2, data=data)
    for a, b in zip(out["result"]["model"].state_dict().values(), by_hand["model"].state_dict().values()):
        assert torch.equal(a, b)                                # the recipe draws its timesteps from the loss


def test_the_zoo_recipes_chain_the_stages_from_the_baseline_u_net():
    every = zoo_recipes.recipes()
    names = [zoo_recipes.distill_name(n) for n in zoo_recipes.DISTILL_STAGES]
    assert {"distill/pd-8", "distill/pd-4", "distill/pd-2", "distill/pd-1"} <= set(names) <= set(every)
    first = max(zoo_recipes.DISTILL_STAGES)
    assert 2 * first == zoo_recipes.DISTILL_TEACHER_STEPS
    for n in zoo_recipes.DISTILL_STAGES:
        teacher = zoo_recipes.distill_teacher(n)[0]
        assert teacher == (zoo_recipes.DISTILL_TEACHER if n == first else zoo_recipes.distill_name(2 * n))
        assert f"zoo:{teacher}" in every[zoo_recipes.distill_name(n)].description
    student = every[zoo_recipes.distill_name(first)].build()
    baseline = zoo.load(zoo_recipes.DISTILL_TEACHER, verbose=False)[0].base
    assert isinstance(student, VPrediction)
    for a, b in zip(student.inner.state_dict().values(), baseline.state_dict().values()):
        assert torch.equal(a, b)


def test_a_fresh_student_is_its_teacher_on_the_teachers_grid():
    """A later stage's fresh student is an exact copy of its (v) teacher: the teacher's 2N-step DDIM samples, bit
    for bit, on the 2N-step grid. The first stage's fresh student is the eps U-Net's weights read as v: where
    sigma_t ~ 1 its eps is sigma_t z + alpha_t eps_teacher, not the teacher's eps."""
    unet = tiny_teacher()
    teacher = v_student(unet).eval()
    student = v_student(teacher).eval()
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(8))
    for n in (2, 4):
        a = sample_ddim(teacher, x_T, student_schedule(SCHEDULE, 2 * n), progress=False)
        assert torch.equal(a, sample_ddim(student, x_T, student_schedule(SCHEDULE, 2 * n), progress=False))
    t = torch.full((2,), 999)
    with torch.no_grad():
        assert torch.allclose(teacher(x_T, t), x_T * (1 - SCHEDULE.alpha_bar[999]).sqrt().float()
                              + SCHEDULE.alpha_bar[999].sqrt().float() * unet(x_T, t), atol=1e-6)
