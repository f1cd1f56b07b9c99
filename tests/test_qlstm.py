"""qLSTM: forward == DSF recurrence == Phi u, backends agree, the eq.-23 reversed-sigmoid forget gate."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.scan import BACKENDS
from dsflib.models.qlstm import QLSTM

F64 = torch.float64
# every torch evaluation of linear_scan, the step-by-step reference last
TORCH_BACKENDS = [b for b in ("chunked", "parallel") if b in BACKENDS] + ["recurrent"]
D, N_EXP = 8, 2
VARIANTS = [pytest.param(False, id="sigmoid"), pytest.param(True, id="reversed")]


def _input(batch, length, seed=1, dtype=F64, d=D):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, d, generator=g, dtype=F64).to(dtype)


def _layer(reversed_sigmoid=False, seed=0, **kw):
    torch.manual_seed(seed)
    layer = QLSTM(D, n=N_EXP, reversed_sigmoid=reversed_sigmoid, **kw).double()
    if reversed_sigmoid:  # move alpha away from 1 so the exponent is really tested
        with torch.no_grad():
            layer.alpha_param.fill_(math.log(math.expm1(1.7)))
    return layer


def _reference(layer, u):
    """The paper's equations, one token at a time, from the raw parameters."""
    m = layer.width
    x = u @ layer.proj_in.weight.T
    z = u @ layer.gates.weight.T + layer.gates.bias
    z_f, z_i, z_o = z[..., :m], z[..., m : 2 * m], z[..., 2 * m :]
    f = torch.sigmoid(-z_f) ** layer.alpha if layer.reversed_sigmoid else torch.sigmoid(z_f)
    c = u.new_zeros(u.shape[0], m)
    ys = []
    for i in range(u.shape[1]):
        c = f[:, i] * c + torch.sigmoid(z_i[:, i]) * x[:, i]
        ys.append((torch.sigmoid(z_o[:, i]) * c) @ layer.proj_out.weight.T)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("length", [1, 7, 63, 130])
@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_forward_equals_dsf_recurrence_and_phi(length, reversed_sigmoid):
    layer = _layer(reversed_sigmoid)
    u = _input(2, length, seed=length)
    y = layer(u)
    assert y.shape == u.shape and y.dtype == F64
    dsf = layer.to_dsf(u)
    assert (dsf.N, dsf.n, dsf.d) == (N_EXP * D, N_EXP, D)
    assert dsf.A.shape == (2, length, N_EXP * D) and not dsf.scalar_A and dsf.D is None
    torch.testing.assert_close(recurrence(dsf, u), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(apply_phi(materialize_phi(dsf), u), y, rtol=0, atol=1e-10)


@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_forward_matches_the_equations(reversed_sigmoid):
    layer = _layer(reversed_sigmoid)
    u = _input(2, 20, seed=3)
    torch.testing.assert_close(layer(u), _reference(layer, u), rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", [63, 130])
@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length, reversed_sigmoid):
    layer = _layer(reversed_sigmoid)
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
        assert gpc.keys() == gpr.keys() and ("alpha_param" in gpc) == reversed_sigmoid
        for name in gpc:
            assert gpc[name].abs().max() > 0, (backend, name)
            torch.testing.assert_close(gpc[name], gpr[name], rtol=0, atol=1e-9, msg=f"{backend}: {name}")


@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_float32_forward_matches_float64(reversed_sigmoid):
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~2e-7), so 2e-5 is safe.
    layer = _layer(reversed_sigmoid)
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
        ((8.0,), {}, TypeError, "d_model"),
        ((8,), {"n": 0}, ValueError, "n"),
        ((8,), {"n": 1.5}, TypeError, "n"),
        ((8,), {"reversed_sigmoid": 1}, TypeError, "reversed_sigmoid"),
        ((8,), {"backend": "gpu"}, ValueError, "backend"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, name):
    with pytest.raises(exc, match=rf"^{name} must"):
        QLSTM(*args, **kwargs)


def test_registry_builds_qlstm():
    layer = build_mixer("qlstm", 8, n=3, reversed_sigmoid=True)
    assert isinstance(layer, QLSTM) and layer.width == 24


def test_reversed_sigmoid_forget_gate_is_eq23_and_s6_form():
    layer = _layer(True)
    u = _input(2, 11, seed=7)
    m = layer.width
    z = u @ layer.gates.weight[:m].T + layer.gates.bias[:m]
    alpha = F.softplus(layer.alpha_param)
    assert abs(alpha.item() - 1.7) < 1e-12
    A = layer.to_dsf(u).A
    # eq. 23: sigma(-z)^alpha, and the S6 form exp(-alpha softplus(z)) (exp(Delta a) with Delta = softplus)
    torch.testing.assert_close(A, torch.sigmoid(-z) ** alpha, rtol=1e-13, atol=0)
    torch.testing.assert_close(A, torch.exp(-alpha * F.softplus(z)), rtol=1e-13, atol=0)
    # and differs from the plain sigmoid gate of the same logits
    assert (A - torch.sigmoid(z)).abs().max() > 0.1


def test_alpha_starts_at_one():
    layer = QLSTM(8, reversed_sigmoid=True)
    assert abs(layer.alpha.item() - 1.0) < 1e-6
    assert QLSTM(8).alpha is None and not hasattr(QLSTM(8), "alpha_param")


@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_forget_gates_lie_in_unit_interval_and_start_with_long_memory(reversed_sigmoid):
    layer = _layer(reversed_sigmoid)
    A = layer.to_dsf(4.0 * _input(2, 30, seed=8)).A
    assert (A > 0).all() and (A < 1).all()
    fresh = QLSTM(8, n=2, reversed_sigmoid=reversed_sigmoid).double()
    A0 = fresh.to_dsf(torch.zeros(1, 1, 8, dtype=F64)).A.flatten()
    torch.testing.assert_close(A0, torch.linspace(0.9, 0.95, 16, dtype=F64), rtol=0, atol=1e-6)


def test_dsf_matrices_have_the_qlstm_structure():
    layer = _layer(True)
    u = _input(1, 5, seed=9)
    dsf = layer.to_dsf(u)
    m = layer.width
    z = u @ layer.gates.weight.T + layer.gates.bias
    iota, o = torch.sigmoid(z[..., m : 2 * m]), torch.sigmoid(z[..., 2 * m :])
    # B_i = diag(iota_i) W_in, C_i = W_out diag(o_i)
    torch.testing.assert_close(dsf.B, iota[..., None] * layer.proj_in.weight, rtol=0, atol=1e-14)
    torch.testing.assert_close(dsf.C, layer.proj_out.weight * o[:, :, None, :], rtol=0, atol=1e-14)
