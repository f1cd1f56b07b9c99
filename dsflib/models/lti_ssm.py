"""LTI SSM: a real diagonal linear time-invariant state-space layer (S4D/LRU-like) and its DSF."""
from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_positive_int
from ..dsf import DSF
from ._common import check_mixer_args, check_mixer_input, ssm_dsf, ssm_output

__all__ = ["LTISSM"]


class LTISSM(nn.Module):
    r"""A real diagonal linear time-invariant SSM (S4D/LRU in spirit, real-valued).

    Per channel :math:`c`: decays :math:`a_{c,k} = \exp(-e^{\text{log\_rate}_{c,k}} e^{\text{log\_dt}_c}) \in (0, 1)`,
    :math:`h^{(c)}_i = a_c \odot h^{(c)}_{i-1} + B_c u_{i,c}`, :math:`y_{i,c} = C_c^\top h^{(c)}_i + D_c u_{i,c}`,
    output :math:`W_{out} y_i`. DSF with :math:`N = nd`, the same for every :math:`i` and every input:
    :math:`A = \mathrm{diag}(a_1; \dots; a_d)`, :math:`B = \mathrm{blockdiag}_c(B_c)`,
    :math:`C = W_{out}\,\mathrm{blockdiag}_c(C_c^\top)`, :math:`D = W_{out}\,\mathrm{diag}(D)`, so
    :math:`\Phi_{ij} = K_{i-j}` is block Toeplitz and the layer is the causal convolution
    :math:`y_i = \sum_{m \le i} K_m u_{i-m}` with :math:`K_m = W_{out}\,\mathrm{diag}_c(C_c^\top (a_c^m \odot B_c))
    + [m = 0]\, W_{out}\,\mathrm{diag}(D)` (see :meth:`kernel`).
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"\mathrm{diag}(a_1; \dots; a_d)\ \text{(constant)}"
    dsf_state_size = r"n d"

    def __init__(self, d_model: int, *, n: int = 16, backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, backend=backend)
        self.d_model, self.n, self.backend = d_model, n, backend
        d = d_model
        # per-step rate exp(log_rate) * exp(log_dt): log-spaced rates in [1, 10] times a
        # log-uniform step dt in [1e-3, 1e-1] give decays from ~0.37 (memory ~1 token) to ~0.999 (~1000 tokens)
        log_rate = torch.linspace(0.0, math.log(10.0), n) if n > 1 else torch.zeros(1)
        self.log_rate = nn.Parameter(log_rate.repeat(d, 1))
        self.log_dt = nn.Parameter(torch.rand(d) * (math.log(1e-1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            a = torch.exp(self.log_a())
            # state variance ~1 per entry for white-noise input at init: B scaled by sqrt(1 - a^2)
            self.B = nn.Parameter(torch.randn(d, n) * torch.sqrt(1 - a**2))
        self.C = nn.Parameter(torch.randn(d, n) / math.sqrt(n))
        self.D = nn.Parameter(torch.ones(d))
        self.W_out = nn.Linear(d, d, bias=False)

    def log_a(self) -> torch.Tensor:
        """The log-decays :math:`\\log a_{c,k} = -e^{\\text{log\\_rate}_{c,k} + \\text{log\\_dt}_c} < 0`, shape ``(d, n)``."""
        return -torch.exp(self.log_rate + self.log_dt[:, None])

    def _scan_inputs(self, u: torch.Tensor):
        """``(q, k, log_a)`` of the scan: H = d heads, dk = n, dv = 1, constant over time."""
        b, L, d = u.shape
        shape = (b, L, d, self.n)
        return self.C.expand(shape), self.B.expand(shape), self.log_a().expand(shape)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal, via :func:`dsflib.scan.linear_scan`."""
        check_mixer_input(u, self.d_model, self)
        q, k, log_a = self._scan_inputs(u)
        return ssm_output(u, q, k, u[..., None], log_a, self.D, self.W_out, self.backend)

    def to_dsf(self, u: torch.Tensor, include_output_projection: bool = True) -> DSF:
        """The exact (time-invariant) DSF of the layer for input ``u``; with
        ``include_output_projection=False`` the DSF before :math:`W_{out}`."""
        check_mixer_input(u, self.d_model, self)
        b, L, d = u.shape
        q, k, log_a = self._scan_inputs(u)
        value_map = torch.eye(d, dtype=self.B.dtype, device=self.B.device).expand(b, L, d, d)
        return ssm_dsf(q, k, log_a, value_map, self.D, self.W_out, include_output_projection, self.B.dtype)

    def kernel(self, length: int, include_output_projection: bool = True) -> torch.Tensor:
        """The convolution kernel :math:`K_m = \\Phi_{m,0}`, ``m = 0..length-1``, shape ``(length, d, d)``."""
        check_positive_int("length", length)
        m = torch.arange(length, dtype=self.B.dtype, device=self.B.device)
        powers = torch.exp(m[:, None, None] * self.log_a())  # a^m, (length, d, n)
        diag = (powers * self.B * self.C).sum(-1)  # (length, d)
        diag = torch.cat([diag[:1] + self.D, diag[1:]], dim=0)
        K = torch.diag_embed(diag)
        if include_output_projection:
            K = self.W_out.weight @ K
        return K
