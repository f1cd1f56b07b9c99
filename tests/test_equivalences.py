"""The coupling between linear attention and SSD (our derivation; the paper compares the two DSFs in §4.2),
checked on the DSF, and the paper's Lemma 2 (App. D): a larger state recovers a smaller DSF.

Linear attention and an SSD layer (A_i = exp(Δ_i a) I, B_i = Δ_i (I ⊗ b_i) W_V, C_i = W_O (I ⊗ c_i^T))
define the same map when exp(Δ_i a) = η_{i-1}/η_i, Δ_i b_i = φ(k_i)/η_i and c_i = φ(q_i).
"""
import pytest
import torch

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.equivalences import coupled_ssd, ssd_from_tied_s6
from dsflib.models.linear_attention import LinearAttention

F64 = torch.float64


def test_linear_attention_equals_ssd_under_the_coupling():
    torch.manual_seed(0)
    layer = LinearAttention(6, n=3, heads=2).double()
    u = torch.randn(2, 40, 6, dtype=F64)
    ssd, _ = coupled_ssd(layer, u)
    attention = layer.to_dsf(u)
    assert ssd.scalar_A and attention.scalar_A  # both: one scalar times the identity per head
    torch.testing.assert_close(materialize_phi(ssd), materialize_phi(attention), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(recurrence(ssd, u), layer(u), rtol=1e-10, atol=1e-12)


def test_the_coupling_is_a_valid_ssd_when_the_normalizer_grows():
    # An SSD needs Δ_i > 0 (with a < 0). With a repeated token, η_i = (i+1) φ(q)ᵀφ(k) grows, so the
    # coupled Δ_i = log((i+1)/i) is positive and decays like 1/i: attention forgets by averaging.
    torch.manual_seed(1)
    layer = LinearAttention(4, n=2).double()
    u = torch.randn(1, 1, 4, dtype=F64).expand(1, 25, 4).contiguous()
    ssd, delta = coupled_ssd(layer, u)
    i = torch.arange(1, 25, dtype=F64)
    torch.testing.assert_close(delta[0, 1:, 0], torch.log((i + 1) / i), rtol=1e-12, atol=0)
    assert (delta > 0).all()
    torch.testing.assert_close(apply_phi(materialize_phi(ssd), u), layer(u), rtol=1e-10, atol=1e-12)


def test_generic_inputs_need_negative_delta():
    # For generic inputs η is not monotone, so the coupling asks for Δ_i < 0 somewhere: no SSD with
    # a < 0 and Δ = softplus(.) > 0 reproduces it. This is the DSF's "normalization" difference.
    torch.manual_seed(2)
    layer = LinearAttention(6, n=3).double()
    _, delta = coupled_ssd(layer, torch.randn(1, 60, 6, dtype=F64))
    assert (delta < 0).any()


def test_coupled_ssd_rejects_bad_arguments():
    layer = LinearAttention(4, n=2).double()
    u = torch.randn(1, 5, 4, dtype=F64)
    with pytest.raises(ValueError, match="a must be negative"):
        coupled_ssd(layer, u, a=0.5)
    with pytest.raises(TypeError, match="attention must be a LinearAttention"):
        coupled_ssd(torch.nn.Identity(), u)


@pytest.mark.parametrize("heads", [1, 2, 6])
def test_tied_s6_equals_its_ssd(heads):
    from dsflib.models.s6 import S6

    torch.manual_seed(heads)
    d, n = 6, 3
    s6 = S6(d, n=n, dt_rank=2).double()
    group = d // heads
    with torch.no_grad():  # tie: one step projection, bias and rate per head
        s6.W_delta_up.weight.copy_(s6.W_delta_up.weight[::group].repeat_interleave(group, 0))
        s6.W_delta_up.bias.copy_(s6.W_delta_up.bias[::group].repeat_interleave(group, 0))
        s6.A_log.copy_(torch.randn(heads, 1, dtype=F64).repeat_interleave(group, 0).expand(-1, n))
    ssd = ssd_from_tied_s6(s6, heads)
    u = torch.randn(2, 30, d, dtype=F64)
    torch.testing.assert_close(ssd(u), s6(u), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(materialize_phi(ssd.to_dsf(u)), materialize_phi(s6.to_dsf(u)), rtol=1e-12, atol=1e-13)
    with torch.no_grad():
        s6.A_log[0, 1] += 0.5
    with pytest.raises(ValueError, match="s6 is not tied.*A_log differs"):
        ssd_from_tied_s6(s6, heads)


def test_untied_s6_is_refused():
    from dsflib.models.s6 import S6

    with pytest.raises(ValueError, match="s6 is not tied for heads=1: its step projection differs within a head"):
        ssd_from_tied_s6(S6(4, n=2).double(), 1)


# ---- Lemma 2: state expansion can recover a smaller DSF (App. D) ---------------------------

@pytest.mark.parametrize("n,n_bar,heads", [(1, 1, None), (1, 3, None), (2, 5, None), (3, 4, 3), (2, 2, 1)])
def test_expanded_state_recovers_the_smaller_dsf(n, n_bar, heads):
    from dsflib import random_dsf
    from dsflib.equivalences import expand_state

    d, L = 3, 17
    small = random_dsf(2, L, d, n, heads=heads, seed=n * 10 + n_bar, dtype=F64)
    big = expand_state(small, n_bar * d, seed=5)
    assert (big.N, big.d, big.length) == (n_bar * d, d, L) and not big.scalar_A
    torch.testing.assert_close(materialize_phi(big), materialize_phi(small), rtol=0, atol=1e-14)
    u = torch.randn(2, L, d, dtype=F64, generator=torch.Generator().manual_seed(n_bar))
    y_small, h_small = recurrence(small, u, return_final_state=True)
    y_big, h_big = recurrence(big, u, return_final_state=True)
    torch.testing.assert_close(y_big, y_small, rtol=0, atol=1e-14)
    torch.testing.assert_close(h_big[:, : small.N], h_small, rtol=0, atol=1e-14)  # the first N states
    if n_bar > n:  # the extra states are live, they just never reach the output
        assert h_big[:, small.N :].abs().max() > 1e-3


def test_expand_state_rejects_bad_arguments():
    from dsflib import random_dsf
    from dsflib.equivalences import expand_state

    small = random_dsf(1, 4, 3, 2, dtype=F64)  # N = 6
    with pytest.raises(ValueError, match=r"^N_bar must be at least the state size N=6 of dsf, got N_bar=3$"):
        expand_state(small, 3)
    with pytest.raises(ValueError, match=r"^N_bar must be a multiple of d=3 \(N = n\*d\), got N_bar=7$"):
        expand_state(small, 7)
    with pytest.raises(ValueError, match="^N_bar must be a positive int"):
        expand_state(small, 0)
    with pytest.raises(TypeError, match="^N_bar must be a positive int"):
        expand_state(small, 6.0)
    with pytest.raises(TypeError, match="^dsf must be a dsflib.DSF"):
        expand_state(small.A, 6)
