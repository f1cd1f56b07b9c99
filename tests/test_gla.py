"""GLA: forward == DSF recurrence == Phi u, backends agree, A = I (x) diag(sigma(.)^(1/tau))."""
import math
from functools import partial

import pytest
import torch

from contract import (HEADS_ARG_ERRORS, LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_backends_agree,
                      assert_float32_close, assert_layer_equals_its_dsf, assert_registry_builds,
                      assert_rejects_bad_input, make_input)
from dsflib.models.gla import GLA

D, N_EXP, HEADS = 8, 3, 2
_input = partial(make_input, d=D)


def _layer(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"n": N_EXP, "heads": HEADS, "tau": 4.0, **kw}  # tau = 4: faster decays, short tests forget
    return GLA(D, **kw).double()


def _alpha(layer, u):
    """sigma(W_alpha_up W_alpha_down u + b)^(1/tau), shape (batch, L, heads, n), from the raw parameters."""
    z = u @ layer.W_alpha_down.weight.T @ layer.W_alpha_up.weight.T + layer.W_alpha_up.bias
    return (torch.sigmoid(z) ** (1.0 / layer.tau)).reshape(*u.shape[:2], layer.heads, layer.n)


def _reference(layer, u):
    """S_i = diag(alpha_i) S_{i-1} + k_i v_i^T, y_i = W_O S_i^T q_i per head, one token at a time."""
    b, L, _ = u.shape
    H, n, dv = layer.heads, layer.n, layer.head_dim
    q = (u @ layer.W_Q.weight.T).reshape(b, L, H, n) / math.sqrt(n)
    k = (u @ layer.W_K.weight.T).reshape(b, L, H, n)
    v = (u @ layer.W_V.weight.T).reshape(b, L, H, dv)
    alpha = _alpha(layer, u)
    S = u.new_zeros(b, H, n, dv)
    ys = []
    for i in range(L):
        S = alpha[:, i, :, :, None] * S + k[:, i, :, :, None] * v[:, i, :, None, :]
        ys.append(torch.einsum("bhkv,bhk->bhv", S, q[:, i]).reshape(b, D) @ layer.W_O.weight.T)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("length", RAGGED_LENGTHS)
def test_forward_equals_dsf_recurrence_and_phi(length):
    assert_layer_equals_its_dsf(_layer(), _input(2, length, seed=length), n=N_EXP, A_dim=N_EXP * D)


def test_forward_matches_the_equations():
    layer = _layer()
    u = _input(2, 20, seed=3)
    torch.testing.assert_close(layer(u), _reference(layer, u), rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", LONG_LENGTHS)
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length):
    assert_backends_agree(
        _layer(), _input(2, length, seed=4), _input(2, length, seed=5),
        params={"W_Q.weight", "W_K.weight", "W_V.weight", "W_O.weight",
                "W_alpha_down.weight", "W_alpha_up.weight", "W_alpha_up.bias"},
        out_tol=dict(atol=1e-11), grad_tol=dict(atol=1e-9), input_grad_tol=dict(atol=1e-10), nonzero_grads=True,
    )


def test_float32_forward_matches_float64():
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~1e-7), so 2e-5 is safe.
    torch.manual_seed(0)
    layer = GLA(D, n=N_EXP, heads=HEADS).double()  # default tau = 16: slow decays
    assert_float32_close(layer, _input(2, 130, seed=6), rel=2e-5)


def test_bad_input_is_rejected_naming_u():
    layer = _layer()
    assert_rejects_bad_input(layer, D, methods=(layer.log_gate,))


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + HEADS_ARG_ERRORS + [
        ((8,), {"tau": 0.0}, ValueError, "^tau must"),
        ((8,), {"tau": float("nan")}, ValueError, "^tau must"),
        ((8,), {"tau": None}, TypeError, "^tau must"),
        ((8,), {"gate_rank": 0}, ValueError, "^gate_rank must"),
        ((8,), {"backend": "fast"}, ValueError, "^backend must"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        GLA(*args, **kwargs)


def test_registry_builds_gla_with_low_rank_gate():
    layer = assert_registry_builds("gla", GLA, 32, n=4, heads=2)
    assert layer.tau == 16.0
    assert layer.W_alpha_down.weight.shape == (16, 32) and layer.W_alpha_up.weight.shape == (2 * 4, 16)


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
