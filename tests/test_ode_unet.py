"""The continuous U-Net's dynamic block: a true second-order system (x' = v, v' = f), with the diffusion time used
inside f, an explicit solver whose function evaluations are counted, two backends that are one solver, and a cU-Net
that trains."""
import pytest
import torch

from fastdiff.diffusion import make_schedule
from fastdiff.methods.ode_unet import ODEBlock, check_options, fixed_step, nfe, reset_nfe, set_solver
from fastdiff.studies import continuous_unet as study
from fastdiff.train import TrainConfig, train


def block(**options):
    torch.manual_seed(0)
    return ODEBlock(8, emb_dim=16, norm_groups=4, options=options)


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 8, 6, 6, generator=g), torch.randn(2, 16, generator=g)


@pytest.mark.parametrize("options", [dict(solver="euler", step_size=0.25), dict(solver="rk4", step_size=0.5),
                                     dict(solver="rk4", backend="torchdiffeq"),
                                     dict(solver="dopri5", backend="torchdiffeq")])
def test_zero_acceleration_and_zero_initial_velocity_return_the_input(options):
    b = block(**options)
    torch.nn.init.zeros_(b.f.conv.weight)
    torch.nn.init.zeros_(b.f.conv.bias)                    # f = -gamma v + t~ w = 0 while v = 0 (w starts at 0)
    x, emb = inputs()
    with torch.no_grad():
        assert torch.allclose(b(x, emb), x, atol=1e-6)       # g starts at zero: x'(0) = 0


def test_one_fixed_step_is_the_explicit_update():
    b = block(solver="euler", step_size=1.0)
    torch.nn.init.normal_(b.g[-1].weight, std=0.1)         # a non-zero initial velocity
    x, emb = inputs()
    with torch.no_grad():
        b.f.condition(emb)
        v0 = b.g(x)
        # Euler on (x, v): x1 = x0 + v0 (one step of size 1); f only moves v, so x1 does not depend on it
        assert torch.allclose(b(x, emb), x + v0, atol=1e-6)
        rk = block(solver="rk4", step_size=1.0)
        rk.load_state_dict(b.state_dict())
        rk.f.condition(emb)
        f = lambda t, x_, v_: rk.f(t, x_, v_)  # noqa: E731
        k1 = f(0.0, x, v0)
        x2, v2 = x + v0 / 3, v0 + k1 / 3
        k2 = f(1 / 3, x2, v2)
        x3, v3 = x + (v2 - v0 / 3), v0 + (k2 - k1 / 3)
        k3 = f(2 / 3, x3, v3)
        v4 = v0 + (k1 - k2 + k3)
        expected = x + (v0 + 3 * (v2 + v3) + v4) / 8              # Kutta's 3/8 rule, one step, written out
        assert torch.allclose(rk(x, emb), expected, atol=1e-5)


def test_the_second_order_system_uses_velocity_and_the_diffusion_time():
    b = block(solver="rk4", step_size=0.5)
    torch.nn.init.normal_(b.g[-1].weight, std=0.1)
    x, emb = inputs()
    with torch.no_grad():
        base = b(x, emb)
        assert not torch.allclose(base, b(x, emb + 1.0))          # the time embedding acts inside f
        b.f.damping.fill_(5.0)                                    # more damping of x' changes the path
        assert not torch.allclose(base, b(x, emb))


@pytest.mark.parametrize("solver,step_size,per_block", [("euler", 0.25, 4), ("rk4", 1.0, 4), ("rk4", 0.5, 8)])
def test_nfe_counts_the_solvers_steps(solver, step_size, per_block):
    model = study.build("cU-Net", solver=solver, step_size=step_size)
    blocks = sum(1 for m in model.modules() if isinstance(m, ODEBlock))
    x = torch.randn(1, 1, 16, 16)
    reset_nfe(model)
    with torch.no_grad():
        model(x, torch.tensor([10]))
    assert nfe(model) == blocks * per_block
    torch.manual_seed(0)
    adaptive = set_solver(study.build("cU-Net"), solver="dopri5", backend="torchdiffeq", rtol=1e-3, atol=1e-4)
    reset_nfe(adaptive)
    with torch.no_grad():
        adaptive(x, torch.tensor([10]))
    assert nfe(adaptive) >= blocks * 6                             # dopri5: at least one step of 6 evaluations


@pytest.mark.parametrize("solver,step_size", [("euler", 0.25), ("rk4", 0.5)])
def test_the_hand_rolled_loop_equals_torchdiffeq(solver, step_size):
    loop = block(solver=solver, step_size=step_size)
    ref = block(solver=solver, step_size=step_size, backend="torchdiffeq")
    ref.load_state_dict(loop.state_dict())
    torch.nn.init.normal_(loop.g[-1].weight, std=0.1)
    ref.load_state_dict(loop.state_dict())
    x, emb = inputs(3)
    with torch.no_grad():
        torch.testing.assert_close(loop(x, emb), ref(x, emb), rtol=1e-5, atol=1e-5)


def test_gradients_flow_through_the_solver_and_the_adjoint_agrees():
    direct = block(solver="rk4", step_size=0.5, backend="torchdiffeq")
    adjoint = block(solver="rk4", step_size=0.5, backend="torchdiffeq", adjoint=True)
    adjoint.load_state_dict(direct.state_dict())
    x, emb = inputs()
    direct(x, emb).square().sum().backward()
    adjoint(x, emb).square().sum().backward()
    for a, b in zip(direct.f.parameters(), adjoint.f.parameters()):
        # equal to the discretisation error: the adjoint integrates backwards on its own grid
        assert (a.grad - b.grad).norm() <= 0.05 * a.grad.norm() + 1e-6


def test_bad_solver_options_are_clear_errors():
    for options, message in ((dict(solver="rk45"), "unknown ODE solver 'rk45'"),
                             (dict(step_size=0.3), "whole number of steps"),
                             (dict(solver="dopri5"), "needs backend='torchdiffeq'"),
                             (dict(adjoint=True), "adjoint=True needs backend='torchdiffeq'"),
                             (dict(rtol=0), "rtol must be a positive number"),
                             (dict(tolerance=1), "unknown ODE block options")):
        with pytest.raises(ValueError, match=message):
            check_options(options)
    with pytest.raises(ValueError, match="resblock changes the architecture"):
        set_solver(study.build("cU-Net"), resblock=False)


def test_the_cunet_has_a_quarter_of_the_parameters_and_trains():
    unet, cunet = study.build("U-Net"), study.build("cU-Net")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 3.5 < count(unet) / count(cunet) < 4.5
    from fastdiff.data import load_dataset
    data = load_dataset("mnist-builtin", image_size=16)[:256]
    out = train(cunet, data, make_schedule("linear", 100), TrainConfig(steps=60, batch_size=16, lr=2e-3, log_every=1,
                                                                        checkpoint_every=0), progress=False)
    losses = [h["loss"] for h in out["history"]]
    assert sum(losses[-15:]) / 15 < 0.8 * sum(losses[:15]) / 15                 # the loss falls


def test_fixed_step_rejects_nothing_it_should_not():
    x = torch.ones(1)
    xs, vs = fixed_step(lambda t, x_, v_: -x_, x, torch.zeros(1), solver="rk4", steps=100)
    assert abs(xs.item() - torch.cos(torch.tensor(1.0)).item()) < 1e-6          # x'' = -x from (1, 0): cos(1)
