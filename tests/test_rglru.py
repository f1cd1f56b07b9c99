"""RG-LRU: forward == DSF recurrence == Phi u, backends agree, decays and the sqrt(1 - a^2) normalization."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.scan import BACKENDS
from dsflib.models.rglru import RGLRU

F64 = torch.float64
# every torch evaluation of linear_scan, the step-by-step reference last
TORCH_BACKENDS = [b for b in ("chunked", "parallel") if b in BACKENDS] + ["recurrent"]
D, N_EXP = 8, 2


def _input(batch, length, seed=1, dtype=F64, d=D):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, d, generator=g, dtype=F64).to(dtype)


def _layer(seed=0, n=N_EXP, **kw):
    torch.manual_seed(seed)
    layer = RGLRU(D, n=n, **kw).double()
    with torch.no_grad():  # faster decays than Griffin's init, so the short test sequences forget
        layer.Lambda.copy_(torch.linspace(-1.0, 3.0, layer.width, dtype=F64))
    return layer


def _reference(layer, u):
    """Griffin's RG-LRU equations, one token at a time, from the raw parameters."""
    x = u @ layer.proj_x.weight.T
    r = torch.sigmoid(u @ layer.gate_a.weight.T + layer.gate_a.bias)
    g = torch.sigmoid(u @ layer.gate_x.weight.T + layer.gate_x.bias)
    a = torch.sigmoid(layer.Lambda) ** (layer.c * r)
    h = u.new_zeros(u.shape[0], layer.width)
    ys = []
    for i in range(u.shape[1]):
        h = a[:, i] * h + torch.sqrt(1 - a[:, i] ** 2) * (g[:, i] * x[:, i])
        ys.append(h @ layer.proj_out.weight.T)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("length", [1, 7, 63, 130])
def test_forward_equals_dsf_recurrence_and_phi(length):
    layer = _layer()
    u = _input(2, length, seed=length)
    y = layer(u)
    assert y.shape == u.shape and y.dtype == F64
    dsf = layer.to_dsf(u)
    assert (dsf.N, dsf.n, dsf.d) == (N_EXP * D, N_EXP, D)
    assert dsf.A.shape == (2, length, N_EXP * D) and not dsf.scalar_A and dsf.D is None
    torch.testing.assert_close(recurrence(dsf, u), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(apply_phi(materialize_phi(dsf), u), y, rtol=0, atol=1e-10)


def test_forward_matches_the_equations():
    layer = _layer()
    u = _input(2, 20, seed=3)
    torch.testing.assert_close(layer(u), _reference(layer, u), rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", [63, 130])
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length):
    layer = _layer()
    u0 = _input(2, length, seed=4)
    w = _input(2, length, seed=5)
    results = {}
    for backend in TORCH_BACKENDS:
        layer.backend = backend
        layer.zero_grad()
        u = u0.clone().requires_grad_()
        y = layer(u)
        (y * w).sum().backward()
        results[backend] = (y.detach(), u.grad, {k: p.grad.clone() for k, p in layer.named_parameters()})
    yr, gur, gpr = results["recurrent"]
    for backend in TORCH_BACKENDS[:-1]:
        yc, guc, gpc = results[backend]
        torch.testing.assert_close(yc, yr, rtol=0, atol=1e-11)
        torch.testing.assert_close(guc, gur, rtol=0, atol=1e-10)
        assert gpc.keys() == gpr.keys() and "Lambda" in gpc
        for name in gpc:
            assert gpc[name].abs().max() > 0, (backend, name)
            torch.testing.assert_close(gpc[name], gpr[name], rtol=0, atol=1e-9, msg=f"{backend}: {name}")


def test_float32_forward_matches_float64():
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~3e-7), so 2e-5 is safe.
    torch.manual_seed(0)
    layer = RGLRU(D, n=N_EXP).double()  # Griffin's init: slow decays, long memory
    u = _input(2, 130, seed=6)
    y64 = layer(u)
    y32 = copy.deepcopy(layer).float()(u.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), y64, rtol=0, atol=2e-5 * y64.abs().max().item())


def test_bad_input_is_rejected_naming_u():
    layer = _layer()
    for method in (layer, layer.to_dsf):
        with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\)"):
            method(_input(2, 5, d=D + 1))
        with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\)"):
            method(_input(2, 5)[0])
        with pytest.raises(TypeError, match="u must have a floating dtype"):
            method(torch.ones(2, 5, D, dtype=torch.int64))


@pytest.mark.parametrize(
    "args,kwargs,exc,name",
    [
        ((0,), {}, ValueError, "d_model"),
        (("8",), {}, TypeError, "d_model"),
        ((8,), {"n": -1}, ValueError, "n"),
        ((8,), {"n": 2.0}, TypeError, "n"),
        ((8,), {"c": 0.0}, ValueError, "c"),
        ((8,), {"c": float("inf")}, ValueError, "c"),
        ((8,), {"c": "8"}, TypeError, "c"),
        ((8,), {"backend": "cuda"}, ValueError, "backend"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, name):
    with pytest.raises(exc, match=rf"^{name} must"):
        RGLRU(*args, **kwargs)


def test_registry_builds_rglru():
    layer = build_mixer("rglru", 8, n=2, c=4.0)
    assert isinstance(layer, RGLRU) and layer.width == 16 and layer.c == 4.0


def test_decays_are_a_to_the_power_c_r_with_nonpositive_log():
    layer = _layer()
    u = 3.0 * _input(2, 40, seed=7)
    A = layer.to_dsf(u).A
    r = torch.sigmoid(u @ layer.gate_a.weight.T + layer.gate_a.bias)
    torch.testing.assert_close(A, torch.sigmoid(layer.Lambda) ** (layer.c * r), rtol=1e-13, atol=0)
    torch.testing.assert_close(A, torch.exp(-layer.c * F.softplus(-layer.Lambda) * r), rtol=1e-13, atol=0)
    assert (torch.log(A) <= 0).all() and (A > 0).all() and (A < 1).all()


def test_init_spreads_a_to_the_c_over_griffin_range():
    torch.manual_seed(0)
    layer = RGLRU(16, n=4)
    a_c = torch.sigmoid(layer.Lambda.double()) ** layer.c
    assert a_c.min() >= 0.9 - 1e-6 and a_c.max() <= 0.999 + 1e-6
    assert a_c.max() - a_c.min() > 0.05  # spread, not a single value


def _constant_gate_layer(a_step: float, g: float):
    """n = 1, W_x = W_out = I and constant gates: h_i = a h_{i-1} + sqrt(1 - a^2) g u_i per channel."""
    layer = RGLRU(D, n=1).double()
    r = 0.5
    with torch.no_grad():
        for lin in (layer.gate_a, layer.gate_x):
            lin.weight.zero_()
        layer.gate_a.bias.fill_(0.0)  # r = sigma(0) = 1/2
        layer.gate_x.bias.fill_(math.log(g) - math.log1p(-g))  # sigma(b_g) = g
        layer.proj_x.weight.copy_(torch.eye(D, dtype=F64))
        layer.proj_out.weight.copy_(torch.eye(D, dtype=F64))
        base = a_step ** (1.0 / (layer.c * r))  # sigma(Lambda)^{c r} = a_step
        layer.Lambda.fill_(math.log(base) - math.log1p(-base))
    return layer


def test_input_normalization_gives_exact_bounded_variance():
    # Var(h_i) for unit-variance i.i.d. input is sum_j Phi_ij^2 = g^2 (1 - a^{2(i+1)}): <= g^2, -> g^2.
    a, g, L = 0.8, 0.7, 25
    layer = _constant_gate_layer(a, g)
    phi = materialize_phi(layer.to_dsf(_input(1, L, seed=8)))[0]  # (L, L, d, d), diagonal blocks
    assert (phi - torch.diag_embed(torch.diagonal(phi, dim1=-2, dim2=-1))).abs().max() == 0
    var = (torch.diagonal(phi, dim1=-2, dim2=-1) ** 2).sum(dim=1)  # (L, d)
    i = torch.arange(L, dtype=F64)[:, None]
    torch.testing.assert_close(var, (g**2 * (1 - a ** (2 * (i + 1)))).expand(L, D), rtol=0, atol=1e-13)


def test_steady_state_variance_is_one_empirically():
    # without the sqrt(1 - a^2) factor the steady-state variance would be 1/(1 - a^2) = 5.26
    layer = _constant_gate_layer(0.9, 1.0 - 1e-12)
    u = _input(128, 200, seed=9)
    h = layer(u)[:, 100:]  # 0.81^100 ~ 1e-9: stationary
    assert abs(h.var().item() - 1.0) < 0.05
