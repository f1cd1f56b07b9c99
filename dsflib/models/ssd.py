"""SSD: Mamba-2's scalar-decay state-space layer and its DSF."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..dsf import DSF
from ..scan import linear_scan
from ._common import check_mixer_input, dsf_from_scan
from .s6 import check_backend, common_dtype, dt_bias_init

__all__ = ["SSD"]


class SSD(nn.Module):
    r"""Mamba-2's SSD layer: S6 with one scalar decay per head.

    ``heads`` :math:`H` heads of width :math:`p = d/H`; :math:`\Delta_i = \mathrm{softplus}(W_\Delta u_i + b_\Delta)
    \in \mathbb{R}^H`, :math:`a_h = -e^{\text{A\_log}_h} < 0`, :math:`b_i = W_B u_i`, :math:`c_i = W_C u_i \in
    \mathbb{R}^n` shared by all heads, and :math:`x_i = u_i` (no in_proj, conv or gate). Head :math:`h` keeps
    :math:`S^{(h)}_i = e^{\Delta_{i,h} a_h} S^{(h)}_{i-1} + \Delta_{i,h}\, b_i x^{(h)\top}_i \in \mathbb{R}^{n\times p}`
    and :math:`y_i = W_{out}([S^{(h)\top}_i c_i]_h + D \odot u_i)`. DSF with :math:`N = nd`:
    :math:`A_i = \mathrm{blockdiag}_h(e^{\Delta_{i,h} a_h} I_{np})` (one scalar per head; with :math:`H = 1`
    the paper's :math:`e^{\Delta_i a} I`), :math:`B_i = (I_d \otimes b_i)\,\mathrm{diag}(\Delta_{i,h(c)})_c`,
    :math:`C_i = W_{out}(I_d \otimes c_i^\top)`, :math:`D_i = W_{out}\,\mathrm{diag}(D)`.
    """

    def __init__(self, d_model: int, *, n: int = 16, heads: int = 1, backend: str = "auto"):
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)
        self.n = check_positive_int("n", n)
        self.heads = check_positive_int("heads", heads)
        if d_model % heads:
            raise ValueError(f"heads must divide d_model={d_model}, got heads={heads}")
        self.head_dim = d_model // heads
        self.backend = check_backend(backend)
        d = d_model
        self.dt_proj = nn.Linear(d, heads, bias=True)  # W_Delta, b_Delta
        self.B_proj = nn.Linear(d, n, bias=False)  # W_B
        self.C_proj = nn.Linear(d, n, bias=False)  # W_C
        # a_h spread over [-16, -1] (Mamba-2's range); with one head a = -1 (the paper's code)
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, heads)))
        self.D = nn.Parameter(torch.ones(d))
        self.out_proj = nn.Linear(d, d, bias=False)  # W_out
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt_bias_init(heads))

    def _scan_inputs(self, u: torch.Tensor):
        """``(q, k, log_a, delta)`` of the scan: H heads, dk = n, dv = d/H, scalar decay per head."""
        b, L, _ = u.shape
        delta = F.softplus(self.dt_proj(u))  # (b, L, H)
        log_a = delta * -torch.exp(self.A_log)  # (b, L, H), <= 0
        q = self.C_proj(u)[:, :, None, :].expand(b, L, self.heads, self.n)
        k = self.B_proj(u)[:, :, None, :].expand(b, L, self.heads, self.n)
        return q, k, log_a, delta

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal, via :func:`dsflib.scan.linear_scan`."""
        check_mixer_input(u, self.d_model)
        b, L, d = u.shape
        q, k, log_a, delta = self._scan_inputs(u)
        v = delta[..., None] * u.reshape(b, L, self.heads, self.head_dim)
        q, k, v, log_a = common_dtype(q, k, v, log_a)
        y = linear_scan(q, k, v, log_a, backend=self.backend).reshape(b, L, d)
        return self.out_proj(y.to(u.dtype) + self.D * u)

    def to_dsf(self, u: torch.Tensor, include_output_projection: bool = True) -> DSF:
        """The exact DSF of the layer for input ``u`` (``A`` of shape ``(batch, L, heads)``); with
        ``include_output_projection=False`` the DSF before :math:`W_{out}`."""
        check_mixer_input(u, self.d_model)
        b, L, d = u.shape
        q, k, log_a, delta = self._scan_inputs(u)
        value_map = torch.diag_embed(delta.repeat_interleave(self.head_dim, dim=-1))  # diag(Delta_{i,h(c)})
        D = torch.diag(self.D).to(u.dtype)
        if include_output_projection:
            W = self.out_proj.weight
            output_map, feedthrough = W.expand(b, L, d, d), (W @ D).expand(b, L, d, d)
        else:
            output_map, feedthrough = None, D.expand(b, L, d, d)
        return dsf_from_scan(q, k, log_a, value_map, output_map=output_map, feedthrough=feedthrough)
