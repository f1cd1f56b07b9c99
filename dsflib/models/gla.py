"""Gated linear attention (GLA) with a low-rank per-key-dimension forget gate."""
from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..dsf import DSF
from ._common import check_mixer_args, check_mixer_input, project_heads, projected_scan, projected_scan_dsf

__all__ = ["GLA"]


class GLA(nn.Module):
    r"""Gated linear attention (Yang et al. 2024): a data-dependent decay per key dimension.

    Per head (key dim :math:`n`, value dim :math:`d/H`): :math:`q_i = W_Q u_i/\sqrt{n}`,
    :math:`k_i = W_K u_i`, :math:`v_i = W_V u_i`, the gate
    :math:`\alpha_i = \sigma(W_{\alpha,\mathrm{up}} W_{\alpha,\mathrm{down}} u_i + b)^{1/\tau} \in (0, 1)^n`
    (rank ``gate_rank``), :math:`S_i = \mathrm{diag}(\alpha_i) S_{i-1} + k_i v_i^\top` and
    :math:`y_i = W_O S_i^\top q_i`. DSF: :math:`A_i = I_{d/H} \otimes \mathrm{diag}(\alpha_i)` per head,
    :math:`B_i = (I \otimes k_i) W_V`, :math:`C_i = W_O (I \otimes q_i^\top)`, :math:`D_i = 0`,
    :math:`N = n d`. GLA's output gate and group norm are omitted (the norm is not a linear map of
    the state). Parameters: ``W_Q``, ``W_K``, ``W_V``, ``W_O``, ``W_alpha_down``, ``W_alpha_up`` (its bias
    :math:`b`).
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"I_{d/H} \otimes \mathrm{diag}(\alpha_i)\ \text{per head}"
    dsf_state_size = r"n d"

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
        check_mixer_args(d_model, n, heads, backend)
        check_positive_int("gate_rank", gate_rank)
        if isinstance(tau, bool) or not isinstance(tau, Real):
            raise TypeError(f"tau must be a positive real number, got {type(tau).__name__}")
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a positive finite number, got {tau}")
        self.d_model, self.n, self.heads, self.tau, self.backend = d_model, n, heads, float(tau), backend
        self.head_dim = d_model // heads
        self.W_Q = nn.Linear(d_model, heads * n, bias=False)
        self.W_K = nn.Linear(d_model, heads * n, bias=False)
        self.W_V = nn.Linear(d_model, d_model, bias=False)
        self.W_alpha_down = nn.Linear(d_model, gate_rank, bias=False)
        self.W_alpha_up = nn.Linear(gate_rank, heads * n)  # and b
        self.W_O = nn.Linear(d_model, d_model, bias=False)

    def log_gate(self, u: torch.Tensor) -> torch.Tensor:
        """The log-gate
        :math:`\\log \\alpha_i = \\log\\sigma(W_{\\alpha,\\mathrm{up}} W_{\\alpha,\\mathrm{down}} u_i + b)/\\tau \\le 0`,
        shape ``(batch, L, heads, n)``."""
        u = check_mixer_input(u, self.d_model, self)
        b, L, _ = u.shape
        return (F.logsigmoid(self.W_alpha_up(self.W_alpha_down(u))) / self.tau).reshape(b, L, self.heads, self.n)

    def _parts(self, u: torch.Tensor):
        u = check_mixer_input(u, self.d_model, self)
        q, k = project_heads(u, self.heads, self.W_Q, self.W_K)
        return u, q / math.sqrt(self.n), k, self.log_gate(u)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal."""
        u, q, k, log_a = self._parts(u)
        return projected_scan(u, q, k, log_a, self.W_V, self.W_O, self.backend)

    def to_dsf(self, u: torch.Tensor) -> DSF:
        """The exact DSF of the layer for input ``u`` (``A`` the full diagonal, ``N = n d``)."""
        _, q, k, log_a = self._parts(u)
        return projected_scan_dsf(q, k, log_a, self.W_V.weight, self.W_O.weight)
