"""GLA: forward == DSF recurrence == Phi u, backends agree, A = I (x) diag(sigma(.)^(1/tau))."""
import copy
import math

import pytest
import torch

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.scan import BACKENDS
from dsflib.models.gla import GLA

F64 = torch.float64
# every torch evaluation of linear_scan, the step-by-step reference last
TORCH_BACKENDS = [b for b in ("chunked", "parallel") if b in BACKENDS] + ["recurrent"]
D, N_EXP, HEADS = 8, 3, 2


def _input(batch, length, seed=1, dtype=F64, d=D):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, d, generator=g, dtype=F64).to(dtype)


def _layer(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"n": N_EXP, "heads": HEADS, "tau": 4.0, **kw}  # tau = 4: faster decays, short tests forget
    return GLA(D, **kw).double()


def _alpha(layer, u):
    """sigma(W_a2 W_a1 u + b)^(1/tau), shape (batch, L, heads, n), from the raw parameters."""
    z = u @ layer.gate_down.weight.T @ layer.gate_up.weight.T + layer.gate_up.bias
    return (torch.sigmoid(z) ** (1.0 / layer.tau)).reshape(*u.shape[:2], layer.heads, layer.n)


def _reference(layer, u):
    """S_i = diag(alpha_i) S_{i-1} + k_i v_i^T, y_i = W_O S_i^T q_i per head, one token at a time."""
    b, L, _ = u.shape
    H, n, dv = layer.heads, layer.n, layer.head_dim
    q = (u @ layer.q_proj.weight.T).reshape(b, L, H, n) / math.sqrt(n)
    k = (u @ layer.k_proj.weight.T).reshape(b, L, H, n)
    v = (u @ layer.v_proj.weight.T).reshape(b, L, H, dv)
    alpha = _alpha(layer, u)
    S = u.new_zeros(b, H, n, dv)
    ys = []
    for i in range(L):
        S = alpha[:, i, :, :, None] * S + k[:, i, :, :, None] * v[:, i, :, None, :]
        ys.append(torch.einsum("bhkv,bhk->bhv", S, q[:, i]).reshape(b, D) @ layer.out_proj.weight.T)
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
        assert gpc.keys() == gpr.keys() and {"gate_down.weight", "gate_up.weight", "gate_up.bias"} <= gpc.keys()
        for name in gpc:
            assert gpc[name].abs().max() > 0, (backend, name)
            torch.testing.assert_close(gpc[name], gpr[name], rtol=0, atol=1e-9, msg=f"{backend}: {name}")


def test_float32_forward_matches_float64():
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~1e-7), so 2e-5 is safe.
    torch.manual_seed(0)
    layer = GLA(D, n=N_EXP, heads=HEADS).double()  # default tau = 16: slow decays
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
        ((8,), {"heads": 3}, ValueError, "heads"),
        ((8,), {"heads": 0}, ValueError, "heads"),
        ((8,), {"tau": 0.0}, ValueError, "tau"),
        ((8,), {"tau": float("nan")}, ValueError, "tau"),
        ((8,), {"tau": None}, TypeError, "tau"),
        ((8,), {"gate_rank": 0}, ValueError, "gate_rank"),
        ((8,), {"backend": "fast"}, ValueError, "backend"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, name):
    with pytest.raises(exc, match=rf"^{name} must"):
        GLA(*args, **kwargs)


def test_registry_builds_gla_with_low_rank_gate():
    layer = build_mixer("gla", 32, n=4, heads=2)
    assert isinstance(layer, GLA) and layer.tau == 16.0
    assert layer.gate_down.weight.shape == (16, 32) and layer.gate_up.weight.shape == (2 * 4, 16)


def test_transition_is_kron_identity_with_gate_power_one_over_tau():
    layer = _layer()
    u = 3.0 * _input(2, 10, seed=7)
    A = layer.to_dsf(u).A
    alpha = _alpha(layer, u)  # (b, L, H, n)
    assert (alpha > 0).all() and (alpha < 1).all()
    # head h owns dv * n state entries: value channel c, key dim k  ->  A = I_dv (x) diag(alpha_h)
    expected = alpha[:, :, :, None, :].expand(2, 10, HEADS, layer.head_dim, N_EXP).reshape(2, 10, -1)
    torch.testing.assert_close(A, expected, rtol=1e-13, atol=0)
    # the per-key gates really differ within a head (not a scalar decay)
    assert (alpha.amax(-1) - alpha.amin(-1)).min() > 1e-4
    torch.testing.assert_close(layer.log_gate(u).exp(), alpha, rtol=1e-13, atol=0)
