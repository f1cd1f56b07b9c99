"""Normalized attention: forward == DSF == Φ u, the paper's A_i = eta_{i-1}/eta_i, exp: A_i = exp(w^T(u_{i-1}-u_i))."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from contract import (F64, HEADS_ARG_ERRORS, LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_backends_agree,
                      assert_close, assert_float32_close, assert_layer_equals_its_dsf, assert_registry_builds,
                      assert_rejects_bad_input, make_input)
from dsflib.models.normalized_attention import NORMS, NormalizedAttention

D, N_EXP = 8, 3
_input = partial(make_input, d=D)


def _layer(heads=1, norm="exp", seed=0):
    torch.manual_seed(seed)
    return NormalizedAttention(D, n=N_EXP, heads=heads, norm=norm).double()


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


@pytest.mark.parametrize("length", RAGGED_LENGTHS)
@pytest.mark.parametrize("heads,norm", [(1, "exp"), (2, "exp"), (2, "softplus"), (2, "sigmoid")])
def test_forward_equals_dsf_recurrence_and_phi(length, heads, norm):
    layer = _layer(heads, norm)
    u = _input(2, length)
    y, _ = assert_layer_equals_its_dsf(layer, u, n=N_EXP, A_dim=heads)
    y_direct, eta_direct = _direct(layer, u)
    # |y - y_direct| relative to max|y_direct|: the outputs are unnormalized sums whose size grows with L
    assert_close(y, y_direct, rel=1e-12)
    torch.testing.assert_close(layer.normalizer(u), eta_direct, rtol=1e-13, atol=0)


@pytest.mark.parametrize("norm", NORMS)
def test_A_is_exactly_ratio_of_normalizers_and_eta_positive(norm):
    layer = _layer(heads=2, norm=norm)
    u = 3 * _input(2, 40)  # wide logits: sigmoid/softplus far from their linear regime
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
    u = _input(2, 30)
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


@pytest.mark.parametrize("length", LONG_LENGTHS)
@pytest.mark.parametrize("norm", ["exp", "sigmoid"])
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length, norm):
    assert_backends_agree(
        _layer(heads=2, norm=norm), _input(2, length), _input(2, length, seed=5),
        params={"W_Q.weight", "W_K.weight", "W_V.weight", "W_O.weight", "W_eta.weight", "W_eta.bias"},
        out_tol=dict(rel=1e-12), grad_tol=dict(rel=1e-11),
    )


@pytest.mark.parametrize("norm", NORMS)
def test_float32_matches_float64(norm):
    # No convex normalization here: y_i sums up to L = 130 terms (q_i^T k_j) v_j / eta_i, accumulated in
    # fp32 (eps 6e-8). Each term is rounded relative to its own size, so the error relative to max|y| is
    # about eps * sqrt(L) * (sum|terms| / |y|), ~1e-6 at most here (measured: 1-2e-7 for all three norms);
    # 2e-5 leaves a 100x margin and still catches an fp16 path (~1e-3) or a wrong formula (O(1)).
    assert_float32_close(_layer(heads=2, norm=norm), _input(2, 130), rel=2e-5)


def test_bad_input():
    layer = NormalizedAttention(D, n=2)
    assert_rejects_bad_input(layer, D, methods=(layer.normalizer,))


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + HEADS_ARG_ERRORS + [
        ((-1,), {}, ValueError, "d_model must be a positive int, got -1"),
        ((8,), dict(norm="relu"), ValueError, r"norm must be one of \('exp', 'softplus', 'sigmoid'\), got 'relu'"),
        ((8,), dict(backend="fast"), ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        NormalizedAttention(*args, **kwargs)


def test_registry_builds_it_and_it_trains_a_step():
    layer = assert_registry_builds("normalized_attention", NormalizedAttention, D, n=4, heads=2, norm="softplus")
    assert layer.norm == "softplus"
