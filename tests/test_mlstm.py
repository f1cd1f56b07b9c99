"""mLSTM: forward == DSF recurrence == Phi u, backends agree, the normaliser, scalar A per head."""
import copy
import math

import pytest
import torch

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.scan import BACKENDS
from dsflib.models.mlstm import MLSTM

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
    layer = MLSTM(D, **kw).double()
    with torch.no_grad():  # forget gates near 0.7-0.9, so the short test sequences forget
        layer.forget_gate.bias.copy_(torch.linspace(1.0, 2.0, layer.heads, dtype=F64))
    return layer


def _reference(layer, u):
    """The mLSTM equations, one token at a time, from the raw parameters; returns (y, normaliser)."""
    b, L, _ = u.shape
    H, n, dv = layer.heads, layer.n, layer.head_dim
    q = (u @ layer.q_proj.weight.T).reshape(b, L, H, n)
    k = (u @ layer.k_proj.weight.T).reshape(b, L, H, n) / math.sqrt(n)
    v = (u @ layer.v_proj.weight.T).reshape(b, L, H, dv)
    f = torch.sigmoid(u @ layer.forget_gate.weight.T + layer.forget_gate.bias)  # (b, L, H)
    iota = torch.sigmoid(u @ layer.input_gate.weight.T + layer.input_gate.bias)
    o = torch.sigmoid(u @ layer.output_gate.weight.T + layer.output_gate.bias)  # (b, L, d)
    C = u.new_zeros(b, H, dv, n)
    nvec = u.new_zeros(b, H, n)
    ys, norms = [], []
    for i in range(L):
        C = f[:, i, :, None, None] * C + iota[:, i, :, None, None] * v[:, i, :, :, None] * k[:, i, :, None, :]
        nvec = f[:, i, :, None] * nvec + iota[:, i, :, None] * k[:, i]
        norm = torch.einsum("bhk,bhk->bh", nvec, q[:, i]).abs().clamp_min(1.0)
        h_hat = torch.einsum("bhvk,bhk->bhv", C, q[:, i]) / norm[..., None]
        ys.append((o[:, i] * h_hat.reshape(b, D)) @ layer.out_proj.weight.T)
        norms.append(norm)
    return torch.stack(ys, 1), torch.stack(norms, 1)


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


def test_forward_matches_the_equations_on_both_branches_of_the_max():
    layer = _layer()
    u = 4.0 * _input(2, 30, seed=3)  # large inputs: |n_i^T q_i| exceeds 1 at some tokens
    y_ref, norm_ref = _reference(layer, u)
    torch.testing.assert_close(layer(u), y_ref, rtol=0, atol=1e-12)
    norm = layer.normalizer(u)
    torch.testing.assert_close(norm, norm_ref, rtol=0, atol=1e-12)
    assert (norm == 1).any() and (norm > 1.5).any()


@pytest.mark.parametrize("length", [63, 130])
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length):
    layer = _layer()
    u0 = 3.0 * _input(2, length, seed=4)  # exercises the normaliser's |.| > 1 branch too
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
        assert gpc.keys() == gpr.keys()
        assert {"forget_gate.weight", "input_gate.bias", "output_gate.weight"} <= gpc.keys()
        for name in gpc:
            assert gpc[name].abs().max() > 0, (backend, name)
            torch.testing.assert_close(gpc[name], gpr[name], rtol=0, atol=1e-9, msg=f"{backend}: {name}")


def test_float32_forward_matches_float64():
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~3e-7), so 2e-5 is safe. The
    # max(|.|, 1) is continuous, so it adds no jump.
    torch.manual_seed(0)
    layer = MLSTM(D, n=N_EXP, heads=HEADS).double()  # default init: forget gates 0.95-0.998
    u = _input(2, 130, seed=6)
    y64 = layer(u)
    y32 = copy.deepcopy(layer).float()(u.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), y64, rtol=0, atol=2e-5 * y64.abs().max().item())


def test_bad_input_is_rejected_naming_u():
    layer = _layer()
    for method in (layer, layer.to_dsf, layer.normalizer):
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
        ((8,), {"n": "16"}, TypeError, "n"),
        ((8,), {"heads": 5}, ValueError, "heads"),
        ((8,), {"heads": -2}, ValueError, "heads"),
        ((8,), {"backend": "auto "}, ValueError, "backend"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, name):
    with pytest.raises(exc, match=rf"^{name} must"):
        MLSTM(*args, **kwargs)


def test_registry_builds_mlstm_with_long_memory_init():
    layer = build_mixer("mlstm", 16, n=4, heads=4)
    assert isinstance(layer, MLSTM)
    f0 = torch.sigmoid(layer.forget_gate.bias)
    assert f0.min() > 0.95 - 1e-6 and f0.max() < 0.998


def test_normalizer_is_at_least_one():
    layer = _layer()
    for scale in (0.1, 1.0, 5.0):
        norm = layer.normalizer(scale * _input(2, 50, seed=8))
        assert norm.shape == (2, 50, HEADS) and (norm >= 1).all()


def test_dsf_transition_is_the_scalar_forget_gate_and_c_carries_the_normaliser():
    layer = _layer()
    u = 4.0 * _input(2, 12, seed=9)
    dsf = layer.to_dsf(u)
    f = torch.sigmoid(u @ layer.forget_gate.weight.T + layer.forget_gate.bias)
    assert dsf.scalar_A and dsf.A.shape == (2, 12, HEADS)
    torch.testing.assert_close(dsf.A, f, rtol=1e-13, atol=0)
    # C_i = W_O diag(o_i) (I (x) q_i^T) / norm_i: scaling the head's normaliser back gives the unnormalised map
    q = (u @ layer.q_proj.weight.T).reshape(2, 12, HEADS, N_EXP)
    o = torch.sigmoid(u @ layer.output_gate.weight.T + layer.output_gate.bias)
    norm = layer.normalizer(u).repeat_interleave(layer.head_dim, dim=-1)  # (b, L, d): per value channel
    dv = layer.head_dim
    q_rep = q.repeat_interleave(dv, dim=2)  # (b, L, d, n): channel c reads its head's query
    expected = (layer.out_proj.weight[None, None, :, :, None] * (o / norm)[:, :, None, :, None]) * q_rep[:, :, None]
    torch.testing.assert_close(dsf.C, expected.reshape(2, 12, D, D * N_EXP), rtol=0, atol=1e-13)
