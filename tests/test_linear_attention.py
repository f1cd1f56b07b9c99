"""Linear attention: forward == DSF recurrence == Φ u, the direct quadratic form, A_i = eta_{i-1}/eta_i."""
from functools import partial

import pytest
import torch

from contract import (EPS, F64, HEADS_ARG_ERRORS, LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_backends_agree,
                      assert_float32_close, assert_layer_equals_its_dsf, assert_registry_builds,
                      assert_rejects_bad_input, make_input)
from dsflib import materialize_phi
from dsflib.models.features import elu_plus_one
from dsflib.models.linear_attention import LinearAttention

D, N_EXP = 8, 3
_input = partial(make_input, d=D)


def _layer(heads=1, n=N_EXP, seed=0):
    torch.manual_seed(seed)
    return LinearAttention(D, n=n, heads=heads).double()


def _direct(layer, u):
    """Textbook masked (quadratic) causal linear attention, independent of the scan and the DSF."""
    b, L, d = u.shape
    H, n = layer.heads, layer.n
    q = elu_plus_one(u @ layer.W_Q.weight.T).reshape(b, L, H, n)
    k = elu_plus_one(u @ layer.W_K.weight.T).reshape(b, L, H, n)
    v = (u @ layer.W_V.weight.T).reshape(b, L, H, d // H)
    scores = torch.einsum("bihn,bjhn->bhij", q, k).tril()
    eta = scores.sum(-1)  # (b, H, L)
    y = torch.einsum("bhij,bjhc->bihc", scores / eta[..., None], v).reshape(b, L, d)
    return y @ layer.W_O.weight.T, eta.transpose(1, 2)


def test_elu_plus_one_is_positive_and_matches_definition():
    x = torch.linspace(-30, 5, 101, dtype=F64)
    phi = elu_plus_one(x)
    assert (phi > 0).all()
    # x > 0: the same x + 1; x <= 0: expm1(x) + 1 against exp(x), values <= 1 rounded twice against
    # once (by torch's elementwise kernels, SLEEF or MKL VML): a few eps, 8 eps leaves room
    torch.testing.assert_close(phi, torch.where(x > 0, x + 1, x.exp()), rtol=0, atol=8 * EPS)


@pytest.mark.parametrize("length", RAGGED_LENGTHS)
@pytest.mark.parametrize("heads", [1, 2])
def test_forward_equals_dsf_recurrence_and_phi(length, heads):
    layer = _layer(heads)
    u = _input(2, length)
    y, _ = assert_layer_equals_its_dsf(layer, u, n=N_EXP, A_dim=heads)
    y_direct, eta_direct = _direct(layer, u)
    torch.testing.assert_close(y, y_direct, rtol=0, atol=1e-10)
    torch.testing.assert_close(layer.normalizer(u), eta_direct, rtol=1e-12, atol=0)


def test_A_is_ratio_of_normalizers_paper_convention():
    layer = _layer(heads=2)
    u = _input(2, 20)
    eta = layer.normalizer(u)
    assert eta.shape == (2, 20, 2) and (eta > 0).all()
    A = layer.to_dsf(u).A
    torch.testing.assert_close(A[:, 1:], eta[:, :-1] / eta[:, 1:], rtol=1e-13, atol=0)
    torch.testing.assert_close(A[:, 0], torch.ones_like(A[:, 0]), rtol=0, atol=0)  # eta_{-1} := eta_0
    # eta grows (features are positive), but not necessarily monotonically: A_i may exceed 1
    assert not torch.equal(A[:, 1:], torch.ones_like(A[:, 1:]))


def test_phi_block_is_normalized_kernel_times_value_projection():
    # Φ_ij = W_O blockdiag_h( phi(q_i)^T phi(k_j) / eta_i ) W_V  (paper eqs. 13-15, eta's telescope)
    layer = _layer(heads=2)
    u = _input(1, 9)
    phi = materialize_phi(layer.to_dsf(u))
    q = elu_plus_one(u @ layer.W_Q.weight.T).reshape(1, 9, 2, N_EXP)
    k = elu_plus_one(u @ layer.W_K.weight.T).reshape(1, 9, 2, N_EXP)
    eta = layer.normalizer(u)
    i, j = 7, 3
    w = (q[0, i] * k[0, j]).sum(-1) / eta[0, i]  # (H,)
    mask = torch.repeat_interleave(w, D // 2)
    expected = layer.W_O.weight @ torch.diag(mask) @ layer.W_V.weight
    torch.testing.assert_close(phi[0, i, j], expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("length", LONG_LENGTHS)
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length):
    assert_backends_agree(
        _layer(heads=2), _input(2, length), _input(2, length, seed=5),
        params={"W_Q.weight", "W_K.weight", "W_V.weight", "W_O.weight"},
        out_tol=dict(atol=1e-12), grad_tol=dict(rtol=1e-10, atol=1e-11),
    )


def test_float32_matches_float64():
    # The output is a convex combination of values (positive weights summing to one) followed by W_O,
    # accumulated in fp32: the error is a few float32 ulps (6e-8) times the depth of the sums (measured
    # 1.8e-7 relative); 1e-5 of the output scale leaves a wide margin and still catches an fp16 path
    # (~1e-3) or a wrong formula (O(1)).
    assert_float32_close(_layer(heads=2), _input(2, 130), rel=1e-5)


def test_bad_input():
    layer = LinearAttention(D, n=2)
    assert_rejects_bad_input(layer, D, methods=(layer.normalizer,))


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + HEADS_ARG_ERRORS + [
        ((8,), dict(n=2.5), TypeError, "n must be a positive int, got float"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LinearAttention(*args, **kwargs)


def test_registry_builds_it_and_it_trains_a_step():
    assert_registry_builds("linear_attention", LinearAttention, D, n=4, heads=2)
