"""S6 (Mamba's selective SSM): forward == DSF recurrence == Phi u, backends, precision, bad input,
channel-diagonal Phi and the reversed-sigmoid form of its transitions."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from contract import (F64, LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_backends_agree, assert_causal,
                      assert_float32_close, assert_layer_equals_its_dsf, assert_registry_builds,
                      assert_rejects_bad_input, make_input)
from dsflib import materialize_phi
from dsflib.models.s6 import S6

D_MODEL, N_EXP = 8, 3
_input = partial(make_input, d=D_MODEL)


def _layer(seed: int = 0, **kwargs) -> S6:
    """An fp64 S6 with randomised parameters (step sizes of order 1, so every term matters)."""
    torch.manual_seed(seed)
    layer = S6(D_MODEL, n=N_EXP, **kwargs).double()
    with torch.no_grad():
        layer.W_delta_up.bias.normal_(0.0, 0.5)
        layer.A_log.add_(0.3 * torch.randn_like(layer.A_log))
        layer.D.normal_(1.0, 0.5)
    return layer


@pytest.mark.parametrize("length", RAGGED_LENGTHS)
def test_forward_equals_dsf_recurrence_and_phi(length):
    assert_layer_equals_its_dsf(_layer(), _input(2, length), n=N_EXP, A_dim=N_EXP * D_MODEL, feedthrough=True)


def test_forward_is_causal():
    u = _input(1, 30)
    u2 = u.clone()
    u2[:, 17:] = _input(1, 13, seed=5)
    assert_causal(_layer(), u, u2, 17)


@pytest.mark.parametrize("length", LONG_LENGTHS)
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length):
    assert_backends_agree(
        _layer(), _input(2, length), _input(2, length, seed=3),
        params={"W_delta_down.weight", "W_delta_up.weight", "W_delta_up.bias", "W_B.weight", "W_C.weight",
                "A_log", "D", "W_out.weight"},
        out_tol=dict(atol=1e-10), grad_tol=dict(rtol=1e-9, atol=1e-10), nonzero_grads=True,
    )


def test_float32_matches_float64():
    # fp32 has unit roundoff 6e-8; the layer chains a few O(d) matmuls and a scan that sums at most
    # 16 tokens per chunk plus ~9 chunk-state updates (in fp32). Errors of a few hundred ulps of
    # max|y|, i.e. ~1e-5 relative, are the worst expected; a half-precision path (eps 1e-3) fails this.
    assert_float32_close(_layer(), _input(2, 130), rel=1e-5)


def test_bad_input_is_rejected():
    assert_rejects_bad_input(S6(D_MODEL, n=N_EXP), D_MODEL)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + [
        ((8,), dict(n=True), TypeError, "n must be a positive int, got bool"),
        ((8,), dict(dt_rank=-1), ValueError, "dt_rank must be a positive int, got -1"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        S6(*args, **kwargs)


def test_registry_and_init():
    layer = assert_registry_builds("s6", S6, 256, n=4)
    assert layer.dt_rank == 16
    assert S6(8).dt_rank == 1 and S6(17).dt_rank == 2 and S6(8, dt_rank=3).dt_rank == 3
    # S4D-real init a_{c,k} = -(k+1), D = 1
    torch.testing.assert_close(-torch.exp(layer.A_log), -torch.arange(1.0, 5.0).expand(256, 4))
    assert torch.equal(layer.D, torch.ones(256))
    # Mamba's step init: softplus(b_Delta) log-uniform in [1e-3, 1e-1]
    dt = F.softplus(layer.W_delta_up.bias.detach().double())
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    log_dt = dt.log()
    assert abs(log_dt.mean().item() - math.log(1e-2)) < 0.3  # centre of the log-uniform law
    assert (dt < 3e-3).any() and (dt > 3e-2).any()


# ---- model-specific properties -----------------------------------------------------------

def test_phi_is_diagonal_in_channels_before_the_output_projection():
    layer = _layer()
    length = 9
    u = _input(2, length)
    ssm = layer.to_dsf(u, include_output_projection=False)
    phi = materialize_phi(ssm)  # (b, L, L, d, d)
    off = ~torch.eye(D_MODEL, dtype=torch.bool)
    assert phi[..., off].abs().max() == 0
    # diagonal entries: Phi_ij[c, c] = c_i^T exp(A_c sum_{k=j+1}^{i} Delta_kc) b_j Delta_jc (+ D_c if i == j)
    with torch.no_grad():
        delta = F.softplus(layer.W_delta_up(layer.W_delta_down(u)))
        bb, cc, A = layer.W_B(u), layer.W_C(u), -torch.exp(layer.A_log)
    for i, j in [(6, 2), (8, 0), (4, 4)]:
        acc = delta[:, j + 1 : i + 1].sum(1)  # (b, d)
        expected = torch.einsum("bk,bck,bk->bc", cc[:, i], torch.exp(acc[..., None] * A), bb[:, j]) * delta[:, j]
        if i == j:
            expected = expected + layer.D.detach()
        torch.testing.assert_close(torch.diagonal(phi[:, i, j], dim1=-2, dim2=-1), expected, rtol=0, atol=1e-12)
    # with the output projection, Phi_ij = W_out Phi_ij^{SSM}: mixing comes only from W_out
    full = materialize_phi(layer.to_dsf(u))
    torch.testing.assert_close(full, layer.W_out.weight @ phi, rtol=0, atol=1e-12)
    assert full[..., off].abs().max() > 1e-3


def test_reversed_sigmoid_identity():
    # exp(-a softplus(z)) = (1 + e^z)^(-a) = sigmoid(-z)^a for a > 0, including large |z|
    z = torch.cat([torch.linspace(-40.0, 40.0, 801, dtype=F64),
                   torch.tensor([-700.0, -300.0, -100.0, 100.0, 300.0, 700.0], dtype=F64)])
    softplus = torch.logaddexp(torch.zeros_like(z), z)  # exact softplus (F.softplus linearises above 20)
    for a in (0.25, 1.0, 2.5, 16.0):
        lhs = torch.exp(-a * softplus)
        rhs = torch.sigmoid(-z) ** a
        torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-300)
        torch.testing.assert_close(-a * softplus, a * F.logsigmoid(-z), rtol=1e-13, atol=1e-15)
    # a sanity check that the comparison can fail: the ordinary (not reversed) sigmoid differs
    assert not torch.allclose(torch.exp(-softplus), torch.sigmoid(z))


def test_transitions_are_reversed_sigmoids_of_a_low_rank_projection():
    # Delta_i = softplus(z_i), z_i = W_Delta u_i + b_Delta with W_Delta = W_delta_up W_delta_down (rank <= dt_rank):
    # A_i[c, k] = exp(Delta_ic A_ck) = sigmoid(-z_ic)^(-A_ck), with -A_ck = exp(A_log_ck) > 0
    layer = _layer()
    u = _input(2, 12)
    dsf = layer.to_dsf(u)
    with torch.no_grad():
        W = layer.W_delta_up.weight @ layer.W_delta_down.weight
        z = u @ W.T + layer.W_delta_up.bias
        power = torch.exp(layer.A_log)
    assert torch.linalg.matrix_rank(W).item() == layer.dt_rank == 1
    assert z.abs().max() < 20  # F.softplus is exact here (it switches to the identity above 20)
    expected = torch.sigmoid(-z)[..., None] ** power  # (b, L, d, n), state index (channel, key)
    torch.testing.assert_close(dsf.A, expected.reshape(2, 12, D_MODEL * N_EXP), rtol=1e-13, atol=0)
    assert (dsf.A > 0).all() and (dsf.A < 1).all()
    # the state's n entries of one channel decay at n different rates
    assert (dsf.A.reshape(2, 12, D_MODEL, N_EXP).diff(dim=-1).abs() > 0).all()
