"""Retention: forward == DSF recurrence == Phi u, backends agree, gamma^(i-j) decay, time-invariant A."""
import math
from functools import partial

import pytest
import torch

from contract import (EPS, F64, HEADS_ARG_ERRORS, LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS,
                      assert_backends_agree, assert_float32_close, assert_layer_equals_its_dsf, assert_registry_builds,
                      assert_rejects_bad_input, make_input)
from dsflib import materialize_phi
from dsflib.models.retnet import Retention

D, N_EXP, HEADS = 8, 3, 2
_input = partial(make_input, d=D)


def _layer(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"n": N_EXP, "heads": HEADS, **kw}
    return Retention(D, **kw).double()


def _qkv(layer, u):
    b, L, _ = u.shape
    q = (u @ layer.W_Q.weight.T).reshape(b, L, layer.heads, layer.n)
    k = (u @ layer.W_K.weight.T).reshape(b, L, layer.heads, layer.n) / math.sqrt(layer.n)
    v = (u @ layer.W_V.weight.T).reshape(b, L, layer.heads, layer.head_dim)
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
    return y @ layer.W_O.weight.T


@pytest.mark.parametrize("length", RAGGED_LENGTHS)
def test_forward_equals_dsf_recurrence_and_phi(length):
    assert_layer_equals_its_dsf(_layer(), _input(2, length, seed=length), n=N_EXP, A_dim=HEADS)


def test_forward_matches_the_retention_sum():
    layer = _layer()
    u = _input(2, 40, seed=3)
    torch.testing.assert_close(layer(u), _reference(layer, u), rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", LONG_LENGTHS)
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length):
    assert_backends_agree(
        _layer(), _input(2, length, seed=4), _input(2, length, seed=5),
        params={"W_Q.weight", "W_K.weight", "W_V.weight", "W_O.weight"},
        out_tol=dict(atol=1e-11), grad_tol=dict(atol=1e-9), input_grad_tol=dict(atol=1e-10), nonzero_grads=True,
    )


def test_float32_forward_matches_float64():
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~2e-7), so 2e-5 is safe.
    assert_float32_close(_layer(), _input(2, 130, seed=6), rel=2e-5)


def test_bad_input_is_rejected_naming_u():
    assert_rejects_bad_input(_layer(), D)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + HEADS_ARG_ERRORS + [
        ((8,), {"heads": 2, "gammas": [0.9]}, ValueError, "^gammas must"),
        ((8,), {"gammas": [1.5]}, ValueError, "^gammas must"),
        ((8,), {"gammas": [0.0]}, ValueError, "^gammas must"),
        ((8,), {"gammas": ["0.9"]}, TypeError, "^gammas must"),
        ((8,), {"gammas": 0.9}, TypeError, "^gammas must"),
        ((8,), {"backend": "triton"}, ValueError, "^backend must"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Retention(*args, **kwargs)


def test_registry_builds_retention_with_retnet_default_decays():
    layer = assert_registry_builds("retnet", Retention, 16, n=4, heads=4)
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
    WO = layer.W_O.weight.reshape(D, HEADS, dv)
    WV = layer.W_V.weight.reshape(HEADS, dv, D)
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
    # A = exp(log gamma): two roundings (log to |log gamma| eps < eps, then exp), so 8 eps relative
    torch.testing.assert_close(dsf.A, expected, rtol=8 * EPS, atol=0)
    assert torch.equal(dsf.A, dsf.A[:1, :1].expand_as(dsf.A))  # the same A_i at every i and batch
    # B_i, C_i depend on the input (k_i, q_i) - the opposite of an LTI system
    assert (dsf.B[:, 1:] - dsf.B[:, :1]).abs().amax(dim=(2, 3)).min() > 1e-3
    assert (dsf.C[:, 1:] - dsf.C[:, :1]).abs().amax(dim=(2, 3)).min() > 1e-3
    # and with the input-independent A, a different input changes B and C but not A
    other = layer.to_dsf(_input(2, 9, seed=99))
    assert torch.equal(other.A, dsf.A) and not torch.allclose(other.B, dsf.B)  # exact: A never sees u
