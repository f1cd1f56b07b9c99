"""RG-LRU: forward == DSF recurrence == Phi u, backends agree, decays and the sqrt(1 - a^2) normalization."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from contract import (F64, LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_backends_agree,
                      assert_float32_close, assert_layer_equals_its_dsf, assert_registry_builds,
                      assert_rejects_bad_input, make_input)
from dsflib import materialize_phi
from dsflib.models.rglru import RGLRU

D, N_EXP = 8, 2
_input = partial(make_input, d=D)


def _layer(seed=0, n=N_EXP, **kw):
    torch.manual_seed(seed)
    layer = RGLRU(D, n=n, **kw).double()
    with torch.no_grad():  # faster decays than Griffin's init, so the short test sequences forget
        layer.Lambda.copy_(torch.linspace(-1.0, 3.0, layer.width, dtype=F64))
    return layer


def _reference(layer, u):
    """Griffin's RG-LRU equations, one token at a time, from the raw parameters."""
    x = u @ layer.W_x.weight.T
    r = torch.sigmoid(u @ layer.W_r.weight.T + layer.W_r.bias)
    g = torch.sigmoid(u @ layer.W_g.weight.T + layer.W_g.bias)
    a = torch.sigmoid(layer.Lambda) ** (layer.c * r)
    h = u.new_zeros(u.shape[0], layer.width)
    ys = []
    for i in range(u.shape[1]):
        h = a[:, i] * h + torch.sqrt(1 - a[:, i] ** 2) * (g[:, i] * x[:, i])
        ys.append(h @ layer.W_out.weight.T)
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
        params={"W_x.weight", "W_r.weight", "W_r.bias", "W_g.weight", "W_g.bias", "W_out.weight", "Lambda"},
        out_tol=dict(atol=1e-11), grad_tol=dict(atol=1e-9), input_grad_tol=dict(atol=1e-10), nonzero_grads=True,
    )


def test_float32_forward_matches_float64():
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~3e-7), so 2e-5 is safe.
    torch.manual_seed(0)
    layer = RGLRU(D, n=N_EXP).double()  # Griffin's init: slow decays, long memory
    assert_float32_close(layer, _input(2, 130, seed=6), rel=2e-5)


def test_bad_input_is_rejected_naming_u():
    assert_rejects_bad_input(_layer(), D)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + [
        (("8",), {}, TypeError, "^d_model must"),
        ((8,), {"n": -1}, ValueError, "^n must"),
        ((8,), {"n": 2.0}, TypeError, "^n must"),
        ((8,), {"c": 0.0}, ValueError, "^c must"),
        ((8,), {"c": float("inf")}, ValueError, "^c must"),
        ((8,), {"c": "8"}, TypeError, "^c must"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        RGLRU(*args, **kwargs)


def test_registry_builds_rglru():
    layer = assert_registry_builds("rglru", RGLRU, 8, n=2, c=4.0)
    assert layer.width == 16 and layer.c == 4.0


def test_decays_are_a_to_the_power_c_r_with_nonpositive_log():
    layer = _layer()
    u = 3.0 * _input(2, 40, seed=7)
    A = layer.to_dsf(u).A
    r = torch.sigmoid(u @ layer.W_r.weight.T + layer.W_r.bias)
    torch.testing.assert_close(A, torch.sigmoid(layer.Lambda) ** (layer.c * r), rtol=1e-13, atol=0)
    torch.testing.assert_close(A, torch.exp(-layer.c * F.softplus(-layer.Lambda) * r), rtol=1e-13, atol=0)
    assert (torch.log(A) <= 0).all() and (A > 0).all() and (A < 1).all()


def test_init_spreads_a_to_the_c_over_griffin_range():
    torch.manual_seed(0)
    layer = RGLRU(16, n=4)
    a_c = torch.sigmoid(layer.Lambda.double()) ** layer.c
    assert a_c.min() >= 0.9 - 1e-6 and a_c.max() <= 0.999 + 1e-6
    assert a_c.max() - a_c.min() > 0.05  # spread, not a single value


def _constant_gate_layer(a_step: float, g: float):
    """n = 1, W_x = W_out = I and constant gates: h_i = a h_{i-1} + sqrt(1 - a^2) g u_i per channel."""
    layer = RGLRU(D, n=1).double()
    r = 0.5
    with torch.no_grad():
        for lin in (layer.W_r, layer.W_g):
            lin.weight.zero_()
        layer.W_r.bias.fill_(0.0)  # r = sigma(0) = 1/2
        layer.W_g.bias.fill_(math.log(g) - math.log1p(-g))  # sigma(b_g) = g
        layer.W_x.weight.copy_(torch.eye(D, dtype=F64))
        layer.W_out.weight.copy_(torch.eye(D, dtype=F64))
        base = a_step ** (1.0 / (layer.c * r))  # sigma(Lambda)^{c r} = a_step
        layer.Lambda.fill_(math.log(base) - math.log1p(-base))
    return layer


def test_input_normalization_gives_exact_bounded_variance():
    # Var(h_i) for unit-variance i.i.d. input is sum_j Phi_ij^2 = g^2 (1 - a^{2(i+1)}): <= g^2, -> g^2.
    a, g, L = 0.8, 0.7, 25
    layer = _constant_gate_layer(a, g)
    phi = materialize_phi(layer.to_dsf(_input(1, L, seed=8)))[0]  # (L, L, d, d), diagonal blocks
    assert (phi - torch.diag_embed(torch.diagonal(phi, dim1=-2, dim2=-1))).abs().max() == 0
    var = (torch.diagonal(phi, dim1=-2, dim2=-1) ** 2).sum(dim=1)  # (L, d)
    i = torch.arange(L, dtype=F64)[:, None]
    torch.testing.assert_close(var, (g**2 * (1 - a ** (2 * (i + 1)))).expand(L, D), rtol=0, atol=1e-13)


def test_steady_state_variance_is_one_empirically():
    # without the sqrt(1 - a^2) factor the steady-state variance would be 1/(1 - a^2) = 5.26
    layer = _constant_gate_layer(0.9, 1.0 - 1e-12)
    u = _input(128, 200, seed=9)
    h = layer(u)[:, 100:]  # 0.81^100 ~ 1e-9: stationary
    assert abs(h.var().item() - 1.0) < 0.05
