"""xLSTM's matrix LSTM (mLSTM) in a DSF-compatible form (sigmoid input gate)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..dsf import DSF
from ..scan import linear_scan
from ._common import check_mixer_args, check_mixer_input, project_heads, projected_scan_dsf

__all__ = ["MLSTM"]


class MLSTM(nn.Module):
    r"""Matrix LSTM (Beck et al. 2024) with scalar gates per head and a normalised read-out.

    Per head (key dim :math:`n`, value dim :math:`d/H`): :math:`f_i = \sigma(W_f u_i + b_f)`,
    :math:`\iota_i = \sigma(W_\iota u_i + b_\iota)` (one row of :math:`W_f`, :math:`W_\iota` per head),
    :math:`q_i = W_Q u_i`,
    :math:`k_i = W_K u_i/\sqrt{n}`, :math:`v_i = W_V u_i`, :math:`C_i = f_i C_{i-1} + \iota_i v_i k_i^\top`,
    :math:`n_i = f_i n_{i-1} + \iota_i k_i`, :math:`\hat h_i = C_i q_i / \max(|n_i^\top q_i|, 1)` and
    :math:`y_i = W_O (o_i \odot \hat h_i)`, :math:`o_i = \sigma(W_o u_i + b_o)`. DSF: :math:`A_i = f_i I`
    per head, :math:`B_i = \iota_i (I \otimes k_i) W_V`,
    :math:`C_i = W_O \mathrm{diag}(o_i) (I \otimes q_i^\top) / \max(|n_i^\top q_i|, 1)` (the normaliser
    depends on the input only, so it sits in :math:`C_i`), :math:`D_i = 0`, :math:`N = n d`.
    The input gate is a sigmoid instead of xLSTM's exponential: every gate stays in (0, 1), so states
    stay bounded without xLSTM's running-max stabiliser (which is not a linear map of the state).
    ``b_f`` starts in [3, 6] across heads (:math:`f \approx 0.95`-:math:`0.998`), as in xLSTM.
    Parameters: ``W_Q``, ``W_K``, ``W_V``, ``W_O`` and the gates ``W_f``, ``W_iota``, ``W_o`` (their biases
    :math:`b_f, b_\iota, b_o`).
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"f_i I\ \text{per head}"
    dsf_state_size = r"n d"

    def __init__(self, d_model: int, *, n: int = 16, heads: int = 1, backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, heads, backend)
        self.d_model, self.n, self.heads, self.backend = d_model, n, heads, backend
        self.head_dim = d_model // heads
        self.W_Q = nn.Linear(d_model, heads * n, bias=False)
        self.W_K = nn.Linear(d_model, heads * n, bias=False)
        self.W_V = nn.Linear(d_model, d_model, bias=False)
        self.W_f = nn.Linear(d_model, heads)  # forget gate, and b_f
        self.W_iota = nn.Linear(d_model, heads)  # input gate, and b_iota
        self.W_o = nn.Linear(d_model, d_model)  # output gate, and b_o
        self.W_O = nn.Linear(d_model, d_model, bias=False)
        with torch.no_grad():
            self.W_f.bias.copy_(torch.linspace(3.0, 6.0, heads))
            self.W_iota.bias.zero_()

    def _parts(self, u: torch.Tensor):
        """Scan inputs and the normaliser ``max(|n_i^T q_i|, 1)`` of shape ``(batch, L, heads)``."""
        u = check_mixer_input(u, self.d_model, self)
        q, k, v = project_heads(u, self.heads, self.W_Q, self.W_K, self.W_V)
        k = torch.sigmoid(self.W_iota(u))[..., None] * (k / math.sqrt(self.n))  # iota_i k_i
        log_f = F.logsigmoid(self.W_f(u))
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
        return self.W_O(torch.sigmoid(self.W_o(u)) * h)

    def to_dsf(self, u: torch.Tensor) -> DSF:
        """The exact DSF of the layer for input ``u`` (``A`` one scalar per head, ``N = n d``)."""
        u, q, k, log_f, _, norm = self._parts(u)
        scale = torch.sigmoid(self.W_o(u)) / norm.repeat_interleave(self.head_dim, dim=-1)
        output_map = self.W_O.weight * scale[:, :, None, :]  # W_O diag(o_i / norm_i), per step
        return projected_scan_dsf(q, k, log_f, self.W_V.weight, output_map)
