"""qLSTM: forward == DSF recurrence == Phi u, backends agree, the eq.-23 reversed-sigmoid forget gate, and the
paper's eq. 20 form (n = 1, no output projection, N = d)."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from contract import (EPS, F64, LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_backends_agree,
                      assert_float32_close, assert_layer_equals_its_dsf, assert_registry_builds,
                      assert_rejects_bad_input, make_input)
from dsflib.models.qlstm import QLSTM

D, N_EXP = 8, 2
VARIANTS = [pytest.param(False, id="sigmoid"), pytest.param(True, id="reversed")]
_input = partial(make_input, d=D)


def _layer(reversed_sigmoid=False, seed=0, **kw):
    torch.manual_seed(seed)
    layer = QLSTM(D, n=N_EXP, reversed_sigmoid=reversed_sigmoid, **kw).double()
    if reversed_sigmoid:  # move alpha away from 1 so the exponent is really tested
        with torch.no_grad():
            layer.alpha_param.fill_(math.log(math.expm1(1.7)))
    return layer


def _reference(layer, u):
    """The paper's equations, one token at a time, from the raw parameters."""
    m = layer.width
    x = u @ layer.W_in.weight.T
    z = u @ layer.W_gates.weight.T + layer.W_gates.bias
    z_f, z_i, z_o = z[..., :m], z[..., m : 2 * m], z[..., 2 * m :]
    f = torch.sigmoid(-z_f) ** layer.alpha if layer.reversed_sigmoid else torch.sigmoid(z_f)
    c = u.new_zeros(u.shape[0], m)
    ys = []
    for i in range(u.shape[1]):
        c = f[:, i] * c + torch.sigmoid(z_i[:, i]) * x[:, i]
        y = torch.sigmoid(z_o[:, i]) * c
        ys.append(y @ layer.W_out.weight.T if layer.output_projection else y)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("length", RAGGED_LENGTHS)
@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_forward_equals_dsf_recurrence_and_phi(length, reversed_sigmoid):
    assert_layer_equals_its_dsf(_layer(reversed_sigmoid), _input(2, length, seed=length), n=N_EXP, A_dim=N_EXP * D)


@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_forward_matches_the_equations(reversed_sigmoid):
    layer = _layer(reversed_sigmoid)
    u = _input(2, 20, seed=3)
    torch.testing.assert_close(layer(u), _reference(layer, u), rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", LONG_LENGTHS)
@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length, reversed_sigmoid):
    assert_backends_agree(
        _layer(reversed_sigmoid), _input(2, length, seed=4), _input(2, length, seed=5),
        params={"W_in.weight", "W_gates.weight", "W_gates.bias", "W_out.weight"} | (
            {"alpha_param"} if reversed_sigmoid else set()),
        out_tol=dict(atol=1e-11), grad_tol=dict(atol=1e-9), input_grad_tol=dict(atol=1e-10), nonzero_grads=True,
    )


@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_float32_forward_matches_float64(reversed_sigmoid):
    # fp32 rounds each of the <= ~130 summands of every scan/matmul output at unit roundoff 6e-8; a
    # worst-case linear bound is ~1e-5 of the output scale (observed: ~2e-7), so 2e-5 is safe.
    assert_float32_close(_layer(reversed_sigmoid), _input(2, 130, seed=6), rel=2e-5)


def test_bad_input_is_rejected_naming_u():
    assert_rejects_bad_input(_layer(), D)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + [
        ((8,), {"reversed_sigmoid": 1}, TypeError, "^reversed_sigmoid must"),
        ((8,), {"output_projection": 0}, TypeError, "^output_projection must be a bool, got int$"),
        ((8,), {"output_projection": False}, ValueError,
         r"^n must be 1 without the output projection \(the paper's eq. 20, N = d\), got n=2$"),
        ((8,), {"backend": "gpu"}, ValueError, "^backend must"),
    ],
)
def test_bad_constructor_args(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        QLSTM(*args, **kwargs)


def test_registry_builds_qlstm():
    layer = assert_registry_builds("qlstm", QLSTM, 8, n=3, reversed_sigmoid=True)
    assert layer.width == 24


def test_reversed_sigmoid_forget_gate_is_eq23_and_s6_form():
    layer = _layer(True)
    u = _input(2, 11, seed=7)
    m = layer.width
    z = u @ layer.W_gates.weight[:m].T + layer.W_gates.bias[:m]
    alpha = F.softplus(layer.alpha_param)
    assert abs(alpha.item() - 1.7) < 1e-12
    A = layer.to_dsf(u).A
    # eq. 23: sigma(-z)^alpha, and the S6 form exp(-alpha softplus(z)) (exp(Delta a) with Delta = softplus)
    torch.testing.assert_close(A, torch.sigmoid(-z) ** alpha, rtol=1e-13, atol=0)
    torch.testing.assert_close(A, torch.exp(-alpha * F.softplus(z)), rtol=1e-13, atol=0)
    # and differs from the plain sigmoid gate of the same logits
    assert (A - torch.sigmoid(z)).abs().max() > 0.1


def test_alpha_starts_at_one():
    layer = QLSTM(8, reversed_sigmoid=True)
    assert abs(layer.alpha.item() - 1.0) < 1e-6
    assert QLSTM(8).alpha is None and not hasattr(QLSTM(8), "alpha_param")


@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_forget_gates_lie_in_unit_interval_and_start_with_long_memory(reversed_sigmoid):
    layer = _layer(reversed_sigmoid)
    A = layer.to_dsf(4.0 * _input(2, 30, seed=8)).A
    assert (A > 0).all() and (A < 1).all()
    fresh = QLSTM(8, n=2, reversed_sigmoid=reversed_sigmoid).double()
    A0 = fresh.to_dsf(torch.zeros(1, 1, 8, dtype=F64)).A.flatten()
    torch.testing.assert_close(A0, torch.linspace(0.9, 0.95, 16, dtype=F64), rtol=0, atol=1e-6)


def test_dsf_matrices_have_the_qlstm_structure():
    layer = _layer(True)
    u = _input(1, 5, seed=9)
    dsf = layer.to_dsf(u)
    m = layer.width
    z = u @ layer.W_gates.weight.T + layer.W_gates.bias
    iota, o = torch.sigmoid(z[..., m : 2 * m]), torch.sigmoid(z[..., 2 * m :])
    # B_i = diag(iota_i) W_in, C_i = W_out diag(o_i)
    torch.testing.assert_close(dsf.B, iota[..., None] * layer.W_in.weight, rtol=0, atol=1e-14)
    torch.testing.assert_close(dsf.C, layer.W_out.weight * o[:, :, None, :], rtol=0, atol=1e-14)


# ---- the paper's eq. 20: n = 1, no output projection ---------------------------------------

def _paper_layer(reversed_sigmoid=False, seed=0):
    torch.manual_seed(seed)
    layer = QLSTM(D, n=1, output_projection=False, reversed_sigmoid=reversed_sigmoid).double()
    with torch.no_grad():  # gates of order one, so every factor matters
        layer.W_gates.bias.normal_(0.0, 0.5)
        if reversed_sigmoid:
            layer.alpha_param.fill_(math.log(math.expm1(1.7)))
    return layer


@pytest.mark.parametrize("length", RAGGED_LENGTHS)
@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_paper_form_equals_dsf_recurrence_and_phi_with_state_d(length, reversed_sigmoid):
    layer = _paper_layer(reversed_sigmoid)
    assert layer.W_out is None and layer.width == D
    _, dsf = assert_layer_equals_its_dsf(layer, _input(2, length, seed=length), n=1, A_dim=D)
    assert dsf.N == D and dsf.n == 1


@pytest.mark.parametrize("reversed_sigmoid", VARIANTS)
def test_paper_form_matches_the_equations(reversed_sigmoid):
    layer = _paper_layer(reversed_sigmoid)
    u = _input(2, 20, seed=3)
    torch.testing.assert_close(layer(u), _reference(layer, u), rtol=0, atol=1e-12)


def test_paper_form_dsf_is_eq20():
    # Lambda_i = diag(sigma(W_f u_i)), B_i = diag(sigma(W_i u_i)) W_u, C_i = diag(sigma(W_o u_i)), D_i = 0
    layer = _paper_layer()
    u = _input(2, 9, seed=10)
    dsf = layer.to_dsf(u)
    z = u @ layer.W_gates.weight.T + layer.W_gates.bias
    f, iota, o = torch.sigmoid(z[..., :D]), torch.sigmoid(z[..., D : 2 * D]), torch.sigmoid(z[..., 2 * D :])
    # z is u W^T + b here and F.linear (one fused addmm) in the layer: the same D + 1 terms summed in
    # another order, which MKL's kernels (MKL_CBWR=AVX2 vs AVX512) round differently, by up to about
    # (D + 1) eps sum|terms| (sum|terms| < 10 here); the gates' slope is at most 1/4, A = exp(logsigmoid z)
    # adds a few roundings, and B = diag(iota) W_in has |W_in| < 1: 8 D eps bounds every entry of A, B, C
    tol = 8 * D * EPS
    torch.testing.assert_close(dsf.A, f, rtol=0, atol=tol)
    torch.testing.assert_close(dsf.B, torch.diag_embed(iota) @ layer.W_in.weight, rtol=0, atol=tol)
    torch.testing.assert_close(dsf.C, torch.diag_embed(o), rtol=0, atol=tol)
    assert dsf.D is None


def test_paper_form_backends_agree_with_gradients():
    assert_backends_agree(
        _paper_layer(True), _input(2, 130, seed=4), _input(2, 130, seed=5),
        params={"W_in.weight", "W_gates.weight", "W_gates.bias", "alpha_param"},
        out_tol=dict(atol=1e-11), grad_tol=dict(atol=1e-9), input_grad_tol=dict(atol=1e-10), nonzero_grads=True,
    )


def test_paper_form_is_the_wide_layer_with_zero_padding():
    # Lemma 2 in action: a width-2d layer whose extra channels never reach the output (W_out = [I, 0])
    # and whose first d channels copy the paper-form layer computes the same map.
    paper = _paper_layer()
    wide = QLSTM(D, n=2).double()
    with torch.no_grad():
        wide.W_in.weight.zero_()
        wide.W_in.weight[:D] = paper.W_in.weight
        for g in range(3):
            wide.W_gates.weight[2 * D * g : 2 * D * g + D] = paper.W_gates.weight[D * g : D * (g + 1)]
            wide.W_gates.bias[2 * D * g : 2 * D * g + D] = paper.W_gates.bias[D * g : D * (g + 1)]
        wide.W_out.weight.zero_()
        wide.W_out.weight[:, :D] = torch.eye(D, dtype=F64)
    u = _input(2, 40, seed=11)
    torch.testing.assert_close(wide(u), paper(u), rtol=0, atol=1e-12)
