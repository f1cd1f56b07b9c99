"""Normalized attention: forward == DSF == Φ u, the paper's A_i = eta_{i-1}/eta_i, exp: A_i = exp(w^T(u_{i-1}-u_i))."""
import copy

import pytest
import torch
import torch.nn.functional as F

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.models.normalized_attention import NORMS, NormalizedAttention

F64 = torch.float64
D, N_EXP = 8, 3


def _layer(heads=1, norm="exp", seed=0):
    torch.manual_seed(seed)
    return NormalizedAttention(D, n=N_EXP, heads=heads, norm=norm).double()


def _input(length, batch=2, seed=1, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, D, generator=g, dtype=F64).to(dtype)


_F = {"exp": torch.exp, "softplus": F.softplus, "sigmoid": torch.sigmoid}


def _direct(layer, u):
    """Masked quadratic form y_i = W_O (1/eta_i) sum_{j<=i} (q_i^T k_j) v_j, independent of scan and DSF."""
    b, L, d = u.shape
    H, n = layer.heads, layer.n
    q = (u @ layer.W_Q.weight.T).reshape(b, L, H, n)
    k = (u @ layer.W_K.weight.T).reshape(b, L, H, n)
    v = (u @ layer.W_V.weight.T).reshape(b, L, H, d // H)
    eta = _F[layer.norm](u @ layer.W_eta.weight.T + layer.W_eta.bias)  # (b, L, H)
    scores = torch.einsum("bihn,bjhn->bhij", q, k).tril() / eta.transpose(1, 2)[..., None]
    y = torch.einsum("bhij,bjhc->bihc", scores, v).reshape(b, L, d)
    return y @ layer.W_O.weight.T, eta


def _close(a, b, rel):
    """|a - b| <= rel * max|b|: the outputs are unnormalized sums whose size grows with L."""
    err = (a - b).abs().max() / b.abs().max().clamp_min(1e-300)
    assert err <= rel, f"relative error {err.item():.3g} > {rel}"


@pytest.mark.parametrize("length", [1, 7, 63, 130])
@pytest.mark.parametrize("heads,norm", [(1, "exp"), (2, "exp"), (2, "softplus"), (2, "sigmoid")])
def test_forward_equals_dsf_recurrence_and_phi(length, heads, norm):
    layer = _layer(heads, norm)
    u = _input(length)
    y = layer(u)
    assert y.shape == u.shape and y.dtype == F64
    dsf = layer.to_dsf(u)
    assert (dsf.N, dsf.n, dsf.d) == (N_EXP * D, N_EXP, D)
    assert dsf.A.shape == (2, length, heads) and dsf.D is None
    torch.testing.assert_close(recurrence(dsf, u), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(apply_phi(materialize_phi(dsf), u), y, rtol=0, atol=1e-10)
    y_direct, eta_direct = _direct(layer, u)
    _close(y, y_direct, 1e-12)
    torch.testing.assert_close(layer.normalizer(u), eta_direct, rtol=1e-13, atol=0)


@pytest.mark.parametrize("norm", NORMS)
def test_A_is_exactly_ratio_of_normalizers_and_eta_positive(norm):
    layer = _layer(heads=2, norm=norm)
    u = 3 * _input(40)  # wide logits: sigmoid/softplus far from their linear regime
    eta = layer.normalizer(u)
    assert eta.shape == (2, 40, 2) and (eta > 0).all()
    A = layer.to_dsf(u).A
    torch.testing.assert_close(A[:, 1:], eta[:, :-1] / eta[:, 1:], rtol=1e-14, atol=0)
    torch.testing.assert_close(A[:, 0], torch.ones_like(A[:, 0]), rtol=0, atol=0)  # eta_{-1} := eta_0
    assert (A > 0).all()
    if norm == "sigmoid":
        assert (eta < 1).all()


def test_exp_norm_A_depends_only_on_input_differences_bias_cancels():
    layer = _layer(heads=2, norm="exp")
    with torch.no_grad():
        layer.W_eta.bias.copy_(torch.tensor([3.0, -2.0], dtype=F64))
    u = _input(30)
    w = layer.W_eta.weight  # (H, d)
    expected = torch.exp((u[:, :-1] - u[:, 1:]) @ w.T)
    A = layer.to_dsf(u).A
    torch.testing.assert_close(A[:, 1:], expected, rtol=1e-13, atol=0)
    with torch.no_grad():
        layer.W_eta.bias.zero_()
    torch.testing.assert_close(layer.to_dsf(u).A, A, rtol=1e-13, atol=0)
    # ...while for softplus the bias does matter
    other = _layer(heads=2, norm="softplus")
    A0 = other.to_dsf(u).A
    with torch.no_grad():
        other.W_eta.bias.add_(1.0)
    assert (other.to_dsf(u).A - A0).abs().max() > 1e-3


@pytest.mark.parametrize("length", [63, 130])
@pytest.mark.parametrize("norm", ["exp", "sigmoid"])
def test_chunked_and_recurrent_backends_agree_with_gradients(length, norm):
    layer = _layer(heads=2, norm=norm)
    u = _input(length).requires_grad_()
    w = _input(length, seed=5)

    def run(backend):
        layer.backend = backend
        layer.zero_grad()
        u.grad = None
        y = layer(u)
        (y * w).sum().backward()
        return y.detach(), {n: p.grad.clone() for n, p in layer.named_parameters()}, u.grad.clone()

    y_c, g_c, gu_c = run("chunked")
    y_r, g_r, gu_r = run("recurrent")
    _close(y_c, y_r, 1e-12)
    assert set(g_c) == {"W_Q.weight", "W_K.weight", "W_V.weight", "W_O.weight", "W_eta.weight", "W_eta.bias"}
    for name in g_c:
        _close(g_c[name], g_r[name], 1e-11)
    _close(gu_c, gu_r, 1e-11)


@pytest.mark.parametrize("norm", NORMS)
def test_float32_matches_float64(norm):
    # No convex normalization here: y_i sums up to L = 130 terms (q_i^T k_j) v_j / eta_i, accumulated in
    # fp32 (eps 6e-8). Each term is rounded relative to its own size, so the error relative to max|y| is
    # about eps * sqrt(L) * (sum|terms| / |y|), ~1e-6 at most here (measured: 1-2e-7 for all three norms);
    # 2e-5 leaves a 100x margin and still catches an fp16 path (~1e-3) or a wrong formula (O(1)).
    layer = _layer(heads=2, norm=norm)
    u = _input(130)
    y64 = layer(u)
    y32 = copy.deepcopy(layer).float()(u.float())
    assert y32.dtype == torch.float32
    _close(y32.double(), y64, 2e-5)


def test_bad_input():
    layer = NormalizedAttention(D, n=2)
    with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) = \(\*, \*, 8\)"):
        layer(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) \(3 dims\)"):
        layer(torch.randn(5, 8))
    with pytest.raises(TypeError, match=r"u must have a floating dtype"):
        layer(torch.ones(2, 5, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"u must have shape"):
        layer.to_dsf(torch.randn(2, 5, 9))
    with pytest.raises(TypeError, match=r"u must be a torch.Tensor"):
        layer.normalizer(None)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(d_model=-1), ValueError, "d_model must be a positive int, got -1"),
        (dict(n=0), ValueError, "n must be a positive int, got 0"),
        (dict(heads=True), TypeError, "heads must be a positive int, got bool"),
        (dict(heads=3), ValueError, "heads must divide d_model=8, got heads=3"),
        (dict(norm="relu"), ValueError, r"norm must be one of \('exp', 'softplus', 'sigmoid'\), got 'relu'"),
        (dict(backend="fast"), ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, match):
    args = dict(d_model=D)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        NormalizedAttention(args.pop("d_model"), **args)


def test_registry_builds_it_and_it_trains_a_step():
    layer = build_mixer("normalized_attention", D, n=4, heads=2, norm="softplus")
    assert isinstance(layer, NormalizedAttention) and layer.norm == "softplus"
    u = torch.randn(2, 16, D)
    F.mse_loss(layer(u), u.flip(1)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
