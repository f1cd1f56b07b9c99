"""RetNet's retention (fixed per-head decay), without xPos, group norm and swish gate."""
from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch
from torch import nn

from ..dsf import DSF
from ._common import check_mixer_args, check_mixer_input, project_heads, projected_scan, projected_scan_dsf

__all__ = ["Retention"]


class Retention(nn.Module):
    r"""Multi-head retention (Sun et al. 2023) with a fixed decay :math:`\gamma_h` per head.

    Per head :math:`h` (key dim :math:`n`, value dim :math:`d/H`): :math:`q_i = W_Q u_i`,
    :math:`k_i = W_K u_i/\sqrt{n}`, :math:`v_i = W_V u_i` and
    :math:`y_i = W_O \sum_{j \le i} \gamma_h^{i-j} (q_i^\top k_j)\, v_j`, i.e.
    :math:`S_i = \gamma_h S_{i-1} + k_i v_i^\top`. DSF: :math:`A_i = \gamma_h I` per head (time-invariant),
    :math:`B_i = (I \otimes k_i) W_V`, :math:`C_i = W_O (I \otimes q_i^\top)`, :math:`D_i = 0`,
    :math:`N = n d`. Default :math:`\gamma_h = 1 - 2^{-5-h}`, as in RetNet. Omitted: the xPos/rotary
    rotation of q and k, and the group norm and swish output gate (both would leave the DSF form of
    a linear layer: the norm divides by a statistic of the outputs).
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"\gamma_h I\ \text{per head (constant)}"
    dsf_state_size = r"n d"

    def __init__(
        self,
        d_model: int,
        *,
        n: int = 16,
        heads: int = 1,
        gammas: Sequence[float] | torch.Tensor | None = None,
        backend: str = "auto",
    ):
        super().__init__()
        check_mixer_args(d_model, n, heads, backend)
        if gammas is None:
            gammas = [1.0 - 2.0 ** (-5 - h) for h in range(heads)]
        if isinstance(gammas, torch.Tensor) and gammas.ndim == 1:
            gammas = gammas.tolist()
        if isinstance(gammas, (str, bytes)) or not isinstance(gammas, Sequence):
            raise TypeError(f"gammas must be a sequence of {heads} floats in (0, 1], got {type(gammas).__name__}")
        gammas = list(gammas)
        if len(gammas) != heads:
            raise ValueError(f"gammas must have one decay per head ({heads}), got {len(gammas)}")
        for g in gammas:
            if isinstance(g, bool) or not isinstance(g, Real):
                raise TypeError(f"gammas must hold real numbers, got {type(g).__name__}")
            if not (0.0 < g <= 1.0):
                raise ValueError(f"gammas must lie in (0, 1], got {g}")
        self.d_model, self.n, self.heads, self.backend = d_model, n, heads, backend
        self.head_dim = d_model // heads
        self.W_Q = nn.Linear(d_model, heads * n, bias=False)
        self.W_K = nn.Linear(d_model, heads * n, bias=False)
        self.W_V = nn.Linear(d_model, d_model, bias=False)
        self.W_O = nn.Linear(d_model, d_model, bias=False)
        # fixed hyperparameters, not state: kept as Python floats so every dtype gets them exactly
        self._gammas = tuple(float(g) for g in gammas)

    @property
    def gammas(self) -> torch.Tensor:
        """The per-head decays :math:`\\gamma_h`, shape ``(heads,)``, float64."""
        return torch.tensor(self._gammas, dtype=torch.float64)

    def _parts(self, u: torch.Tensor):
        u = check_mixer_input(u, self.d_model, self)
        b, L, _ = u.shape
        q, k = project_heads(u, self.heads, self.W_Q, self.W_K)
        k = k / math.sqrt(self.n)
        log_a = torch.tensor([math.log(g) for g in self._gammas], dtype=u.dtype, device=u.device)
        log_a = log_a.expand(b, L, self.heads)
        return u, q, k, log_a

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal."""
        u, q, k, log_a = self._parts(u)
        return projected_scan(u, q, k, log_a, self.W_V, self.W_O, self.backend)

    def to_dsf(self, u: torch.Tensor) -> DSF:
        """The exact DSF of the layer for input ``u`` (``A`` one scalar per head, ``N = n d``)."""
        _, q, k, log_a = self._parts(u)
        return projected_scan_dsf(q, k, log_a, self.W_V.weight, self.W_O.weight)
