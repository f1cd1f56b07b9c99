"""LTI SSM: forward == DSF recurrence == Phi u, backends, precision, bad input, time invariance,
block-Toeplitz Phi and the convolution kernel."""
import copy

import pytest
import torch

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.models.lti_ssm import LTISSM

F64 = torch.float64
D_MODEL, N_EXP = 8, 3


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


def _input(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, D_MODEL, generator=g, dtype=F64)


def _causal_conv(K: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Reference y_i = sum_{m <= i} K_m u_{i-m} for K (L, d, d), u (batch, L, d)."""
    L = u.shape[1]
    i, j = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
    blocks = K[(i - j).clamp(min=0)] * (i >= j)[..., None, None]  # (L, L, d, d)
    return torch.einsum("ijpq,bjq->bip", blocks, u)


@pytest.mark.parametrize("length", [1, 7, 63, 130])
def test_forward_equals_dsf_recurrence_and_phi(length):
    layer = _layer()
    u = _input(2, length)
    y = layer(u)
    dsf = layer.to_dsf(u)
    assert y.shape == (2, length, D_MODEL) and y.dtype == F64
    assert (dsf.N, dsf.n, dsf.d) == (N_EXP * D_MODEL, N_EXP, D_MODEL)
    assert dsf.A.shape == (2, length, N_EXP * D_MODEL) and not dsf.scalar_A
    torch.testing.assert_close(recurrence(dsf, u), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(apply_phi(materialize_phi(dsf), u), y, rtol=0, atol=1e-10)


@pytest.mark.parametrize("length", [63, 130])
def test_chunked_and_recurrent_backends_agree_with_gradients(length):
    layer = _layer()
    u = _input(2, length).requires_grad_()
    w = _input(2, length, seed=3)

    def run(backend):
        layer.backend = backend
        layer.zero_grad(set_to_none=True)
        u.grad = None
        y = layer(u)
        (y * w).sum().backward()
        grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
        grads["u"] = u.grad.clone()
        return y.detach(), grads

    y_c, g_c = run("chunked")
    y_r, g_r = run("recurrent")
    torch.testing.assert_close(y_c, y_r, rtol=0, atol=1e-10)
    assert set(g_c) == {"log_rate", "log_dt", "B", "C", "D", "out_proj.weight", "u"}
    for name in g_c:
        assert g_c[name].abs().max() > 0, f"gradient wrt {name} is zero"
        torch.testing.assert_close(g_c[name], g_r[name], rtol=1e-9, atol=1e-10, msg=f"gradient wrt {name}")


def test_float32_matches_float64():
    # fp32 has unit roundoff 6e-8; the layer chains a few O(d) matmuls and a scan that sums at most
    # 16 tokens per chunk plus ~9 chunk-state updates (in fp32). Errors of a few hundred ulps of
    # max|y|, i.e. ~1e-5 relative, are the worst expected; a half-precision path (eps 1e-3) fails this.
    layer = _layer()
    u = _input(2, 130)
    y64 = layer(u)
    y32 = copy.deepcopy(layer).float()(u.float())
    assert y32.dtype == torch.float32
    rel = ((y32.double() - y64).abs().max() / y64.abs().max()).item()
    assert rel < 1e-5, rel


def test_bad_input_is_rejected():
    layer = LTISSM(D_MODEL, n=N_EXP)
    u = torch.randn(2, 5, D_MODEL)
    for fn in (layer, layer.to_dsf):
        with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) = \(\*, \*, 8\), got shape"):
            fn(torch.randn(2, 5, 9))
        with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) \(3 dims\)"):
            fn(u[None])
        with pytest.raises(TypeError, match=r"u must have a floating dtype"):
            fn(u.int())
    with pytest.raises(ValueError, match="length must be a positive int, got 0"):
        layer.kernel(0)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ((-4,), {}, ValueError, "d_model must be a positive int, got -4"),
        ((None,), {}, TypeError, "d_model must be a positive int, got NoneType"),
        ((8,), dict(n=0), ValueError, "n must be a positive int, got 0"),
        ((8,), dict(n=1.5), TypeError, "n must be a positive int, got float"),
        ((8,), dict(backend=None), ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LTISSM(*args, **kwargs)


def test_registry_and_init_span_short_and_long_memory():
    layer = build_mixer("lti_ssm", 64, n=16)
    assert isinstance(layer, LTISSM)
    a = torch.exp(layer.log_a().detach())
    assert (a > 0).all() and (a < 1).all()
    assert a.min() < 0.5 and a.max() > 0.99  # memories from ~1 token to ~1000 tokens
    assert LTISSM(4, n=1).log_a().shape == (4, 1)


# ---- model-specific properties -----------------------------------------------------------

def test_dsf_is_time_invariant_and_independent_of_the_input():
    layer = _layer()
    u1, u2 = _input(2, 15, seed=1), 3.0 * _input(2, 15, seed=2)
    d1, d2 = layer.to_dsf(u1), layer.to_dsf(u2)
    for name in "ABCD":
        m1, m2 = getattr(d1, name), getattr(d2, name)
        assert torch.equal(m1, m2), f"{name} depends on the input"
        assert torch.equal(m1, m1[:1, :1].expand_as(m1)), f"{name} varies over time or batch"
    assert (d1.A > 0).all() and (d1.A < 1).all()
    # with_output_projection=False: B, C are block diagonal over channels
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
        torch.testing.assert_close(y @ layer.out_proj.weight.T, layer(u), rtol=0, atol=1e-10)
        assert torch.equal(K, torch.diag_embed(torch.diagonal(K, dim1=-2, dim2=-1)))  # no channel mixing
