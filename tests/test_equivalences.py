"""The paper's coupling between linear attention and SSD (paper-notes §3.6), checked on the DSF.

Linear attention and an SSD layer (A_i = exp(Δ_i a) I, B_i = Δ_i (I ⊗ b_i) W_V, C_i = W_O (I ⊗ c_i^T))
define the same map when exp(Δ_i a) = η_{i-1}/η_i, Δ_i b_i = φ(k_i)/η_i and c_i = φ(q_i).
"""
import torch

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models._common import dsf_from_scan
from dsflib.models.linear_attention import LinearAttention

F64 = torch.float64


def _coupled_ssd(layer: LinearAttention, u: torch.Tensor, a: float = -1.0):
    """The SSD-form DSF whose Δ, b, c are set from linear attention by the coupling."""
    q, k, _, eta = layer._features(u)
    b, L, H, _ = q.shape
    log_ratio = torch.log(eta[:, 1:] / eta[:, :-1])  # log(η_i / η_{i-1}) for i >= 1
    delta = torch.cat([torch.ones_like(eta[:, :1]), log_ratio / -a], dim=1)  # Δ_0 is free: h_{-1} = 0
    b_in = k / (eta * delta)[..., None]  # b_i = φ(k_i) / (η_i Δ_i)
    d = layer.d_model
    system = dsf_from_scan(q, delta[..., None] * b_in, a * delta, value_map=layer.W_V.weight.expand(b, L, d, d),
                           output_map=layer.W_O.weight.expand(b, L, d, d))
    return system, delta


def test_linear_attention_equals_ssd_under_the_coupling():
    torch.manual_seed(0)
    layer = LinearAttention(6, n=3, heads=2).double()
    u = torch.randn(2, 40, 6, dtype=F64)
    ssd, _ = _coupled_ssd(layer, u)
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
    ssd, delta = _coupled_ssd(layer, u)
    i = torch.arange(1, 25, dtype=F64)
    torch.testing.assert_close(delta[0, 1:, 0], torch.log((i + 1) / i), rtol=1e-12, atol=0)
    assert (delta > 0).all()
    torch.testing.assert_close(apply_phi(materialize_phi(ssd), u), layer(u), rtol=1e-10, atol=1e-12)


def test_generic_inputs_need_negative_delta():
    # For generic inputs η is not monotone, so the coupling asks for Δ_i < 0 somewhere: no SSD with
    # a < 0 and Δ = softplus(.) > 0 reproduces it. This is the DSF's "normalization" difference.
    torch.manual_seed(2)
    layer = LinearAttention(6, n=3).double()
    _, delta = _coupled_ssd(layer, torch.randn(1, 60, 6, dtype=F64))
    assert (delta < 0).any()
