"""Gated linear attention (GLA) with a low-rank per-key-dimension forget gate."""
from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..dsf import DSF
from ..scan import BACKENDS, linear_scan
from ._common import check_mixer_input, dsf_from_scan

__all__ = ["GLA"]


class GLA(nn.Module):
    r"""Gated linear attention (Yang et al. 2024): a data-dependent decay per key dimension.

    Per head (key dim :math:`n`, value dim :math:`d/H`): :math:`q_i = W_Q u_i/\sqrt{n}`,
    :math:`k_i = W_K u_i`, :math:`v_i = W_V u_i`, the gate
    :math:`\alpha_i = \sigma(W_{\alpha 2} W_{\alpha 1} u_i + b)^{1/\tau} \in (0, 1)^n` (rank
    ``gate_rank``), :math:`S_i = \mathrm{diag}(\alpha_i) S_{i-1} + k_i v_i^\top` and
    :math:`y_i = W_O S_i^\top q_i`. DSF: :math:`A_i = I_{d/H} \otimes \mathrm{diag}(\alpha_i)` per head,
    :math:`B_i = (I \otimes k_i) W_V`, :math:`C_i = W_O (I \otimes q_i^\top)`, :math:`D_i = 0`,
    :math:`N = n d`. GLA's output gate and group norm are omitted (the norm is not a linear map of
    the state).
    """

    def __init__(
        self,
        d_model: int,
        *,
        n: int = 16,
        heads: int = 1,
        tau: float = 16.0,
        gate_rank: int = 16,
        backend: str = "auto",
    ):
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("n", n)
        check_positive_int("heads", heads)
        check_positive_int("gate_rank", gate_rank)
        if d_model % heads:
            raise ValueError(f"heads must divide d_model={d_model}, got heads={heads}")
        if isinstance(tau, bool) or not isinstance(tau, Real):
            raise TypeError(f"tau must be a positive real number, got {type(tau).__name__}")
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a positive finite number, got {tau}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.d_model, self.n, self.heads, self.tau, self.backend = d_model, n, heads, float(tau), backend
        self.head_dim = d_model // heads
        self.q_proj = nn.Linear(d_model, heads * n, bias=False)
        self.k_proj = nn.Linear(d_model, heads * n, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.gate_down = nn.Linear(d_model, gate_rank, bias=False)
        self.gate_up = nn.Linear(gate_rank, heads * n)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def log_gate(self, u: torch.Tensor) -> torch.Tensor:
        """The log-gate :math:`\\log \\alpha_i = \\log\\sigma(W_{\\alpha 2} W_{\\alpha 1} u_i + b)/\\tau \\le 0`,
        shape ``(batch, L, heads, n)``."""
        u = check_mixer_input(u, self.d_model)
        b, L, _ = u.shape
        return (F.logsigmoid(self.gate_up(self.gate_down(u))) / self.tau).reshape(b, L, self.heads, self.n)

    def _parts(self, u: torch.Tensor):
        u = check_mixer_input(u, self.d_model)
        b, L, _ = u.shape
        q = self.q_proj(u).reshape(b, L, self.heads, self.n) / math.sqrt(self.n)
        k = self.k_proj(u).reshape(b, L, self.heads, self.n)
        return u, q, k, self.log_gate(u)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal."""
        u, q, k, log_a = self._parts(u)
        b, L, _ = u.shape
        v = self.v_proj(u).reshape(b, L, self.heads, self.head_dim)
        y = linear_scan(q, k, v, log_a, backend=self.backend)
        return self.out_proj(y.reshape(b, L, self.d_model))

    def to_dsf(self, u: torch.Tensor) -> DSF:
        """The exact DSF of the layer for input ``u`` (``A`` the full diagonal, ``N = n d``)."""
        u, q, k, log_a = self._parts(u)
        b, L, d = u.shape
        value_map = self.v_proj.weight.expand(b, L, d, d)
        output_map = self.out_proj.weight.expand(b, L, d, d)
        return dsf_from_scan(q, k, log_a, value_map, output_map)
