"""verify_layer: agrees for a correct layer, exposes a wrong to_dsf, rejects non-layers."""
import pytest
import torch

from dsflib.models.linear_attention import LinearAttention
from dsflib.verify import verify_layer


def test_correct_layer_verifies_to_rounding():
    torch.manual_seed(0)
    layer = LinearAttention(6, n=2, heads=2).double()
    report = verify_layer(layer, torch.randn(2, 17, 6, dtype=torch.float64))
    assert report.ok(1e-10) and report.N == 12 and report.n == 2
    assert "max |forward - recurrence|" in str(report)


def test_wrong_to_dsf_is_caught():
    torch.manual_seed(0)
    layer = LinearAttention(4, n=2).double()
    real = layer.to_dsf

    def broken(u):
        s = real(u)
        return type(s)(s.A * 0.5, s.B, s.C, s.D)

    layer.to_dsf = broken
    report = verify_layer(layer, torch.randn(1, 9, 4, dtype=torch.float64))
    assert not report.ok(1e-6) and report.forward_vs_recurrence > 1e-3
    assert report.recurrence_vs_phi < 1e-10  # the DSF itself is consistent; it is just not the layer


def test_rejects_layers_without_to_dsf():
    with pytest.raises(TypeError, match="layer must define to_dsf"):
        verify_layer(torch.nn.Identity(), torch.zeros(1, 3, 2))
