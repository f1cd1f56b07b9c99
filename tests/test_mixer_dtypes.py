"""Every mixer and the dtype of its input: a mismatch is a TypeError naming ``u`` and both dtypes (as
torch's own layers refuse it), a layer converted with ``.to(dtype)`` runs in that dtype, and
``torch.autocast`` runs a float32 layer in lower precision."""
import pytest
import torch

from dsflib.models import MIXERS, build_mixer


def _layer(name):
    torch.manual_seed(0)
    return build_mixer(name, d_model=16, n=4)


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_an_input_of_another_dtype_is_a_clear_error(name):
    layer = _layer(name)
    x = torch.randn(2, 5, 16)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        with pytest.raises(TypeError, match=rf"u must have the dtype of the \w+ layer's parameters "
                                            rf"\(torch.float32\), got {dtype}"):
            layer(x.to(dtype))
        if hasattr(layer, "to_dsf"):
            with pytest.raises(TypeError, match="u must have the dtype"):
                layer.to_dsf(x.to(dtype))
    assert layer(x).dtype == torch.float32


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_a_converted_layer_and_autocast_run_in_lower_precision(name):
    layer = _layer(name)
    x = torch.randn(2, 5, 16)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = layer(x)
    assert torch.isfinite(mixed).all() and mixed.shape == reference.shape
    converted = layer.to(torch.bfloat16)(x.bfloat16())
    assert converted.dtype == torch.bfloat16 and torch.isfinite(converted).all()
    scale = reference.abs().max()
    assert (converted.float() - reference).abs().max() <= 0.1 * scale + 0.05, name
