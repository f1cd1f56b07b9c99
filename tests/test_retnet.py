"""Retention: forward == DSF recurrence == Phi u, backends agree, gamma^(i-j) decay, time-invariant A."""
import copy
import math

import pytest
import torch

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.scan import BACKENDS
from dsflib.models.retnet import Retention

F64 = torch.float64
# every torch evaluation of linear_scan, the step-by-step reference last
TORCH_BACKENDS = [b for b in ("chunked", "parallel") if b in BACKENDS] + ["recurrent"]
D, N_EXP, HEADS = 8, 3, 2


def _input(batch, length, seed=1, dtype=F64, d=D):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, d, generator=g, dtype=F64).to(dtype)


def _layer(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"n": N_EXP, "heads": HEADS, **kw}
    return Retention(D, **kw).double()


def _qkv(layer, u):
    b, L, _ = u.shape
    q = (u @ layer.q_proj.weight.T).reshape(b, L, layer.heads, layer.n)
    k = (u @ layer.k_proj.weight.T).reshape(b, L, layer.heads, layer.n) / math.sqrt(layer.n)
    v = (u @ layer.v_proj.weight.T).reshape(b, L, layer.heads, layer.head_dim)
    return q, k, v


def _reference(layer, u):
    """y_i = W_O sum_{j<=i} gamma_h^{i-j} (q_i^T k_j) v_j per head, written as the sum itself."""
    q, k, v = _qkv(layer, u)
    L = u.shape[1]
    i = torch.arange(L)
    expo = (i[:, None] - i[None, :]).clamp_min(0).to(F64)
    decay = layer.gammas.to(F64)[:, None, None] ** expo * (i[:, None] >= i[None, :])  # (H, L, L)
    scores = torch.einsum("bihk,bjhk->bhij", q, k) * decay
    y = torch.einsum("bhij,bjhv->bihv", scores, v).reshape(u.shape)
    return y @ layer.out_proj.weight.T


@pytest.mark.parametrize("length", [1, 7, 63, 130])
def test_forward_equals_dsf_recurrence_and_phi(length):
    layer = _layer()
    u = _input(2, length, seed=length)
    y = layer(u)
    assert y.shape == u.shape and y.dtype == F64
    dsf = layer.to_dsf(u)
    assert (dsf.N, dsf.n, dsf.d) == (N_EXP * D, N_EXP, D)
    assert dsf.A.shape == (2, length, HEADS) and dsf.scalar_A and dsf.D is None
    torch.testing.assert_close(recurrence(dsf, u), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(apply_phi(materialize_phi(dsf), u), y, rtol=0, atol=1e-10)


def test_forward_matches_the_retention_sum():
    layer = _layer()
    u = _input(2, 40, seed=3)
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
        assert gpc.keys() == gpr.keys() == {"q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight"}
        for name in gpc:
            assert gpc[name].abs().max() > 0, (backend, name)
            torch.testing.assert_close(gpc[name], gpr[name], rtol=0, atol=1e-9, msg=f"{backend}: {name}")


def test_float32_forward_matches_float64():
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~2e-7), so 2e-5 is safe.
    layer = _layer()
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
        ((8,), {"heads": True}, TypeError, "heads"),
        ((8,), {"heads": 2, "gammas": [0.9]}, ValueError, "gammas"),
        ((8,), {"gammas": [1.5]}, ValueError, "gammas"),
        ((8,), {"gammas": [0.0]}, ValueError, "gammas"),
        ((8,), {"gammas": ["0.9"]}, TypeError, "gammas"),
        ((8,), {"gammas": 0.9}, TypeError, "gammas"),
        ((8,), {"backend": "triton"}, ValueError, "backend"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, name):
    with pytest.raises(exc, match=rf"^{name} must"):
        Retention(*args, **kwargs)


def test_registry_builds_retention_with_retnet_default_decays():
    layer = build_mixer("retnet", 16, n=4, heads=4)
    assert isinstance(layer, Retention)
    expected = torch.tensor([1 - 2.0 ** (-5 - h) for h in range(4)], dtype=F64)
    torch.testing.assert_close(layer.gammas, expected, rtol=0, atol=0)
    custom = Retention(8, heads=2, gammas=torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(custom.gammas, torch.tensor([0.5, 1.0], dtype=F64), rtol=0, atol=0)


def test_phi_blocks_decay_as_gamma_power_times_qk():
    layer = _layer(gammas=[0.7, 0.95])
    L = 12
    u = _input(1, L, seed=7)
    phi = materialize_phi(layer.to_dsf(u))[0]  # (L, L, d, d)
    q, k, _ = _qkv(layer, u)
    dv = layer.head_dim
    WO = layer.out_proj.weight.reshape(D, HEADS, dv)
    WV = layer.v_proj.weight.reshape(HEADS, dv, D)
    for i in range(L):
        for j in range(L):
            if j > i:
                assert phi[i, j].abs().max() == 0
                continue
            expected = sum(
                layer.gammas[h] ** (i - j) * (q[0, i, h] @ k[0, j, h]) * (WO[:, h] @ WV[h]) for h in range(HEADS)
            )
            torch.testing.assert_close(phi[i, j], expected, rtol=0, atol=1e-13)


def test_transition_is_time_invariant_while_b_and_c_vary():
    layer = _layer(gammas=[0.7, 0.95])
    u = _input(2, 9, seed=8)
    dsf = layer.to_dsf(u)
    expected = torch.tensor([0.7, 0.95], dtype=F64).expand(2, 9, HEADS)
    torch.testing.assert_close(dsf.A, expected, rtol=1e-15, atol=0)
    assert torch.equal(dsf.A, dsf.A[:1, :1].expand_as(dsf.A))  # the same A_i at every i and batch
    # B_i, C_i depend on the input (k_i, q_i) - the opposite of an LTI system
    assert (dsf.B[:, 1:] - dsf.B[:, :1]).abs().amax(dim=(2, 3)).min() > 1e-3
    assert (dsf.C[:, 1:] - dsf.C[:, :1]).abs().amax(dim=(2, 3)).min() > 1e-3
    # and with the input-independent A, a different input changes B and C but not A
    other = layer.to_dsf(_input(2, 9, seed=99))
    assert torch.equal(other.A, dsf.A) and not torch.allclose(other.B, dsf.B)
