"""Normalized attention (the DSF paper's proposal): identity kernel, learned input-dependent normalizer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..dsf import DSF, accumulation_dtype
from ..scan import linear_scan
from ._common import check_mixer_args, check_mixer_input, project_heads, projected_scan_dsf

__all__ = ["NormalizedAttention", "NORMS"]

NORMS = ("exp", "softplus", "sigmoid")


class NormalizedAttention(nn.Module):
    r"""Causal attention without a kernel whose normalizer is a learned scalar per head:
    :math:`y_i = W_O\,\frac{1}{\eta_i}\sum_{j \le i} (q_i^\top k_j)\, v_j`, :math:`\eta_i = f(W_\eta u_i + b_\eta) > 0`
    with :math:`f \in \{\exp, \mathrm{softplus}, \mathrm{sigmoid}\}` (``norm``), :math:`q_i = W_Q u_i`,
    :math:`k_i = W_K u_i` (``n`` per head), :math:`v_i = W_V u_i` (``d_model/heads`` channels per head), no
    :math:`1/\sqrt{n}` scale. DSF (paper eq. 22): :math:`A_i = (\eta_{i-1}/\eta_i) I`
    (:math:`= \exp(W_\eta(u_{i-1} - u_i))` for ``exp``: the bias cancels),
    :math:`B_i = \frac{1}{\eta_i}(I \otimes k_i) W_V`, :math:`C_i = W_O (I \otimes q_i^\top)`, :math:`D_i = 0`,
    :math:`N = n\,d` (block-diagonal over heads; :math:`\eta_{-1} := \eta_0`).
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"(\eta_{i-1}/\eta_i)\, I,\ \eta_i = f(W_\eta u_i + b_\eta)"
    dsf_state_size = r"n d"

    def __init__(self, d_model: int, *, n: int = 16, heads: int = 1, norm: str = "exp", backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, heads, backend)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.d_model, self.n, self.heads, self.norm, self.backend = d_model, n, heads, norm, backend
        self.W_Q = nn.Linear(d_model, heads * n, bias=False)
        self.W_K = nn.Linear(d_model, heads * n, bias=False)
        self.W_V = nn.Linear(d_model, d_model, bias=False)
        self.W_O = nn.Linear(d_model, d_model, bias=False)
        self.W_eta = nn.Linear(d_model, heads, bias=True)  # eta logits, one per head

    def _eta_logits(self, u: torch.Tensor) -> torch.Tensor:
        return self.W_eta(u).to(accumulation_dtype(u.dtype))

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm == "exp":
            return torch.exp(x)
        if self.norm == "softplus":
            return F.softplus(x)
        return torch.sigmoid(x)

    def _inv_f(self, x: torch.Tensor) -> torch.Tensor:
        # 1/eta computed without forming eta where that is more accurate (no underflow of eta)
        if self.norm == "exp":
            return torch.exp(-x)
        if self.norm == "softplus":
            return 1.0 / F.softplus(x)
        return 1.0 + torch.exp(-x)

    def normalizer(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`\eta_i = f(W_\eta u_i + b_\eta) > 0` per head, shape ``(batch, L, heads)``."""
        u = check_mixer_input(u, self.d_model, self)
        return self._f(self._eta_logits(u)).to(u.dtype)

    def _qkv(self, u: torch.Tensor):
        """q, k ``(batch, L, H, n)`` and v ``(batch, L, H, d/H)``."""
        return project_heads(u, self.heads, self.W_Q, self.W_K, self.W_V)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``: one undecayed scan, then a per-head ``1/eta_i``."""
        u = check_mixer_input(u, self.d_model, self)
        q, k, v = self._qkv(u)
        b, L, H, _ = q.shape
        num = linear_scan(q, k, v, q.new_zeros(b, L, H), backend=self.backend)
        inv_eta = self._inv_f(self._eta_logits(u))
        y = (num.to(inv_eta.dtype) * inv_eta[..., None]).to(v.dtype)
        return self.W_O(y.reshape(b, L, self.d_model))

    def to_dsf(self, u: torch.Tensor) -> DSF:
        r"""The exact DSF of the layer for input ``u``: ``A`` is :math:`\eta_{i-1}/\eta_i`, one scalar per
        head, shape ``(batch, L, heads)``; :math:`N = n\,d`."""
        u = check_mixer_input(u, self.d_model, self)
        q, k, _ = self._qkv(u)
        b, L, H, _ = q.shape
        return projected_scan_dsf(q, k, q.new_zeros(b, L, H), self.W_V.weight, self.W_O.weight, self.normalizer(u))

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, n={self.n}, heads={self.heads}, norm={self.norm!r}, "
                f"backend={self.backend!r}")
