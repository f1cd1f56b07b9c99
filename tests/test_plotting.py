"""The book's standard figures draw what they claim and reject wrong input."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dsflib import materialize_phi, random_dsf  # noqa: E402
from dsflib.plotting import caption, phi_block_norms, phi_heatmap, transition_heatmap  # noqa: E402


def test_phi_figures_show_the_matrix_and_blank_zero_blocks():
    system = random_dsf(1, 6, 2, 1, seed=0)
    phi = materialize_phi(system)[0]
    ax = phi_heatmap(phi)
    shown = ax.collections[0].get_array().reshape(12, 12)
    np.testing.assert_allclose(shown[2, 0], phi[1, 0, 0, 0].item(), rtol=1e-6)
    ax = phi_block_norms(phi)
    norms = np.ma.filled(ax.collections[0].get_array().reshape(6, 6).astype(float), np.nan)
    assert np.isnan(norms[0, 5]) and np.isfinite(norms[5, 0])  # above the diagonal: zero, left blank
    plt.close("all")


def test_transition_heatmap_shows_the_diagonal_of_A():
    system = random_dsf(1, 7, 2, 2, heads=2, seed=1)
    ax = transition_heatmap(system)
    assert "one scalar per head" in ax.get_title()
    np.testing.assert_allclose(ax.collections[0].get_array().reshape(2, 7), system.A[0].T.numpy(), rtol=1e-6)
    fig = ax.figure
    caption(fig, "profile=ci")
    assert any(t.get_text() == "profile=ci" for t in fig.texts)
    with pytest.raises(TypeError, match="dsf must be a dsflib.DSF"):
        transition_heatmap(system.A)
    with pytest.raises(ValueError, match=r"phi must have shape \(L, L, d, d\)"):
        phi_heatmap(torch.zeros(1, 3, 3, 2, 2))
    plt.close("all")
