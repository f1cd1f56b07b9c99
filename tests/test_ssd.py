"""SSD (Mamba-2's scalar-decay SSM): forward == DSF recurrence == Phi u, backends, precision, bad input,
scalar-per-head transitions, and SSD as S6 with tied decays."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from contract import (F64, HEADS_ARG_ERRORS, LONG_LENGTHS, MIXER_ARG_ERRORS, RAGGED_LENGTHS, assert_backends_agree,
                      assert_causal, assert_float32_close, assert_layer_equals_its_dsf, assert_registry_builds,
                      assert_rejects_bad_input, make_input)
from dsflib.models.s6 import S6
from dsflib.models.ssd import SSD

D_MODEL, N_EXP = 8, 3
_input = partial(make_input, d=D_MODEL)


def _layer(seed: int = 0, heads: int = 2, **kwargs) -> SSD:
    """An fp64 SSD with randomised parameters (step sizes of order 1, so every term matters)."""
    torch.manual_seed(seed)
    layer = SSD(D_MODEL, n=N_EXP, heads=heads, **kwargs).double()
    with torch.no_grad():
        layer.W_delta.bias.normal_(0.0, 0.5)
        layer.A_log.normal_(0.0, 0.5)
        layer.D.normal_(1.0, 0.5)
    return layer


@pytest.mark.parametrize("heads", [1, 2, 8])
@pytest.mark.parametrize("length", RAGGED_LENGTHS)
def test_forward_equals_dsf_recurrence_and_phi(length, heads):
    assert_layer_equals_its_dsf(_layer(heads=heads), _input(2, length), n=N_EXP, A_dim=heads, feedthrough=True)


def test_forward_is_causal():
    u = _input(1, 30)
    u2 = u.clone()
    u2[:, 17:] += 1.0
    assert_causal(_layer(), u, u2, 17)


@pytest.mark.parametrize("length", LONG_LENGTHS)
def test_chunked_parallel_and_recurrent_backends_agree_with_gradients(length):
    assert_backends_agree(
        _layer(), _input(2, length), _input(2, length, seed=3),
        params={"W_delta.weight", "W_delta.bias", "W_B.weight", "W_C.weight", "A_log", "D", "W_out.weight"},
        out_tol=dict(atol=1e-10), grad_tol=dict(rtol=1e-9, atol=1e-10), nonzero_grads=True,
    )


def test_float32_matches_float64():
    # fp32 has unit roundoff 6e-8; the layer chains a few O(d) matmuls and a scan that sums at most
    # 64 tokens per chunk plus a few chunk-state updates (in fp32). Errors of a few hundred ulps of
    # max|y|, i.e. ~1e-5 relative, are the worst expected; a half-precision path (eps 1e-3) fails this.
    assert_float32_close(_layer(), _input(2, 130), rel=1e-5)


def test_bad_input_is_rejected():
    assert_rejects_bad_input(SSD(D_MODEL, n=N_EXP, heads=2), D_MODEL)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    MIXER_ARG_ERRORS + HEADS_ARG_ERRORS + [
        (("8",), {}, TypeError, "d_model must be a positive int, got str"),
        ((8,), dict(n=-2), ValueError, "n must be a positive int, got -2"),
        ((8,), dict(heads=2.0), TypeError, "heads must be a positive int, got float"),
        ((8,), dict(backend="fast"), ValueError, "backend must be one of"),
        ((8,), dict(channel_bias=1), TypeError, "channel_bias must be a bool, got int"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SSD(*args, **kwargs)


def test_registry_and_init():
    layer = assert_registry_builds("ssd", SSD, 64, n=4, heads=4)
    assert layer.head_dim == 16
    torch.testing.assert_close(-torch.exp(layer.A_log), -torch.tensor([1.0, 6.0, 11.0, 16.0]))
    assert torch.equal(-torch.exp(SSD(8).A_log), torch.tensor([-1.0]))  # one head: a = -1 as in the paper's code
    dt = F.softplus(layer.W_delta.bias.detach().double())
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)


# ---- model-specific properties -----------------------------------------------------------

@pytest.mark.parametrize("heads", [1, 4])
def test_transition_is_one_scalar_per_head_equal_to_exp_delta_a(heads):
    layer = _layer(heads=heads)
    u = _input(2, 11)
    dsf = layer.to_dsf(u)
    assert dsf.scalar_A and dsf.A.shape == (2, 11, heads)
    with torch.no_grad():
        delta = F.softplus(u @ layer.W_delta.weight.T + layer.W_delta.bias)
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
        s6.W_delta_up.bias.normal_(0.0, 0.5)
        s6.D.normal_(1.0, 0.5)
        if heads == 1:  # Delta_ic = Delta_i for every channel, a_ck = a
            s6.W_delta_up.weight.copy_(s6.W_delta_up.weight[:1].expand(D_MODEL, -1))
            s6.W_delta_up.bias.fill_(s6.W_delta_up.bias[0].item())
            s6.A_log.fill_(0.4)
        else:  # A_c = a_c I_n: one scalar per channel, channel = head
            s6.A_log.copy_(torch.randn(D_MODEL, 1, dtype=F64).expand(-1, N_EXP))
        W = s6.W_delta_up.weight @ s6.W_delta_down.weight
        ssd.W_delta.weight.copy_(W[:heads])
        ssd.W_delta.bias.copy_(s6.W_delta_up.bias[:heads])
        ssd.A_log.copy_(s6.A_log[:heads, 0])
        for name in ("W_B", "W_C", "W_out"):
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


# ---- the authors' released variant (S6_2): one step bias per channel -----------------------

def _s6_2(seed: int = 0, heads: int = 1) -> SSD:
    torch.manual_seed(seed)
    layer = SSD(D_MODEL, n=N_EXP, heads=heads, channel_bias=True).double()
    with torch.no_grad():
        layer.delta_bias.normal_(0.0, 0.7)
        layer.A_log.normal_(0.0, 0.5)
        layer.D.normal_(1.0, 0.5)
    return layer


def _s6_2_reference(layer, u):
    """Delta_ic = softplus(w_h(c)^T u_i + b_c), h^(c)_i = exp(Delta_ic a_h(c)) h^(c)_{i-1} + Delta_ic b_i u_ic,
    y_i = W_out(c_i^T h^(c)_i + D_c u_ic), one token at a time from the raw parameters."""
    p = layer.head_dim
    z = (u @ layer.W_delta.weight.T).repeat_interleave(p, dim=-1) + layer.delta_bias
    delta = F.softplus(z)
    a = -torch.exp(layer.A_log).repeat_interleave(p)
    bb, cc = u @ layer.W_B.weight.T, u @ layer.W_C.weight.T
    h = u.new_zeros(u.shape[0], D_MODEL, N_EXP)
    ys = []
    for i in range(u.shape[1]):
        h = torch.exp(delta[:, i] * a)[..., None] * h + (delta[:, i] * u[:, i])[..., None] * bb[:, i, None, :]
        ys.append((torch.einsum("bcn,bn->bc", h, cc[:, i]) + layer.D * u[:, i]) @ layer.W_out.weight.T)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("length", RAGGED_LENGTHS)
def test_channel_bias_variant_equals_dsf_recurrence_and_phi(length, heads):
    layer = _s6_2(heads=heads)
    _, dsf = assert_layer_equals_its_dsf(layer, _input(2, length), n=N_EXP, A_dim=D_MODEL, feedthrough=True)
    assert dsf.scalar_A  # one scalar per channel, shared by its n state entries


@pytest.mark.parametrize("heads", [1, 2])
def test_channel_bias_variant_matches_the_equations(heads):
    layer = _s6_2(heads=heads)
    u = _input(2, 25, seed=4)
    torch.testing.assert_close(layer(u), _s6_2_reference(layer, u), rtol=0, atol=1e-12)


def test_channel_bias_variant_backends_agree_with_gradients():
    assert_backends_agree(
        _s6_2(), _input(2, 130), _input(2, 130, seed=3),
        params={"W_delta.weight", "delta_bias", "W_B.weight", "W_C.weight", "A_log", "D", "W_out.weight"},
        out_tol=dict(atol=1e-10), grad_tol=dict(rtol=1e-9, atol=1e-10), nonzero_grads=True,
    )


def test_channel_bias_variant_transitions_differ_per_channel_only_through_the_bias():
    layer = _s6_2()
    u = _input(2, 11)
    dsf = layer.to_dsf(u)
    assert dsf.A.shape == (2, 11, D_MODEL)
    with torch.no_grad():
        z = u @ layer.W_delta.weight.T + layer.delta_bias  # (b, L, d): one projection, d biases
        torch.testing.assert_close(dsf.A, torch.exp(F.softplus(z) * -torch.exp(layer.A_log)), rtol=1e-14, atol=0)
        # the channels' decays differ (through the bias), unlike the default SSD's one scalar per head
        assert (dsf.A.std(dim=-1) > 1e-3).all()
        # with equal biases it is the default SSD with one head
        same = SSD(D_MODEL, n=N_EXP, heads=1).double()
        for name in ("W_B", "W_C", "W_out"):
            getattr(same, name).weight.copy_(getattr(layer, name).weight)
        same.W_delta.weight.copy_(layer.W_delta.weight)
        same.W_delta.bias.fill_(0.3)
        layer.delta_bias.fill_(0.3)
        same.A_log.copy_(layer.A_log)
        same.D.copy_(layer.D)
    torch.testing.assert_close(layer(u), same(u), rtol=0, atol=1e-13)


def test_default_is_unchanged():
    layer = SSD(8, n=2, heads=2)
    assert not layer.channel_bias and not hasattr(layer, "delta_bias") and layer.W_delta.bias is not None
    assert {name for name, _ in layer.named_parameters()} == {
        "W_delta.weight", "W_delta.bias", "W_B.weight", "W_C.weight", "A_log", "D", "W_out.weight"}
    assert_registry_builds("ssd", SSD, 16, n=4, channel_bias=True)
