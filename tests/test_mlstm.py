"""mLSTM: forward == DSF recurrence == Phi u, backends agree, the normaliser, scalar A per head."""
import math
from functools import partial

import pytest
import torch

from contract import (F64, HEADS_ARG_ERRORS, LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_backends_agree,
                      assert_float32_close, assert_layer_equals_its_dsf, assert_registry_builds,
                      assert_rejects_bad_input, make_input)
from dsflib.models.mlstm import MLSTM

D, N_EXP, HEADS = 8, 3, 2
_input = partial(make_input, d=D)


def _layer(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"n": N_EXP, "heads": HEADS, **kw}
    layer = MLSTM(D, **kw).double()
    with torch.no_grad():  # forget gates near 0.7-0.9, so the short test sequences forget
        layer.W_f.bias.copy_(torch.linspace(1.0, 2.0, layer.heads, dtype=F64))
    return layer


def _reference(layer, u):
    """The mLSTM equations, one token at a time, from the raw parameters; returns (y, normaliser)."""
    b, L, _ = u.shape
    H, n, dv = layer.heads, layer.n, layer.head_dim
    q = (u @ layer.W_Q.weight.T).reshape(b, L, H, n)
    k = (u @ layer.W_K.weight.T).reshape(b, L, H, n) / math.sqrt(n)
    v = (u @ layer.W_V.weight.T).reshape(b, L, H, dv)
    f = torch.sigmoid(u @ layer.W_f.weight.T + layer.W_f.bias)  # (b, L, H)
    iota = torch.sigmoid(u @ layer.W_iota.weight.T + layer.W_iota.bias)
    o = torch.sigmoid(u @ layer.W_o.weight.T + layer.W_o.bias)  # (b, L, d)
    C = u.new_zeros(b, H, dv, n)
    nvec = u.new_zeros(b, H, n)
    ys, norms = [], []
    for i in range(L):
        C = f[:, i, :, None, None] * C + iota[:, i, :, None, None] * v[:, i, :, :, None] * k[:, i, :, None, :]
        nvec = f[:, i, :, None] * nvec + iota[:, i, :, None] * k[:, i]
        norm = torch.einsum("bhk,bhk->bh", nvec, q[:, i]).abs().clamp_min(1.0)
        h_hat = torch.einsum("bhvk,bhk->bhv", C, q[:, i]) / norm[..., None]
        ys.append((o[:, i] * h_hat.reshape(b, D)) @ layer.W_O.weight.T)
        norms.append(norm)
    return torch.stack(ys, 1), torch.stack(norms, 1)


@pytest.mark.parametrize("length", RAGGED_LENGTHS)
def test_forward_equals_dsf_recurrence_and_phi(length):
    assert_layer_equals_its_dsf(_layer(), _input(2, length, seed=length), n=N_EXP, A_dim=HEADS)


def test_forward_matches_the_equations_on_both_branches_of_the_max():
    layer = _layer()
    u = 4.0 * _input(2, 30, seed=3)  # large inputs: |n_i^T q_i| exceeds 1 at some tokens
    y_ref, norm_ref = _reference(layer, u)
    torch.testing.assert_close(layer(u), y_ref, rtol=0, atol=1e-12)
    norm = layer.normalizer(u)
    torch.testing.assert_close(norm, norm_ref, rtol=0, atol=1e-12)
    assert (norm == 1).any() and (norm > 1.5).any()


@pytest.mark.parametrize("length", LONG_LENGTHS)
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length):
    assert_backends_agree(
        _layer(), 3.0 * _input(2, length, seed=4), _input(2, length, seed=5),  # 3x: the |.| > 1 branch too
        params={"W_Q.weight", "W_K.weight", "W_V.weight", "W_O.weight",
                "W_f.weight", "W_f.bias", "W_iota.weight", "W_iota.bias", "W_o.weight", "W_o.bias"},
        out_tol=dict(atol=1e-11), grad_tol=dict(atol=1e-9), input_grad_tol=dict(atol=1e-10), nonzero_grads=True,
    )


def test_float32_forward_matches_float64():
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~3e-7), so 2e-5 is safe. The
    # max(|.|, 1) is continuous, so it adds no jump.
    torch.manual_seed(0)
    layer = MLSTM(D, n=N_EXP, heads=HEADS).double()  # default init: forget gates 0.95-0.998
    assert_float32_close(layer, _input(2, 130, seed=6), rel=2e-5)


def test_bad_input_is_rejected_naming_u():
    layer = _layer()
    assert_rejects_bad_input(layer, D, methods=(layer.normalizer,))


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + HEADS_ARG_ERRORS + [
        ((8,), {"n": "16"}, TypeError, "^n must"),
        ((8,), {"heads": 5}, ValueError, "^heads must"),
        ((8,), {"heads": -2}, ValueError, "^heads must"),
        ((8,), {"backend": "auto "}, ValueError, "^backend must"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MLSTM(*args, **kwargs)


def test_registry_builds_mlstm_with_long_memory_init():
    layer = assert_registry_builds("mlstm", MLSTM, 16, n=4, heads=4)
    f0 = torch.sigmoid(layer.W_f.bias)
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
    f = torch.sigmoid(u @ layer.W_f.weight.T + layer.W_f.bias)
    assert dsf.scalar_A and dsf.A.shape == (2, 12, HEADS)
    torch.testing.assert_close(dsf.A, f, rtol=1e-13, atol=0)
    # C_i = W_O diag(o_i) (I (x) q_i^T) / norm_i: scaling the head's normaliser back gives the unnormalised map
    q = (u @ layer.W_Q.weight.T).reshape(2, 12, HEADS, N_EXP)
    o = torch.sigmoid(u @ layer.W_o.weight.T + layer.W_o.bias)
    norm = layer.normalizer(u).repeat_interleave(layer.head_dim, dim=-1)  # (b, L, d): per value channel
    dv = layer.head_dim
    q_rep = q.repeat_interleave(dv, dim=2)  # (b, L, d, n): channel c reads its head's query
    expected = (layer.W_O.weight[None, None, :, :, None] * (o / norm)[:, :, None, :, None]) * q_rep[:, :, None]
    torch.testing.assert_close(dsf.C, expected.reshape(2, 12, D, D * N_EXP), rtol=0, atol=1e-13)
