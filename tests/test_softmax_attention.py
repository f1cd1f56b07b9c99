"""Softmax attention: exact Φ == forward; Taylor / random-feature DSFs are exact for the attention they define
and approach softmax as the state grows; the feature maps themselves."""
import math
from functools import partial

import pytest
import torch

from contract import (F64, HEADS_ARG_ERRORS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_dsf_reproduces,
                      assert_float32_close, assert_registry_builds, assert_rejects_bad_input,
                      assert_same_outputs_and_gradients, make_input, outputs_and_gradients)
from dsflib import apply_phi, materialize_phi
from dsflib.models.features import (
    positive_random_features,
    random_feature_weights,
    taylor_feature_dim,
    taylor_features,
)
from dsflib.models.softmax_attention import SoftmaxAttention

D = 8
_input = partial(make_input, d=D)


def _layer(heads=1, head_dim=None, seed=0, **kw):
    torch.manual_seed(seed)
    return SoftmaxAttention(D, heads=heads, head_dim=head_dim, **kw).double().eval()


def _proj(layer, u):
    b, L, d = u.shape
    H, m = layer.heads, layer.head_dim
    q = (u @ layer.W_Q.weight.T).reshape(b, L, H, m)
    k = (u @ layer.W_K.weight.T).reshape(b, L, H, m)
    v = (u @ layer.W_V.weight.T).reshape(b, L, H, d // H)
    return q, k, v


def _kernel_attention(layer, u, scores):
    """y = W_O [sum_j (s_ij / sum_j' s_ij') v_j]_heads for causal kernel scores s (b, H, L, L)."""
    b, L, d = u.shape
    _, _, v = _proj(layer, u)
    scores = scores.tril()
    att = scores / scores.sum(-1, keepdim=True)
    return torch.einsum("bhij,bjhc->bihc", att, v).reshape(b, L, d) @ layer.W_O.weight.T


def _softmax_direct(layer, u):
    q, k, _ = _proj(layer, u)
    s = torch.einsum("bihm,bjhm->bhij", q, k) / math.sqrt(layer.head_dim)
    s = s - s.amax(-1, keepdim=True)  # the softmax is shift invariant; keeps exp() small
    return _kernel_attention(layer, u, s.exp())


def _feature_attention_direct(layer, u, fmap):
    """The approximate attention a feature map defines, as a masked matmul (no scan, no DSF)."""
    q, k, _ = _proj(layer, u)
    c = layer.head_dim ** -0.25
    fq, fk = fmap(q * c), fmap(k * c)
    return _kernel_attention(layer, u, torch.einsum("bihn,bjhn->bhij", fq, fk))


def _small_qk_layer(scale=0.75, heads=1, d=4, head_dim=4):
    torch.manual_seed(3)
    layer = SoftmaxAttention(d, heads=heads, head_dim=head_dim).double().eval()
    with torch.no_grad():
        layer.W_Q.weight.mul_(scale)
        layer.W_K.weight.mul_(scale)
    return layer


# ---- feature maps ------------------------------------------------------------------------------

@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
def test_taylor_features_give_truncated_exponential(order):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 5, 3, generator=g, dtype=F64)
    fx, fy = taylor_features(x, order), taylor_features(y, order)
    assert fx.shape == (5, taylor_feature_dim(3, order)) == (5, sum(3**r for r in range(order + 1)))
    s = (x * y).sum(-1)
    expected = sum(s**r / math.factorial(r) for r in range(order + 1))
    torch.testing.assert_close((fx * fy).sum(-1), expected, rtol=1e-13, atol=1e-14)


def test_positive_random_features_are_positive_and_unbiased():
    g = torch.Generator().manual_seed(0)
    x, y = 0.5 * torch.randn(2, 6, 2, 3, generator=g, dtype=F64)  # (6 tokens, 2 heads, m=3)
    W = random_feature_weights(3, 200_000, heads=2, seed=1, dtype=F64)
    assert W.shape == (2, 200_000, 3)
    fx, fy = positive_random_features(x, W), positive_random_features(y, W)
    assert fx.shape == (6, 2, 200_000) and (fx > 0).all()
    est, exact = (fx * fy).sum(-1), (x * y).sum(-1).exp()
    assert ((est - exact).abs() / exact).max() < 0.02  # Monte Carlo with 2e5 samples: std ~ 3e-3
    torch.testing.assert_close(random_feature_weights(3, 4, seed=7), random_feature_weights(3, 4, seed=7))
    shared = positive_random_features(x[:, 0], W[0])
    torch.testing.assert_close(shared, fx[:, 0], rtol=1e-14, atol=0)


def test_feature_maps_reject_bad_arguments():
    with pytest.raises(ValueError, match="order must be a non-negative int, got -1"):
        taylor_features(torch.randn(3, 2), -1)
    with pytest.raises(TypeError, match="order must be a non-negative int, got float"):
        taylor_features(torch.randn(3, 2), 2.0)
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        taylor_features(torch.ones(3, 2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="num_features must be a positive int, got 0"):
        random_feature_weights(3, 0)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., H=2, m=3\)"):
        positive_random_features(torch.randn(5, 3, 3), random_feature_weights(3, 8, heads=2))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., m=3\)"):
        positive_random_features(torch.randn(5, 4), random_feature_weights(3, 8))


# ---- exact layer -----------------------------------------------------------------------------

@pytest.mark.parametrize("length", RAGGED_LENGTHS)
@pytest.mark.parametrize("heads,head_dim", [(1, None), (2, None), (2, 3)])
def test_forward_equals_exact_phi(length, heads, head_dim):
    layer = _layer(heads, head_dim)
    assert layer.head_dim == (head_dim or D // heads)
    u = _input(2, length)
    y = layer(u)
    assert y.shape == u.shape and y.dtype == F64
    phi = layer.phi(u)
    assert phi.shape == (2, length, length, D, D)
    assert (phi[:, torch.ones(length, length, dtype=torch.bool).triu(1)] == 0).all()  # causal
    torch.testing.assert_close(apply_phi(phi, u), y, rtol=0, atol=1e-12)
    torch.testing.assert_close(_softmax_direct(layer, u), y, rtol=0, atol=1e-12)
    # each head's weights over j <= i are a probability distribution
    P = layer.attention_weights(u)
    torch.testing.assert_close(P.sum(-1), torch.ones(2, heads, length, dtype=F64), rtol=0, atol=1e-14)


def test_exact_phi_block_formula():
    layer = _layer(heads=2)
    u = _input(1, 6)
    P = layer.attention_weights(u)
    i, j = 4, 1
    W_O, W_V = layer.W_O.weight, layer.W_V.weight
    blocks = [P[0, h, i, j] * W_O[:, 4 * h:4 * h + 4] @ W_V[4 * h:4 * h + 4] for h in range(2)]
    torch.testing.assert_close(layer.phi(u)[0, i, j], sum(blocks), rtol=0, atol=1e-14)


def test_gradients_of_forward_match_phi_path_and_backend_is_ignored():
    # there is no scan: `backend` is validated, stored and ignored (masked fused matmul on every device)
    layer = _layer(heads=2)
    u, w = _input(2, 63), _input(2, 63, seed=5)
    forward = outputs_and_gradients(layer, u, w)
    assert set(forward[1]) == {"W_Q.weight", "W_K.weight", "W_V.weight", "W_O.weight", "u"}
    via_phi = outputs_and_gradients(layer, u, w, fn=lambda x: apply_phi(layer.phi(x), x))
    assert_same_outputs_and_gradients(forward, via_phi, out_tol=dict(atol=1e-12),
                                      grad_tol=dict(rtol=1e-10, atol=1e-11))
    for backend in ("chunked", "parallel", "recurrent"):
        layer.backend = backend
        torch.testing.assert_close(layer(u), forward[0], rtol=0, atol=0)


def test_dropout_only_in_training_mode():
    layer = _layer(heads=2, dropout=0.5)
    u = _input(2, 20)
    y_eval = layer(u)
    torch.testing.assert_close(apply_phi(layer.phi(u), u), y_eval, rtol=0, atol=1e-12)
    layer.train()
    assert (layer(u) - y_eval).abs().max() > 1e-3


def test_float32_matches_float64():
    # A convex combination of values (softmax weights) then W_O; fp32 rounding of scores, exp and sums gives
    # errors of a few float32 ulps (6e-8) relative to the output scale (measured ~1e-7); 1e-5 leaves margin
    # and still catches an fp16 path (~1e-3) or a wrong formula.
    assert_float32_close(_layer(heads=2), _input(2, 130), rel=1e-5)


# ---- finite-state approximations -------------------------------------------------------------

@pytest.mark.parametrize("length", [1, 7, 24])
@pytest.mark.parametrize("heads,head_dim", [(1, 3), (2, 2)])
@pytest.mark.parametrize("features,kw", [("taylor", dict(order=1)), ("taylor", dict(order=3)),
                                         ("random", dict(num_features=32, seed=4))])
def test_approximate_dsf_is_exact_for_the_attention_it_defines(length, heads, head_dim, features, kw):
    layer = _layer(heads, head_dim)
    with torch.no_grad():  # small |q^T k| so that the odd Taylor orders stay positive
        layer.W_Q.weight.mul_(0.3)
        layer.W_K.weight.mul_(0.3)
    u = _input(2, length)
    dsf = layer.to_dsf(u, features, **kw)
    n = taylor_feature_dim(head_dim, kw["order"]) if features == "taylor" else kw["num_features"]
    assert (dsf.n, dsf.N, dsf.d) == (n, n * D, D) and dsf.A.shape == (2, length, heads)
    if features == "taylor":
        fmap = lambda x: taylor_features(x, kw["order"])  # noqa: E731
    else:
        W = random_feature_weights(head_dim, kw["num_features"], heads=heads, seed=kw["seed"], dtype=F64)
        fmap = lambda x: positive_random_features(x, W)  # noqa: E731
    assert_dsf_reproduces(dsf, u, _feature_attention_direct(layer, u, fmap), atol=1e-10)
    # paper convention: A_i = eta_{i-1}/eta_i with eta_i = phi(q_i)^T sum_{j<=i} phi(k_j)
    fq, fk = layer.feature_maps(u, features, **kw)
    eta = (fq * fk.cumsum(1)).sum(-1)
    torch.testing.assert_close(dsf.A[:, 1:], eta[:, :-1] / eta[:, 1:], rtol=1e-12, atol=0)


def _taylor_errors(orders=(1, 2, 3, 4)):
    layer = _small_qk_layer()
    u = _input(1, 8, seed=2, d=4)
    q, k, _ = _proj(layer, u)
    s_max = torch.einsum("bihm,bjhm->bhij", q, k).abs().max().item() / math.sqrt(layer.head_dim)
    exact = layer.phi(u)
    errs = [(materialize_phi(layer.to_dsf(u, "taylor", order=p)) - exact).abs().max().item() for p in orders]
    return s_max, errs


def test_taylor_approximation_improves_strictly_with_order():
    s_max, errs = _taylor_errors()
    assert 0.5 < s_max <= 1.0, s_max  # the regime of the claim: |q^T k|/sqrt(m) <~ 1
    print(f"max|q^T k|/sqrt(m) = {s_max:.3f}; max|Phi_taylor(p) - Phi_exact| for p=1..4: {errs}")
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.02 * errs[0], errs  # each order gains a factor ~ (p+1)/s_max, not a marginal one


def test_random_features_approximation_improves_with_number_of_features():
    layer = _small_qk_layer(scale=0.5)
    u = _input(1, 6, seed=2, d=4)
    exact = layer.phi(u)
    means = []
    for R in (16, 256, 4096):
        errs = [(materialize_phi(layer.to_dsf(u, "random", num_features=R, seed=s)) - exact).abs().max().item()
                for s in range(8)]
        means.append(sum(errs) / len(errs))
    print(f"mean over 8 seeds of max|Phi_random(R) - Phi_exact| for R = 16, 256, 4096: {means}")
    # Monte Carlo error ~ 1/sqrt(R): a factor ~4 per step (over 64 seeds: 3.8 and 3.6; the worst group of 8
    # seeds: 2.5 and 2.7); require 1.5 per step
    assert means[0] > 1.5 * means[1] and means[1] > 1.5 * means[2], means


def test_taylor_guard_rejects_non_positive_kernel():
    layer = _layer()
    with torch.no_grad():  # k = -3 q: q^T k / sqrt(m) = -3|q|^2/sqrt(m) is very negative on the diagonal
        layer.W_K.weight.copy_(-3 * layer.W_Q.weight)
    u = _input(2, 5)
    with pytest.raises(ValueError, match="order-1 Taylor kernel is not positive for this input"):
        layer.to_dsf(u, "taylor", order=1)
    with pytest.raises(ValueError, match="order-3 Taylor kernel is not positive"):
        layer.to_dsf(u, "taylor", order=3)
    # even truncations of exp are positive everywhere, so they always give a valid DSF
    dsf = layer.to_dsf(u, "taylor", order=2)
    assert (dsf.A > 0).all()


def test_to_dsf_rejects_bad_arguments():
    layer = _layer()
    u = _input(2, 4)
    with pytest.raises(ValueError, match=r"features must be one of \('taylor', 'random'\), got 'exact'"):
        layer.to_dsf(u, "exact")
    with pytest.raises(ValueError, match="order must be a non-negative int, got -2"):
        layer.to_dsf(u, "taylor", order=-2)
    with pytest.raises(ValueError, match="num_features must be a positive int, got 0"):
        layer.to_dsf(u, "random", num_features=0)


# ---- bad input / arguments --------------------------------------------------------------------

def test_bad_input():
    layer = SoftmaxAttention(D, heads=2)
    assert_rejects_bad_input(layer, D, methods=(layer.phi, layer.attention_weights, layer.feature_maps))


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + HEADS_ARG_ERRORS + [
        ((8,), dict(head_dim=0), ValueError, "head_dim must be a positive int, got 0"),
        ((8,), dict(n=-4), ValueError, "n must be a positive int, got -4"),
        ((8,), dict(dropout=1.0), ValueError, r"dropout must be a float in \[0, 1\), got 1.0"),
        ((8,), dict(backend="gpu"), ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SoftmaxAttention(*args, **kwargs)


def test_registry_builds_it_accepts_n_and_it_trains_a_step():
    # n: uniform signature; the exact state is infinite
    layer = assert_registry_builds("softmax_attention", SoftmaxAttention, D, heads=2, n=16)
    assert layer.n == 16


def test_normalizer_is_the_softmax_denominator():
    torch.manual_seed(3)
    layer = SoftmaxAttention(6, heads=2).double()
    u = torch.randn(2, 11, 6, dtype=F64)
    eta = layer.normalizer(u)
    assert eta.shape == (2, 11, 2)
    q = layer.W_Q(u).unflatten(-1, (2, 3))
    k = layer.W_K(u).unflatten(-1, (2, 3))
    scores = torch.einsum("bihm,bjhm->bhij", q, k) / 3**0.5
    direct = scores.exp().tril().sum(-1).transpose(1, 2)  # exp of the causal scores, summed over j <= i
    torch.testing.assert_close(eta, direct, rtol=1e-12, atol=0)
    # the attention weights are exp(scores) / eta
    P = layer.attention_weights(u)
    torch.testing.assert_close(P, (scores.exp() / eta.transpose(1, 2)[..., None]).tril(), rtol=1e-12, atol=1e-15)
