"""Linear attention (Katharopoulos et al. 2020): elu+1 features, causal, normalized - as a DSF."""
from __future__ import annotations

import torch
from torch import nn

from ..dsf import DSF, accumulation_dtype
from ..scan import linear_scan
from ._common import check_mixer_args, check_mixer_input, project_heads, projected_scan_dsf
from .features import elu_plus_one

__all__ = ["LinearAttention"]


class LinearAttention(nn.Module):
    r"""Causal linear attention with :math:`\phi = \mathrm{elu} + 1`: per head,
    :math:`y_i = W_O\,\frac{1}{\eta_i}\sum_{j \le i} (\phi(q_i)^\top \phi(k_j))\, v_j` with
    :math:`\eta_i = \phi(q_i)^\top \sum_{j \le i} \phi(k_j)`, :math:`q_i = W_Q u_i`, :math:`k_i = W_K u_i`
    (``n`` per head), :math:`v_i = W_V u_i` (``d_model/heads`` channels per head). DSF (paper eqs. 13-16,
    recurrent normalization): :math:`A_i = (\eta_{i-1}/\eta_i) I`,
    :math:`B_i = \frac{1}{\eta_i}(I \otimes \phi(k_i)) W_V`,
    :math:`C_i = W_O (I \otimes \phi(q_i)^\top)`, :math:`D_i = 0`, :math:`N = n\,d` (block-diagonal over heads;
    :math:`\eta_{-1} := \eta_0`).
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"(\eta_{i-1}/\eta_i)\, I"
    dsf_state_size = r"n d"

    def __init__(self, d_model: int, *, n: int = 16, heads: int = 1, backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, heads, backend)
        self.d_model, self.n, self.heads, self.backend = d_model, n, heads, backend
        self.W_Q = nn.Linear(d_model, heads * n, bias=False)
        self.W_K = nn.Linear(d_model, heads * n, bias=False)
        self.W_V = nn.Linear(d_model, d_model, bias=False)
        self.W_O = nn.Linear(d_model, d_model, bias=False)

    def features(self, u: torch.Tensor):
        r"""The ingredients of the layer for input ``u``: :math:`\phi(q_i), \phi(k_i)` ``(batch, L, H, n)``,
        :math:`v_i` ``(batch, L, H, d/H)`` and :math:`\eta_i` ``(batch, L, H)``."""
        u = check_mixer_input(u, self.d_model, self)
        q, k, v = project_heads(u, self.heads, self.W_Q, self.W_K, self.W_V)
        q, k = elu_plus_one(q), elu_plus_one(k)
        acc = accumulation_dtype(q.dtype)
        eta = (q.to(acc) * torch.cumsum(k.to(acc), dim=1)).sum(-1)
        return q, k, v, eta

    def normalizer(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`\eta_i = \phi(q_i)^\top \sum_{j \le i} \phi(k_j) > 0` per head, shape ``(batch, L, heads)``."""
        return self.features(u)[3].to(u.dtype)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``: one scan for the numerator, a cumsum for eta."""
        q, k, v, eta = self.features(u)
        b, L, H, _ = q.shape
        num = linear_scan(q, k, v, q.new_zeros(b, L, H), backend=self.backend)
        y = (num.to(eta.dtype) / eta[..., None]).to(v.dtype)
        return self.W_O(y.reshape(b, L, self.d_model))

    def to_dsf(self, u: torch.Tensor) -> DSF:
        r"""The exact DSF of the layer for input ``u`` (paper convention :math:`A_i = \eta_{i-1}/\eta_i`),
        with ``A`` one scalar per head, shape ``(batch, L, heads)``, and :math:`N = n\,d`."""
        q, k, _, eta = self.features(u)
        b, L, H, _ = q.shape
        return projected_scan_dsf(q, k, q.new_zeros(b, L, H), self.W_V.weight, self.W_O.weight, eta.to(q.dtype))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n={self.n}, heads={self.heads}, backend={self.backend!r}"
