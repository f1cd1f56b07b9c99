"""Normalized attention (the DSF paper's proposal): identity kernel, learned input-dependent normalizer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..dsf import DSF, accumulation_dtype
from ..scan import BACKENDS, linear_scan
from ._common import check_mixer_input, dsf_from_scan

__all__ = ["NormalizedAttention", "NORMS"]

NORMS = ("exp", "softplus", "sigmoid")


class NormalizedAttention(nn.Module):
    r"""Causal attention without a kernel whose normalizer is a learned scalar per head:
    :math:`y_i = W_O\,\frac{1}{\eta_i}\sum_{j \le i} (q_i^\top k_j)\, v_j`, :math:`\eta_i = f(w^\top u_i + b) > 0`
    with :math:`f \in \{\exp, \mathrm{softplus}, \mathrm{sigmoid}\}` (``norm``), :math:`q_i = W_Q u_i`,
    :math:`k_i = W_K u_i` (``n`` per head), :math:`v_i = W_V u_i` (``d_model/heads`` channels per head), no
    :math:`1/\sqrt{n}` scale. DSF (paper-notes §3.3): :math:`A_i = (\eta_{i-1}/\eta_i) I`
    (:math:`= \exp(w^\top(u_{i-1} - u_i))` for ``exp``: the bias cancels),
    :math:`B_i = \frac{1}{\eta_i}(I \otimes k_i) W_V`, :math:`C_i = W_O (I \otimes q_i^\top)`, :math:`D_i = 0`,
    :math:`N = n\,d` (block-diagonal over heads; :math:`\eta_{-1} := \eta_0`).
    """

    def __init__(self, d_model: int, *, n: int = 16, heads: int = 1, norm: str = "exp", backend: str = "auto"):
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("n", n)
        check_positive_int("heads", heads)
        if d_model % heads:
            raise ValueError(f"heads must divide d_model={d_model}, got heads={heads}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
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
        r""":math:`\eta_i = f(w^\top u_i + b) > 0` per head, shape ``(batch, L, heads)``."""
        u = check_mixer_input(u, self.d_model)
        return self._f(self._eta_logits(u)).to(u.dtype)

    def _qkv(self, u: torch.Tensor):
        b, L, _ = u.shape
        H = self.heads
        q = self.W_Q(u).reshape(b, L, H, self.n)
        k = self.W_K(u).reshape(b, L, H, self.n)
        v = self.W_V(u).reshape(b, L, H, self.d_model // H)
        return q, k, v

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``: one undecayed scan, then a per-head ``1/eta_i``."""
        u = check_mixer_input(u, self.d_model)
        q, k, v = self._qkv(u)
        b, L, H, _ = q.shape
        num = linear_scan(q, k, v, q.new_zeros(b, L, H), backend=self.backend)
        inv_eta = self._inv_f(self._eta_logits(u))
        y = (num.to(inv_eta.dtype) * inv_eta[..., None]).to(v.dtype)
        return self.W_O(y.reshape(b, L, self.d_model))

    def to_dsf(self, u: torch.Tensor) -> DSF:
        r"""The exact DSF of the layer for input ``u``: ``A`` is :math:`\eta_{i-1}/\eta_i`, one scalar per
        head, shape ``(batch, L, heads)``; :math:`N = n\,d`."""
        u = check_mixer_input(u, self.d_model)
        q, k, _ = self._qkv(u)
        b, L, H, _ = q.shape
        d = self.d_model
        return dsf_from_scan(
            q,
            k,
            q.new_zeros(b, L, H),
            value_map=self.W_V.weight.expand(b, L, d, d),
            output_map=self.W_O.weight.expand(b, L, d, d),
            normalizer=self.normalizer(u),
        )

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, n={self.n}, heads={self.heads}, norm={self.norm!r}, "
                f"backend={self.backend!r}")
