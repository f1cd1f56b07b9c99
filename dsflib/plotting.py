"""The book's standard figures: Phi heatmaps, transition (A_i) plots and run-label captions.

Every chapter draws the same three kinds of picture; they live here so that chapters stay short
and look alike. All functions take an optional matplotlib ``ax`` and return it.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns
import torch

from ._checks import check_tensor
from .dsf import DSF, phi_matrix

__all__ = ["book_style", "BOOK_DPI", "phi_heatmap", "phi_block_norms", "phi_figure", "transition_heatmap", "caption"]


BOOK_DPI = 150  # figures are rendered at >= 150 dpi so multi-panel labels stay legible


def book_style() -> None:
    """The book's figure style: seaborn's colour-blind-safe palette, 150 dpi, readable font sizes.

    Every chapter calls it once after its imports; heatmaps use diverging ``RdBu_r`` (signed) or
    ``viridis`` (magnitudes), both readable with the common colour-vision deficiencies.
    """
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": BOOK_DPI, "savefig.dpi": BOOK_DPI, "image.cmap": "viridis",
                         "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
                         "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.autolayout": False})


def _axes(ax, size=(5.2, 4.6)):
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def phi_heatmap(phi: torch.Tensor, ax=None, *, title: str = r"$\Phi$", ticks: bool = False):
    """Signed heatmap of the full ``(L*d, L*d)`` matrix of one sequence's blocks ``(L, L, d, d)``."""
    check_tensor("phi", phi, (None, None, None, None), "(L, L, d, d)")
    ax = _axes(ax)
    full = phi_matrix(phi[None].detach().double())[0].numpy()
    bound = float(abs(full).max()) or 1.0
    sns.heatmap(full, ax=ax, cmap="RdBu_r", center=0.0, vmin=-bound, vmax=bound, square=True,
                xticklabels=ticks, yticklabels=ticks, cbar_kws={"shrink": 0.8})
    ax.set(title=title, xlabel="input (token, channel)", ylabel="output (token, channel)")
    return ax


def phi_block_norms(phi: torch.Tensor, ax=None, *, title: str = r"$\log_{10}\|\Phi_{ij}\|_F$"):
    """Heatmap of the Frobenius norm of each ``d x d`` block (log scale), zero blocks blank."""
    check_tensor("phi", phi, (None, None, None, None), "(L, L, d, d)")
    ax = _axes(ax)
    norms = phi.detach().double().flatten(-2).norm(dim=-1)
    logs = torch.where(norms > 0, norms, torch.nan).log10()
    step = max(1, phi.shape[0] // 6)
    sns.heatmap(logs.numpy(), ax=ax, cmap="viridis", square=True, xticklabels=step, yticklabels=step,
                cbar_kws={"shrink": 0.8})
    ax.set(title=title, xlabel="input token j", ylabel="output token i")
    return ax


def phi_figure(phi: torch.Tensor, label: str, *, title: str | None = None,
               heatmap_title: str = r"$\Phi$ ($Ld \times Ld$)",
               norms_title: str = r"block norms $\log_{10}\|\Phi_{ij}\|_F$"):
    r"""The book's standard two-panel picture of one sequence's :math:`\Phi` (blocks ``(L, L, d, d)``):
    the signed matrix and its block norms, with ``title`` above and the run ``label`` below."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    phi_heatmap(phi, axes[0], title=heatmap_title)
    phi_block_norms(phi, axes[1], title=norms_title)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95) if title else (0, 0, 1, 1))
    caption(fig, label)
    return fig


def transition_heatmap(dsf: DSF, ax=None, *, batch: int = 0, max_states: int = 64, title: str | None = None):
    """The diagonal of every :math:`A_i` (its eigenvalues) as a (state index x time) heatmap."""
    if not isinstance(dsf, DSF):
        raise TypeError(f"dsf must be a dsflib.DSF, got {type(dsf).__name__}")
    ax = _axes(ax, size=(7, 3.4))
    A = (dsf.A if dsf.scalar_A else dsf.diag_A())[batch].detach().double()  # (L, N) or (L, H)
    A = A[:, :max_states].T
    sns.heatmap(A.numpy(), ax=ax, cmap="magma", vmin=min(0.0, float(A.min())), vmax=max(1.0, float(A.max())),
                cbar_kws={"label": "eigenvalue of $A_i$"}, xticklabels=max(1, A.shape[1] // 8), yticklabels=False)
    rows = "head" if dsf.scalar_A else "state entry"
    ax.set(xlabel="token i", ylabel=f"{rows} ({A.shape[0]} shown)",
           title=title or ("$A_i$: one scalar per head" if dsf.scalar_A else "$A_i$: diagonal entries"))
    return ax


def caption(fig, label: str) -> None:
    """Write the run label (profile, seed, device, commit, date) under a figure."""
    fig.text(0.01, -0.02, label, fontsize=8, va="top")
