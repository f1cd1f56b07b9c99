"""LTI SSM: forward == DSF recurrence == Phi u, backends, precision, bad input, time invariance,
block-Toeplitz Phi and the convolution kernel."""
from functools import partial

import pytest
import torch

from contract import (LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_backends_agree, assert_float32_close,
                      assert_layer_equals_its_dsf, assert_registry_builds, assert_rejects_bad_input, make_input)
from dsflib import materialize_phi
from dsflib.models.lti_ssm import LTISSM

D_MODEL, N_EXP = 8, 3
_input = partial(make_input, d=D_MODEL)


def _layer(seed: int = 0, **kwargs) -> LTISSM:
    """An fp64 LTI SSM with randomised parameters (decays between ~0.2 and ~0.99)."""
    torch.manual_seed(seed)
    layer = LTISSM(D_MODEL, n=N_EXP, **kwargs).double()
    with torch.no_grad():
        layer.log_dt.uniform_(-3.0, 0.0)
        layer.log_rate.add_(0.3 * torch.randn_like(layer.log_rate))
        layer.B.normal_()
        layer.D.normal_(1.0, 0.5)
    return layer


def _causal_conv(K: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Reference y_i = sum_{m <= i} K_m u_{i-m} for K (L, d, d), u (batch, L, d)."""
    L = u.shape[1]
    i, j = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
    blocks = K[(i - j).clamp(min=0)] * (i >= j)[..., None, None]  # (L, L, d, d)
    return torch.einsum("ijpq,bjq->bip", blocks, u)


@pytest.mark.parametrize("length", RAGGED_LENGTHS)
def test_forward_equals_dsf_recurrence_and_phi(length):
    assert_layer_equals_its_dsf(_layer(), _input(2, length), n=N_EXP, A_dim=N_EXP * D_MODEL, feedthrough=True)


@pytest.mark.parametrize("length", LONG_LENGTHS)
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length):
    assert_backends_agree(
        _layer(), _input(2, length), _input(2, length, seed=3),
        params={"log_rate", "log_dt", "B", "C", "D", "W_out.weight"},
        out_tol=dict(atol=1e-10), grad_tol=dict(rtol=1e-9, atol=1e-10), nonzero_grads=True,
    )


def test_float32_matches_float64():
    # fp32 has unit roundoff 6e-8; the layer chains a few O(d) matmuls and a scan that sums at most
    # 16 tokens per chunk plus ~9 chunk-state updates (in fp32). Errors of a few hundred ulps of
    # max|y|, i.e. ~1e-5 relative, are the worst expected; a half-precision path (eps 1e-3) fails this.
    assert_float32_close(_layer(), _input(2, 130), rel=1e-5)


def test_bad_input_is_rejected():
    layer = LTISSM(D_MODEL, n=N_EXP)
    assert_rejects_bad_input(layer, D_MODEL)
    with pytest.raises(ValueError, match="length must be a positive int, got 0"):
        layer.kernel(0)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + [
        ((-4,), {}, ValueError, "d_model must be a positive int, got -4"),
        ((None,), {}, TypeError, "d_model must be a positive int, got NoneType"),
        ((8,), dict(backend=None), ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LTISSM(*args, **kwargs)


def test_registry_and_init_span_short_and_long_memory():
    layer = assert_registry_builds("lti_ssm", LTISSM, 64, n=16)
    a = torch.exp(layer.log_a().detach())
    assert (a > 0).all() and (a < 1).all()
    assert a.min() < 0.5 and a.max() > 0.99  # memories from ~1 token to ~1000 tokens
    assert LTISSM(4, n=1).log_a().shape == (4, 1)


# ---- model-specific properties -----------------------------------------------------------

def test_dsf_is_time_invariant_and_independent_of_the_input():
    layer = _layer()
    u1, u2 = _input(2, 15, seed=1), 3.0 * _input(2, 15, seed=2)
    d1, d2 = layer.to_dsf(u1), layer.to_dsf(u2)
    for name in "ABCD":  # exact: the matrices are the parameters broadcast (and one exp), whatever u is
        m1, m2 = getattr(d1, name), getattr(d2, name)
        assert torch.equal(m1, m2), f"{name} depends on the input"
        assert torch.equal(m1, m1[:1, :1].expand_as(m1)), f"{name} varies over time or batch"
    assert (d1.A > 0).all() and (d1.A < 1).all()
    # with_output_projection=False: B, C are block diagonal over channels (exact: C's entries are 1 * c or 0 * c)
    ssm = layer.to_dsf(u1, include_output_projection=False)
    torch.testing.assert_close(ssm.C[0, 0].reshape(D_MODEL, D_MODEL, N_EXP),
                               torch.diag_embed(layer.C.detach().T).permute(1, 2, 0), rtol=0, atol=0)


def test_phi_is_block_toeplitz_and_equals_the_kernel():
    layer = _layer()
    L = 20
    u = _input(1, L)
    phi = materialize_phi(layer.to_dsf(u))[0]  # (L, L, d, d)
    K = layer.kernel(L)
    assert K.shape == (L, D_MODEL, D_MODEL)
    torch.testing.assert_close(phi[:, 0], K, rtol=0, atol=1e-12)
    for i in range(L):
        for j in range(i + 1):
            torch.testing.assert_close(phi[i, j], phi[i - j, 0], rtol=0, atol=1e-12)
    assert phi[L - 1, 0].abs().max() > 1e-6  # long-range blocks are not trivially zero
    # a time-varying layer would fail the same check: perturb one token's B through the DSF
    dsf = layer.to_dsf(u)
    B = dsf.B.clone()
    B[:, 5] *= 1.5
    phi_tv = materialize_phi(type(dsf)(dsf.A, B, dsf.C, dsf.D))[0]
    assert (phi_tv[9, 5] - phi_tv[4, 0]).abs().max() > 1e-6


@pytest.mark.parametrize("projection", [True, False])
def test_forward_is_causal_convolution_with_kernel(projection):
    layer = _layer()
    u = _input(2, 63)
    K = layer.kernel(63, include_output_projection=projection)
    y = _causal_conv(K, u)
    if projection:
        torch.testing.assert_close(layer(u), y, rtol=0, atol=1e-10)
    else:
        torch.testing.assert_close(y @ layer.W_out.weight.T, layer(u), rtol=0, atol=1e-10)
        assert torch.equal(K, torch.diag_embed(torch.diagonal(K, dim1=-2, dim2=-1)))  # no channel mixing
