"""SSD (Mamba-2's scalar-decay SSM): forward == DSF recurrence == Phi u, backends, precision, bad input,
scalar-per-head transitions, and SSD as S6 with tied decays."""
import copy

import pytest
import torch
import torch.nn.functional as F

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.models.s6 import S6
from dsflib.models.ssd import SSD

F64 = torch.float64
D_MODEL, N_EXP = 8, 3


def _layer(seed: int = 0, heads: int = 2, **kwargs) -> SSD:
    """An fp64 SSD with randomised parameters (step sizes of order 1, so every term matters)."""
    torch.manual_seed(seed)
    layer = SSD(D_MODEL, n=N_EXP, heads=heads, **kwargs).double()
    with torch.no_grad():
        layer.dt_proj.bias.normal_(0.0, 0.5)
        layer.A_log.normal_(0.0, 0.5)
        layer.D.normal_(1.0, 0.5)
    return layer


def _input(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, D_MODEL, generator=g, dtype=F64)


@pytest.mark.parametrize("heads", [1, 2, 8])
@pytest.mark.parametrize("length", [1, 7, 63, 130])
def test_forward_equals_dsf_recurrence_and_phi(length, heads):
    layer = _layer(heads=heads)
    u = _input(2, length)
    y = layer(u)
    dsf = layer.to_dsf(u)
    assert y.shape == (2, length, D_MODEL) and y.dtype == F64
    assert (dsf.N, dsf.n, dsf.d) == (N_EXP * D_MODEL, N_EXP, D_MODEL)
    assert dsf.A.shape == (2, length, heads) and dsf.scalar_A
    torch.testing.assert_close(recurrence(dsf, u), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(apply_phi(materialize_phi(dsf), u), y, rtol=0, atol=1e-10)


def test_forward_is_causal():
    layer = _layer()
    u = _input(1, 30)
    u2 = u.clone()
    u2[:, 17:] += 1.0
    y, y2 = layer(u), layer(u2)
    torch.testing.assert_close(y[:, :17], y2[:, :17], rtol=0, atol=1e-12)
    assert (y[:, 17:] - y2[:, 17:]).abs().max() > 1e-3


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
    assert set(g_c) == {"dt_proj.weight", "dt_proj.bias", "B_proj.weight", "C_proj.weight", "A_log", "D",
                        "out_proj.weight", "u"}
    for name in g_c:
        assert g_c[name].abs().max() > 0, f"gradient wrt {name} is zero"
        torch.testing.assert_close(g_c[name], g_r[name], rtol=1e-9, atol=1e-10, msg=f"gradient wrt {name}")


def test_float32_matches_float64():
    # fp32 has unit roundoff 6e-8; the layer chains a few O(d) matmuls and a scan that sums at most
    # 64 tokens per chunk plus a few chunk-state updates (in fp32). Errors of a few hundred ulps of
    # max|y|, i.e. ~1e-5 relative, are the worst expected; a half-precision path (eps 1e-3) fails this.
    layer = _layer()
    u = _input(2, 130)
    y64 = layer(u)
    y32 = copy.deepcopy(layer).float()(u.float())
    assert y32.dtype == torch.float32
    rel = ((y32.double() - y64).abs().max() / y64.abs().max()).item()
    assert rel < 1e-5, rel


def test_bad_input_is_rejected():
    layer = SSD(D_MODEL, n=N_EXP, heads=2)
    u = torch.randn(2, 5, D_MODEL)
    for fn in (layer, layer.to_dsf):
        with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) = \(\*, \*, 8\), got shape"):
            fn(torch.randn(2, 5, 7))
        with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) \(3 dims\)"):
            fn(u[0])
        with pytest.raises(TypeError, match=r"u must have a floating dtype"):
            fn(u.long())


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ((0,), {}, ValueError, "d_model must be a positive int, got 0"),
        (("8",), {}, TypeError, "d_model must be a positive int, got str"),
        ((8,), dict(n=-2), ValueError, "n must be a positive int, got -2"),
        ((8,), dict(heads=0), ValueError, "heads must be a positive int, got 0"),
        ((8,), dict(heads=2.0), TypeError, "heads must be a positive int, got float"),
        ((8,), dict(heads=3), ValueError, "heads must divide d_model=8, got heads=3"),
        ((8,), dict(backend="fast"), ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SSD(*args, **kwargs)


def test_registry_and_init():
    layer = build_mixer("ssd", 64, n=4, heads=4)
    assert isinstance(layer, SSD) and layer.head_dim == 16
    torch.testing.assert_close(-torch.exp(layer.A_log), -torch.tensor([1.0, 6.0, 11.0, 16.0]))
    assert torch.equal(-torch.exp(SSD(8).A_log), torch.tensor([-1.0]))  # one head: a = -1 as in the paper's code
    dt = F.softplus(layer.dt_proj.bias.detach().double())
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)


# ---- model-specific properties -----------------------------------------------------------

@pytest.mark.parametrize("heads", [1, 4])
def test_transition_is_one_scalar_per_head_equal_to_exp_delta_a(heads):
    layer = _layer(heads=heads)
    u = _input(2, 11)
    dsf = layer.to_dsf(u)
    assert dsf.scalar_A and dsf.A.shape == (2, 11, heads)
    with torch.no_grad():
        delta = F.softplus(u @ layer.dt_proj.weight.T + layer.dt_proj.bias)
        expected = torch.exp(delta * -torch.exp(layer.A_log))
    torch.testing.assert_close(dsf.A, expected, rtol=1e-14, atol=0)
    assert (dsf.A > 0).all() and (dsf.A < 1).all()
    # head h scales exactly its N/H = n*d/H consecutive state entries
    full = dsf.diag_A().reshape(2, 11, heads, -1)
    assert torch.equal(full, full[..., :1].expand_as(full))
    if heads == 1:  # the paper's A_i = exp(Delta_i a) I: a scalar multiple of the identity for every i
        assert torch.equal(dsf.diag_A(), dsf.A.expand(2, 11, N_EXP * D_MODEL))
    else:
        assert (full[:, :, 1:, 0] != full[:, :, :1, 0]).all()


def _tied_pair(heads: int):
    """An S6 whose decays are tied to one scalar per channel (``heads = d``) or one shared scalar with
    a shared step size (``heads = 1``), and the SSD with the same parameters."""
    torch.manual_seed(3)
    s6 = S6(D_MODEL, n=N_EXP, dt_rank=2).double()
    ssd = SSD(D_MODEL, n=N_EXP, heads=heads).double()
    with torch.no_grad():
        s6.dt_up.bias.normal_(0.0, 0.5)
        s6.D.normal_(1.0, 0.5)
        if heads == 1:  # Delta_ic = Delta_i for every channel, a_ck = a
            s6.dt_up.weight.copy_(s6.dt_up.weight[:1].expand(D_MODEL, -1))
            s6.dt_up.bias.fill_(s6.dt_up.bias[0].item())
            s6.A_log.fill_(0.4)
        else:  # A_c = a_c I_n: one scalar per channel, channel = head
            s6.A_log.copy_(torch.randn(D_MODEL, 1, dtype=F64).expand(-1, N_EXP))
        W = s6.dt_up.weight @ s6.dt_down.weight
        ssd.dt_proj.weight.copy_(W[:heads])
        ssd.dt_proj.bias.copy_(s6.dt_up.bias[:heads])
        ssd.A_log.copy_(s6.A_log[:heads, 0])
        for name in ("B_proj", "C_proj", "out_proj"):
            getattr(ssd, name).weight.copy_(getattr(s6, name).weight)
        ssd.D.copy_(s6.D)
    return s6, ssd


@pytest.mark.parametrize("heads", [1, D_MODEL])
def test_ssd_is_s6_with_tied_decays(heads):
    s6, ssd = _tied_pair(heads)
    u = _input(2, 40)
    torch.testing.assert_close(ssd(u), s6(u), rtol=0, atol=1e-12)
    d6, dd = s6.to_dsf(u), ssd.to_dsf(u)
    torch.testing.assert_close(dd.diag_A(), d6.A, rtol=0, atol=1e-14)
    for name in "BCD":
        torch.testing.assert_close(getattr(dd, name), getattr(d6, name), rtol=0, atol=1e-14)
    # untied: once one channel's rates differ, S6 is no longer an SSD
    with torch.no_grad():
        s6.A_log[0, 1] += 0.5
    assert (ssd(u) - s6(u)).abs().max() > 1e-4
