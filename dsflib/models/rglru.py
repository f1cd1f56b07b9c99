"""Griffin/Hawk's Real-Gated Linear Recurrent Unit (RG-LRU) as a DSF."""
from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F
from torch import nn

from ..dsf import DSF
from ._common import check_mixer_args, check_mixer_input, projected_scan, projected_scan_dsf

__all__ = ["RGLRU"]


class RGLRU(nn.Module):
    r"""Real-Gated Linear Recurrent Unit (De et al. 2024), without Griffin's conv and gating branch.

    With width :math:`m = n d`, :math:`x_i = W_x u_i`, recurrence gate :math:`r_i = \sigma(W_r u_i + b_r)`,
    input gate :math:`g_i = \sigma(W_g u_i + b_g)` and the per-channel base :math:`a = \sigma(\Lambda)`,
    :math:`a_i = a^{c r_i} = \exp(-c\,\mathrm{softplus}(-\Lambda)\, r_i)`,
    :math:`h_i = a_i \odot h_{i-1} + \sqrt{1 - a_i^2} \odot (g_i \odot x_i)`, :math:`y_i = W_{out} h_i`.
    DSF: :math:`A_i = \mathrm{diag}(a_i)`, :math:`B_i = \mathrm{diag}(\sqrt{1-a_i^2} \odot g_i)\, W_x`,
    :math:`C_i = W_{out}`, :math:`D_i = 0`, :math:`N = m = n d`. The factor :math:`\sqrt{1-a_i^2}` keeps
    the state variance bounded (1 in steady state for constant :math:`a_i` and unit-variance input).
    :math:`\Lambda` starts with :math:`a^c` uniform in :math:`[0.9, 0.999]`, as in Griffin.
    With ``n=1``, :math:`W_x = W_{out} = I` and zero gate biases this is the paper's DSF form (its eq. 21,
    App. F.1): :math:`\Lambda_i = e^{-c\, r_i \odot \mathrm{softplus}(A)}`,
    :math:`B_i = \sqrt{1 - \Lambda_i^2} \odot \mathrm{diag}(\sigma(W_B u_i))`, :math:`C_i = I_d`, with the paper's
    :math:`A = -\Lambda` here.
    Parameters: ``W_x``, ``W_r``, ``W_g`` (biases :math:`b_r, b_g`), ``W_out``, ``Lambda``.
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"\mathrm{diag}(a^{c\, r_i})"
    dsf_state_size = r"n d"

    def __init__(self, d_model: int, *, n: int = 1, c: float = 8.0, backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, backend=backend)
        if isinstance(c, bool) or not isinstance(c, Real):
            raise TypeError(f"c must be a positive real number, got {type(c).__name__}")
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"c must be a positive finite number, got {c}")
        self.d_model, self.n, self.width, self.c, self.backend = d_model, n, n * d_model, float(c), backend
        m = self.width
        self.W_x = nn.Linear(d_model, m, bias=False)
        self.W_r = nn.Linear(d_model, m)  # recurrence gate r, and b_r
        self.W_g = nn.Linear(d_model, m)  # input gate g, and b_g
        self.W_out = nn.Linear(m, d_model, bias=False)
        # a^c ~ U[0.9, 0.999]  ->  log a = log(a^c)/c,  Lambda = logit(a) = log a - log(1 - a)
        log_a = torch.log(0.9 + 0.099 * torch.rand(m, dtype=torch.float64)) / self.c
        self.Lambda = nn.Parameter((log_a - torch.log(-torch.expm1(log_a))).to(torch.get_default_dtype()))

    def _parts(self, u: torch.Tensor):
        u = check_mixer_input(u, self.d_model, self)
        r = torch.sigmoid(self.W_r(u))
        g = torch.sigmoid(self.W_g(u))
        log_a = self.c * r * F.logsigmoid(self.Lambda)  # log a^{c r} = -c r softplus(-Lambda) <= 0
        # sqrt(1 - a^2) = sqrt(-expm1(2 log a)); the clamp only guards log a == 0 (infinite slope of sqrt)
        norm = torch.sqrt((-torch.expm1(2 * log_a)).clamp_min(torch.finfo(log_a.dtype).tiny))
        k = (norm * g)[..., None]  # one head per channel, dk = dv = 1, decay in the per-key layout
        q = torch.ones_like(k)
        return u, q, k, log_a[..., None]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal."""
        u, q, k, log_a = self._parts(u)
        return projected_scan(u, q, k, log_a, self.W_x, self.W_out, self.backend)

    def to_dsf(self, u: torch.Tensor) -> DSF:
        """The exact DSF of the layer for input ``u`` (``A`` is the full diagonal, ``N = n d``)."""
        _, q, k, log_a = self._parts(u)
        return projected_scan_dsf(q, k, log_a, self.W_x.weight, self.W_out.weight)
