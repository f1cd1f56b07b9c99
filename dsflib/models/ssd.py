"""SSD: Mamba-2's scalar-decay state-space layer and its DSF."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..dsf import DSF
from ._common import check_mixer_args, check_mixer_input, dt_bias_init, ssm_dsf, ssm_output

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
    Parameters: ``W_delta`` (its bias :math:`b_\Delta`), ``W_B``, ``W_C``, ``A_log``, ``D``, ``W_out``.

    ``channel_bias=True`` is the authors' released MQAR variant (``S6_2``, with ``heads=1``): the step keeps one
    projection per head but gets one bias per channel, :math:`\Delta_{i,c} = \mathrm{softplus}(W_\Delta u_i
    + b_c)_{h(c)}` with ``delta_bias`` :math:`b \in \mathbb{R}^d` (``W_delta`` then has no bias). Its transition is
    one scalar per *channel*, :math:`A_i = \mathrm{blockdiag}_c(e^{\Delta_{i,c} a_{h(c)}} I_n)` (``A`` of shape
    ``(batch, L, d)``), and :math:`B_i = (I_d \otimes b_i)\,\mathrm{diag}(\Delta_i)`.
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"\mathrm{blockdiag}_h\big(e^{\Delta_{i,h} a_h} I_{n d/H}\big)"
    dsf_state_size = r"n d"

    def __init__(self, d_model: int, *, n: int = 16, heads: int = 1, channel_bias: bool = False,
                 backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, heads, backend)
        if not isinstance(channel_bias, bool):
            raise TypeError(f"channel_bias must be a bool, got {type(channel_bias).__name__}")
        self.d_model, self.n, self.heads, self.backend = d_model, n, heads, backend
        self.channel_bias = channel_bias
        self.head_dim = d_model // heads
        d = d_model
        self.W_delta = nn.Linear(d, heads, bias=not channel_bias)  # and b_Delta (one per head)
        self.W_B = nn.Linear(d, n, bias=False)
        self.W_C = nn.Linear(d, n, bias=False)
        # a_h spread over [-16, -1] (Mamba-2's range); with one head a = -1 (the paper's code)
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, heads)))
        self.D = nn.Parameter(torch.ones(d))
        self.W_out = nn.Linear(d, d, bias=False)
        if channel_bias:  # S6_2: one step bias per channel
            self.delta_bias = nn.Parameter(dt_bias_init(d).to(torch.get_default_dtype()))
        else:
            with torch.no_grad():
                self.W_delta.bias.copy_(dt_bias_init(heads))

    def step(self, u: torch.Tensor) -> torch.Tensor:
        r"""The steps :math:`\Delta_i`: ``(batch, L, heads)``, or ``(batch, L, d)`` with ``channel_bias``."""
        z = self.W_delta(check_mixer_input(u, self.d_model, self))
        if self.channel_bias:
            z = z.repeat_interleave(self.head_dim, dim=-1) + self.delta_bias
        return F.softplus(z)

    def _scan_inputs(self, u: torch.Tensor):
        """``(q, k, log_a, delta)`` of the scan: G scan heads, dk = n, dv = d/G, scalar decay per scan head;
        G = H, or G = d (one per channel) with ``channel_bias``."""
        b, L, _ = u.shape
        delta = self.step(u)  # (b, L, G)
        rate = -torch.exp(self.A_log)  # (H,)
        if self.channel_bias:
            rate = rate.repeat_interleave(self.head_dim)  # (d,): a_{h(c)}
        log_a = delta * rate  # (b, L, G), <= 0
        G = delta.shape[-1]
        q = self.W_C(u)[:, :, None, :].expand(b, L, G, self.n)
        k = self.W_B(u)[:, :, None, :].expand(b, L, G, self.n)
        return q, k, log_a, delta

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal, via :func:`dsflib.scan.linear_scan`."""
        check_mixer_input(u, self.d_model, self)
        b, L, _ = u.shape
        q, k, log_a, delta = self._scan_inputs(u)
        G = delta.shape[-1]
        v = delta[..., None] * u.reshape(b, L, G, self.d_model // G)
        return ssm_output(u, q, k, v, log_a, self.D, self.W_out, self.backend)

    def to_dsf(self, u: torch.Tensor, include_output_projection: bool = True) -> DSF:
        """The exact DSF of the layer for input ``u`` (``A`` of shape ``(batch, L, heads)``, or ``(batch, L, d)``
        with ``channel_bias``); with ``include_output_projection=False`` the DSF before :math:`W_{out}`."""
        check_mixer_input(u, self.d_model, self)
        q, k, log_a, delta = self._scan_inputs(u)
        value_map = torch.diag_embed(delta.repeat_interleave(self.d_model // delta.shape[-1], dim=-1))  # diag(Delta_i)
        return ssm_dsf(q, k, log_a, value_map, self.D, self.W_out, include_output_projection, u.dtype)
