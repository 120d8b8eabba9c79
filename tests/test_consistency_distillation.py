"""Consistency distillation (`fastdiff.methods.consistency_distillation`): the teacher's ODE step is the DDIM
sampler's, the boundary at the clean end, the consistency function and the one-step sample, the target network,
a perfect consistency function has zero loss and training lowers it, exact resume through `fastdiff.train.train`,
the recipe machinery, and bad inputs."""
import copy
import math

import pytest
import torch
from torch import nn

from fastdiff import zoo
from fastdiff.diffusion import make_schedule
from fastdiff.methods.consistency_distillation import (CONSISTENCY, ConsistencyDistillationLoss, consistency_function,
                                                       consistency_sample, consistency_target, consistency_timesteps,
                                                       teacher_ode_step)
from fastdiff.methods.progressive_distillation import VPrediction, student_schedule, student_timesteps, v_student
from fastdiff.recipes import Recipe
from fastdiff.sampling import DDIM, sample_ddim, sampler_call
from fastdiff.studies import zoo_recipes
from fastdiff.train import TrainConfig, TrainState, apply_update, compute_gradients, train
from fastdiff.unet import build_unet

SCHEDULE = make_schedule("linear")


def tiny_teacher(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return build_unet("tiny").to(dtype).eval()


def images(n, seed, dtype=torch.float32):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


class Oracle(nn.Module):
    """A perfect consistency function of ``teacher`` on the ``steps``-point grid: from a grid point it runs the
    teacher's DDIM steps down to the clean end and returns the eps whose x-prediction is that end."""

    def __init__(self, teacher, steps):
        super().__init__()
        self.teacher, self.grid = teacher, torch.tensor(student_timesteps(1000, steps))

    def forward(self, z, t):
        n = torch.tensor([self.grid.tolist().index(int(v)) for v in t])
        x = z
        for _ in range(int(n.max()) + 1):                    # each image stops at the clean end (index -1)
            done = (n < 0).reshape(-1, 1, 1, 1)
            x = torch.where(done, x, teacher_ode_step(self.teacher, x, SCHEDULE, n.clamp(min=0), grid=self.grid))
            n = n - 1
        a = SCHEDULE.alpha_bar[t].to(z.dtype).reshape(-1, 1, 1, 1)
        return (z - a.sqrt() * x) / (1 - a).sqrt()


def test_the_teachers_step_is_the_ddim_samplers_step():
    """One teacher ODE step from the sampler's state at every grid point lands on the sampler's next state: the
    teacher is `sample_ddim` (eta 0, x_0 clipped) on the N-point grid, in float64 to 1e-10."""
    teacher, steps = tiny_teacher(dtype=torch.float64), 6
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    states = {steps - 1: x_T}                                   # grid index -> z there (-1: the sample)
    sample_ddim(teacher, x_T, student_schedule(SCHEDULE, steps), progress=False,
                callback=lambda d: states.__setitem__(d["i"] - 1, d["x"]))
    grid = torch.tensor(student_timesteps(1000, steps))
    for n in range(steps):
        landed = teacher_ode_step(teacher, states[n], SCHEDULE, torch.full((2,), n), grid=grid)
        assert landed.dtype == torch.float64 and (landed - states[n - 1]).abs().max() < 1e-10, n


def test_the_boundary_and_the_consistency_function_by_hand():
    """At the clean end the target is the teacher's z_hat (its clipped x_0 prediction from t_1); elsewhere it is
    theta^-'s f at the next grid point down. f at the grid's start is alpha z - sigma v of the v-student."""
    teacher = tiny_teacher(dtype=torch.float64)
    student = v_student(teacher).eval()
    grid = torch.tensor(student_timesteps(1000, 4))
    z = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    n = torch.tensor([0, 1, 2, 3])
    target = consistency_target(teacher, student, z, SCHEDULE, n, grid=grid)
    z_hat = teacher_ode_step(teacher, z, SCHEDULE, n, grid=grid)
    a = SCHEDULE.alpha_bar[grid[0]]
    with torch.no_grad():
        x0 = ((z[:1] - (1 - a).sqrt() * teacher(z[:1], grid[:1])) / a.sqrt()).clamp(-1, 1)
        assert torch.equal(target[0], z_hat[0]) and (z_hat[0] - x0[0]).abs().max() < 1e-12
        f = consistency_function(student, z_hat[1:], grid[n[1:] - 1], SCHEDULE)
        assert (target[1:] - f).abs().max() < 1e-12
        t = torch.full((4,), int(grid[0]))
        v = student.inner(z, t)                                 # the network's output, read as v
        by_hand = a.sqrt() * z - (1 - a).sqrt() * v
        assert (consistency_function(student, z, t, SCHEDULE) - by_hand).abs().max() < 1e-10


def test_a_fresh_student_reads_the_teacher_as_v_and_its_one_step_sample_is_f_at_pure_noise():
    """At init f_student = alpha z - sigma eps_teacher at every t: the teacher's x_0 prediction only where
    sigma_t -> 0 (t = 0), far from it at t = T - 1. The existing one-step DDIM path on the 1-step schedule is
    f(x_T, T - 1) (clipped like `consistency_sample`, or not at all)."""
    teacher = tiny_teacher()
    student = v_student(teacher).eval()
    z = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for t_ in (0, 500, 999):
            t = torch.full((3,), t_)
            a = SCHEDULE.alpha_bar[t_]
            alpha, sigma = a.sqrt().item(), (1 - a).sqrt().item()
            eps = teacher(z, t)
            gap = (consistency_function(student, z, t, SCHEDULE) - (z - sigma * eps) / alpha).abs().max()
            assert (consistency_function(student, z, t, SCHEDULE) - (alpha * z - sigma * eps)).abs().max() < 1e-4
            assert gap < 1e-3 if t_ == 0 else gap > 0.1
    with torch.no_grad():
        student.inner.head[2].weight.mul_(20)                  # so that f reaches past [-1, 1]: clipping matters
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    one_step = sampler_call(student, student_schedule(SCHEDULE, 1), DDIM, 1, x_T)()
    assert (one_step - consistency_sample(student, SCHEDULE, x_T, [999])).abs().max() < 2e-4
    unclipped = sampler_call(student, student_schedule(SCHEDULE, 1), DDIM.with_options(clip_x0=False), 1, x_T)()
    with torch.no_grad():
        f = consistency_function(student, x_T, torch.full((4,), 999), SCHEDULE)
    assert (unclipped - f).abs().max() < 2e-4 and f.abs().max() > 1.5
    assert (one_step - f.clamp(-1, 1)).abs().max() < 2e-4


def test_multistep_sampling_and_its_times():
    assert consistency_timesteps(1000, 18, 1) == [999] and consistency_timesteps(1000, 18, 2) == [999, 499]
    assert consistency_timesteps(1000, 4, 4) == sorted(student_timesteps(1000, 4), reverse=True)
    student = v_student(tiny_teacher()).eval()
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    x1 = consistency_sample(student, SCHEDULE, x_T, [999])
    two = consistency_sample(student, SCHEDULE, x_T, [999, 499], generator=torch.Generator().manual_seed(5))
    # by hand (Alg. 1): re-noise the one-step sample to t = 499 with fresh noise, then f there
    a = SCHEDULE.alpha_bar[499]
    noise = torch.randn(x1.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        by_hand = consistency_function(student, a.sqrt().float() * x1 + (1 - a).sqrt().float() * noise,
                                       torch.full((2,), 499), SCHEDULE).clamp(-1, 1)
    assert torch.allclose(two, by_hand, atol=1e-6) and x1.abs().max() <= 1
    # the same through the samplers' interface (what the map samples): the training schedule, 1 or 2 steps
    for steps, expected in ((1, x1), (2, two)):
        got = sampler_call(student, SCHEDULE, CONSISTENCY, steps, x_T, seed=5)()
        assert torch.equal(got, expected) and CONSISTENCY.nfe(steps) == steps
    with pytest.raises(ValueError, match="sample_steps must be an integer in 1..18"):
        sampler_call(student, SCHEDULE, CONSISTENCY, 19, x_T)()


def test_a_perfect_consistency_function_has_zero_loss_and_only_the_student_trains():
    teacher = tiny_teacher()
    loss = ConsistencyDistillationLoss(teacher, SCHEDULE, steps=4)
    x0, g = images(8, 6), torch.Generator().manual_seed(7)
    assert loss(Oracle(teacher, 4), x0, SCHEDULE, generator=g).item() < 1e-8
    student = v_student(teacher).train()
    value = loss(student, x0, SCHEDULE, generator=g)
    value.backward()
    assert value.item() > 1e-4 and all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters()) and student.training


def test_training_lowers_the_loss_on_a_fixed_batch():
    teacher = tiny_teacher()
    student = v_student(teacher).train()
    loss = ConsistencyDistillationLoss(teacher, SCHEDULE, steps=4)
    x0, noise = images(16, 8), torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    i = torch.tensor(student_timesteps(1000, 4)).repeat(4)
    opt = torch.optim.Adam(student.parameters(), lr=2e-3)
    values = []
    for _ in range(30):
        value = loss(student, x0, SCHEDULE, i=i, noise=noise)
        opt.zero_grad()
        value.backward()
        opt.step()
        values.append(value.item())
    assert values[-1] < 0.5 * values[0], values


def test_the_target_network_is_an_ema_of_the_student_updated_once_per_update():
    teacher = tiny_teacher()
    student = v_student(teacher).train()
    loss = ConsistencyDistillationLoss(teacher, SCHEDULE, steps=4, target_decay=0.9)
    x0 = images(4, 10)
    loss(student, x0, SCHEDULE, generator=torch.Generator().manual_seed(0)).backward()
    before = [p.detach().clone() for p in student.parameters()]
    assert all(torch.equal(e, p) for e, p in zip(loss.target.parameters(), before))   # theta^- <- theta (Alg. 2)
    torch.optim.SGD(student.parameters(), lr=0.1).step()
    for _ in range(2):                                       # a second call without an update changes nothing
        loss(student, x0, SCHEDULE, generator=torch.Generator().manual_seed(0))
        for e, b, p in zip(loss.target.parameters(), before, student.parameters()):
            assert torch.allclose(e, 0.9 * b + 0.1 * p.detach(), atol=1e-7)
    assert loss.state_dict()["current"]
    assert ConsistencyDistillationLoss(teacher, SCHEDULE, steps=4).state_dict() == {"target": None, "current": False}


@pytest.mark.parametrize("where", ["between steps", "inside a step"])
def test_with_its_state_restored_the_target_network_resumes_exactly(where):
    """mu > 0: the loss's state (theta^-) rides in the checkpoint (`TrainState.loss_fn`, as `train` sets it): 2 steps,
    a checkpoint (between steps, or inside step 3 after its loss, as an error saves it), 2 more = 4 in one go."""
    teacher, data = tiny_teacher(), images(16, 16)
    cfg = TrainConfig(steps=4, batch_size=4, lr=1e-3, checkpoint_every=0, ema_decay=0.9)

    def fresh():
        state = TrainState.start(v_student(teacher), SCHEDULE, cfg, "cpu")
        state.loss_fn = ConsistencyDistillationLoss(teacher, SCHEDULE, steps=3, target_decay=0.5)
        assert state.loss_fn.stateful
        return state, state.loss_fn

    def run(state, loss, steps):
        for _ in range(steps):
            compute_gradients(state, data, loss.timesteps, loss)
            apply_update(state)
    straight, loss = fresh()
    run(straight, loss, 4)
    first, first_loss = fresh()
    run(first, first_loss, 2)
    rng = first.rng_state()
    if where == "inside a step":
        compute_gradients(first, data, first_loss.timesteps, first_loss)        # the target folds in step 2 here
    ckpt = copy.deepcopy(first.to_checkpoint(rng))
    assert ckpt["loss_state"]["current"] == (where == "inside a step")
    resumed, resumed_loss = fresh()
    resumed.load(ckpt)
    run(resumed, resumed_loss, 2)
    for a, b in [(straight.model, resumed.model), (straight.ema, resumed.ema), (loss.target, resumed_loss.target)]:
        for x, y in zip(a.state_dict().values(), b.state_dict().values()):
            assert torch.equal(x, y)


def _train(student, teacher, path, steps, until=None, data=None, grid=3, mu=0.0):
    cfg = TrainConfig(steps=steps, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0, ema_decay=0.9)
    loss = ConsistencyDistillationLoss(teacher, SCHEDULE, steps=grid, target_decay=mu)
    data = images(16, 11) if data is None else data
    return train(student, data, SCHEDULE, cfg, checkpoint=path, progress=False, device="cpu", until=until,
                 loss_fn=loss, timesteps=loss.timesteps)


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_training_through_train_resumes_exactly(tmp_path, mu):
    """In two pieces through `train` = in one; with mu > 0 the checkpoint carries theta^- (mu = 0: no loss state)."""
    teacher = tiny_teacher()
    straight = _train(v_student(teacher), teacher, tmp_path / "straight.pt", 4, mu=mu)
    first = _train(v_student(teacher), teacher, tmp_path / "pieces.pt", 4, until=2, mu=mu)
    assert first["step"] == 2
    assert ("loss_state" in torch.load(tmp_path / "pieces.pt", weights_only=False)) == (mu > 0)
    resumed = _train(v_student(teacher), teacher, tmp_path / "pieces.pt", 4, mu=mu)
    assert resumed["resumed_from"] == 2 and resumed["step"] == 4
    for key in ("model", "ema"):
        for a, b in zip(straight[key].state_dict().values(), resumed[key].state_dict().values()):
            assert torch.equal(a, b)
    assert [h["loss"] for h in straight["history"]] == [h["loss"] for h in resumed["history"]]
    assert all(math.isfinite(h["loss"]) for h in straight["history"])
    with pytest.raises(ValueError, match="objective: .* in the checkpoint"):   # another grid is a change
        _train(v_student(teacher), teacher, tmp_path / "pieces.pt", 6, grid=5)


def test_the_recipe_machinery_trains_and_exports_a_consistency_model(tmp_path, monkeypatch):
    teacher, data = tiny_teacher(), images(16, 12)
    recipe = Recipe(name="test/cd", description="a tiny consistency model", build=lambda: v_student(teacher),
                    data=lambda: data, data_label="16 random 8x8 images",
                    train=TrainConfig(steps=2, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0, ema_decay=0.9),
                    loss=lambda model, schedule: ConsistencyDistillationLoss(teacher, schedule, steps=3))
    monkeypatch.setattr(zoo_recipes, "recipes", lambda: {"test/cd": recipe})
    out = zoo_recipes.train_recipe("test/cd", device="cpu", checkpoint_dir=tmp_path / "c", zoo_dir=tmp_path / "z",
                                   progress=False)
    model, entry = zoo.load("test/cd", zoo_dir=tmp_path / "z", verbose=False)
    assert isinstance(model, VPrediction) and entry.steps == 2
    by_hand = _train(v_student(teacher), teacher, tmp_path / "by_hand.pt", 2, data=data)
    for a, b in zip(out["result"]["model"].state_dict().values(), by_hand["model"].state_dict().values()):
        assert torch.equal(a, b)                                # the recipe draws its timesteps from the loss


def test_the_zoo_recipe_distils_the_baseline_u_net():
    recipe = zoo_recipes.recipes()[zoo_recipes.CD_NAME]
    assert f"zoo:{zoo_recipes.DISTILL_TEACHER}" in recipe.description and recipe.train == zoo_recipes.CD_TRAIN
    student = recipe.build()
    baseline = zoo.load(zoo_recipes.DISTILL_TEACHER, verbose=False)[0].base
    assert isinstance(student, VPrediction)
    for a, b in zip(student.inner.state_dict().values(), baseline.state_dict().values()):
        assert torch.equal(a, b)
    loss = recipe.loss(student, SCHEDULE)
    assert isinstance(loss, ConsistencyDistillationLoss) and loss.describe()["grid_steps"] == zoo_recipes.CD_GRID_STEPS


def test_bad_inputs_are_refused_with_a_reason():
    teacher = tiny_teacher()
    for steps in (1, 0, True, 2.0, 1001):
        with pytest.raises(ValueError, match="steps .the grid's points N. must be an integer in 2..1000"):
            ConsistencyDistillationLoss(teacher, SCHEDULE, steps=steps)
    for mu in (-0.1, 1.0, float("nan"), "0.9", True):
        with pytest.raises(ValueError, match=r"target_decay .* must be a number in \[0, 1\)"):
            ConsistencyDistillationLoss(teacher, SCHEDULE, steps=4, target_decay=mu)
    with pytest.raises(ValueError, match="unknown metric 'lpips'"):
        ConsistencyDistillationLoss(teacher, SCHEDULE, steps=4, metric="lpips")
    loss, student, x0 = ConsistencyDistillationLoss(teacher, SCHEDULE, steps=4), v_student(teacher), images(2, 13)
    with pytest.raises(ValueError, match="not on the 4-point grid"):
        loss(student, x0, SCHEDULE, i=torch.full((2,), 500))
    with pytest.raises(ValueError, match="loss must be 'l2'"):
        loss(student, x0, SCHEDULE, loss="l1")
    with pytest.raises(ValueError, match="built for a schedule of 1000 steps"):
        loss(student, x0, student_schedule(SCHEDULE, 4))
    with pytest.raises(ValueError, match="sample_steps must be an integer in 1..18"):
        consistency_timesteps(1000, 18, 19)
    with pytest.raises(ValueError, match="strictly decreasing"):
        consistency_sample(student, SCHEDULE, torch.zeros(1, 1, 8, 8), [499, 999])
    with pytest.raises(ValueError, match="positions must be in 0..999"):
        consistency_sample(student, SCHEDULE, torch.zeros(1, 1, 8, 8), [1000])


def test_pseudo_huber_lies_below_the_l2_norm():
    """sqrt(|d|^2 + c^2) - c < |d| per image, and the batch mean of |d| is at most sqrt(mean |d|^2) (Jensen)."""
    teacher = tiny_teacher()
    x0, noise = images(4, 14), torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(15))
    i = torch.tensor(student_timesteps(1000, 4))
    student = v_student(teacher)
    l2 = ConsistencyDistillationLoss(teacher, SCHEDULE, steps=4)(student, x0, SCHEDULE, i=i, noise=noise)
    huber = ConsistencyDistillationLoss(teacher, SCHEDULE, steps=4, metric="pseudo-huber")(student, x0, SCHEDULE,
                                                                                           i=i, noise=noise)
    assert 0 < huber.item() < math.sqrt(64 * l2.item())                     # below the mean L2 norm (Jensen)
