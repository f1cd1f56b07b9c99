"""xLSTM's matrix LSTM (mLSTM) in a DSF-compatible form (sigmoid input gate)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..dsf import DSF
from ..scan import BACKENDS, linear_scan
from ._common import check_mixer_input, dsf_from_scan

__all__ = ["MLSTM"]


class MLSTM(nn.Module):
    r"""Matrix LSTM (Beck et al. 2024) with scalar gates per head and a normalised read-out.

    Per head (key dim :math:`n`, value dim :math:`d/H`): :math:`f_i = \sigma(w_f^\top u_i + b_f)`,
    :math:`\iota_i = \sigma(w_\iota^\top u_i + b_\iota)`, :math:`q_i = W_Q u_i`,
    :math:`k_i = W_K u_i/\sqrt{n}`, :math:`v_i = W_V u_i`, :math:`C_i = f_i C_{i-1} + \iota_i v_i k_i^\top`,
    :math:`n_i = f_i n_{i-1} + \iota_i k_i`, :math:`\hat h_i = C_i q_i / \max(|n_i^\top q_i|, 1)` and
    :math:`y_i = W_O (o_i \odot \hat h_i)`, :math:`o_i = \sigma(W_o u_i + b_o)`. DSF: :math:`A_i = f_i I`
    per head, :math:`B_i = \iota_i (I \otimes k_i) W_V`,
    :math:`C_i = W_O \mathrm{diag}(o_i) (I \otimes q_i^\top) / \max(|n_i^\top q_i|, 1)` (the normaliser
    depends on the input only, so it sits in :math:`C_i`), :math:`D_i = 0`, :math:`N = n d`.
    The input gate is a sigmoid instead of xLSTM's exponential: every gate stays in (0, 1), so states
    stay bounded without xLSTM's running-max stabiliser (which is not a linear map of the state).
    ``b_f`` starts in [3, 6] across heads (:math:`f \approx 0.95`-:math:`0.998`), as in xLSTM.
    """

    def __init__(self, d_model: int, *, n: int = 16, heads: int = 1, backend: str = "auto"):
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("n", n)
        check_positive_int("heads", heads)
        if d_model % heads:
            raise ValueError(f"heads must divide d_model={d_model}, got heads={heads}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.d_model, self.n, self.heads, self.backend = d_model, n, heads, backend
        self.head_dim = d_model // heads
        self.q_proj = nn.Linear(d_model, heads * n, bias=False)
        self.k_proj = nn.Linear(d_model, heads * n, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.forget_gate = nn.Linear(d_model, heads)
        self.input_gate = nn.Linear(d_model, heads)
        self.output_gate = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        with torch.no_grad():
            self.forget_gate.bias.copy_(torch.linspace(3.0, 6.0, heads))
            self.input_gate.bias.zero_()

    def _parts(self, u: torch.Tensor):
        """Scan inputs and the normaliser ``max(|n_i^T q_i|, 1)`` of shape ``(batch, L, heads)``."""
        u = check_mixer_input(u, self.d_model)
        b, L, _ = u.shape
        q = self.q_proj(u).reshape(b, L, self.heads, self.n)
        k = self.k_proj(u).reshape(b, L, self.heads, self.n) / math.sqrt(self.n)
        k = torch.sigmoid(self.input_gate(u))[..., None] * k  # iota_i k_i
        log_f = F.logsigmoid(self.forget_gate(u))
        v = self.v_proj(u).reshape(b, L, self.heads, self.head_dim)
        # one scan for C and n: the value channel of ones carries n_i, read out as n_i^T q_i
        ones = torch.ones_like(v[..., :1])
        out = linear_scan(q, k, torch.cat([v, ones], dim=-1), log_f, backend=self.backend)
        norm = out[..., -1].abs().clamp_min(1.0)
        return u, q, k, log_f, out[..., :-1], norm

    def normalizer(self, u: torch.Tensor) -> torch.Tensor:
        """:math:`\\max(|n_i^\\top q_i|, 1) \\ge 1`, shape ``(batch, L, heads)``."""
        return self._parts(u)[-1]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal."""
        u, _, _, _, num, norm = self._parts(u)
        b, L, _ = u.shape
        h = (num / norm[..., None]).reshape(b, L, self.d_model)
        return self.out_proj(torch.sigmoid(self.output_gate(u)) * h)

    def to_dsf(self, u: torch.Tensor) -> DSF:
        """The exact DSF of the layer for input ``u`` (``A`` one scalar per head, ``N = n d``)."""
        u, q, k, log_f, _, norm = self._parts(u)
        b, L, d = u.shape
        scale = torch.sigmoid(self.output_gate(u)) / norm.repeat_interleave(self.head_dim, dim=-1)
        output_map = self.out_proj.weight * scale[:, :, None, :]  # W_O diag(o_i / norm_i)
        value_map = self.v_proj.weight.expand(b, L, d, d)
        return dsf_from_scan(q, k, log_f, value_map, output_map)
