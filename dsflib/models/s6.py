"""S6: Mamba's selective state-space layer (without the surrounding Mamba block) and its DSF."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..dsf import DSF
from ..scan import selective_scan
from ._common import check_mixer_args, check_mixer_input, common_dtype, dt_bias_init, ssm_dsf, ssm_output

__all__ = ["S6"]


class S6(nn.Module):
    r"""Mamba's selective SSM (no in_proj, conv or gating, as in the paper's MQAR code).

    Per channel :math:`c`: :math:`\Delta_i = \mathrm{softplus}(W_{\Delta,\mathrm{up}} W_{\Delta,\mathrm{down}} u_i
    + b_\Delta) \in \mathbb{R}^d` (rank ``dt_rank``), :math:`b_i = W_B u_i`, :math:`c_i = W_C u_i \in \mathbb{R}^n`,
    :math:`A_c = -\mathrm{diag}(e^{\text{A\_log}_c})` (S4D-real init :math:`a_{c,k} = -(k+1)`),
    :math:`h^{(c)}_i = e^{\Delta_{i,c} A_c} h^{(c)}_{i-1} + \Delta_{i,c}\, b_i u_{i,c}` (Euler :math:`B`),
    :math:`y_{i,c} = c_i^\top h^{(c)}_i + D_c u_{i,c}`, output :math:`W_{out} y_i`. DSF with :math:`N = nd`:
    :math:`A_i = \mathrm{blockdiag}_c(e^{\Delta_{i,c} A_c})`, :math:`B_i = (I_d \otimes b_i)\,\mathrm{diag}(\Delta_i)`,
    :math:`C_i = W_{out} (I_d \otimes c_i^\top)`, :math:`D_i = W_{out}\,\mathrm{diag}(D)`; before :math:`W_{out}`,
    :math:`\Phi_{ij}` is diagonal (no channel mixing). Parameters: ``W_delta_down``, ``W_delta_up`` (its bias
    :math:`b_\Delta`), ``W_B``, ``W_C``, ``A_log``, ``D``, ``W_out``.
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"\mathrm{blockdiag}_c\big(e^{\Delta_{i,c} A_c}\big)"
    dsf_state_size = r"n d"

    def __init__(self, d_model: int, *, n: int = 16, dt_rank: int | None = None, backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, backend=backend)
        self.d_model, self.n, self.backend = d_model, n, backend
        self.dt_rank = math.ceil(d_model / 16) if dt_rank is None else check_positive_int("dt_rank", dt_rank)
        d = d_model
        self.W_delta_down = nn.Linear(d, self.dt_rank, bias=False)
        self.W_delta_up = nn.Linear(self.dt_rank, d, bias=True)  # and b_Delta
        self.W_B = nn.Linear(d, n, bias=False)
        self.W_C = nn.Linear(d, n, bias=False)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.get_default_dtype())).repeat(d, 1))
        self.D = nn.Parameter(torch.ones(d))
        self.W_out = nn.Linear(d, d, bias=False)
        with torch.no_grad():
            bound = self.dt_rank**-0.5
            self.W_delta_up.weight.uniform_(-bound, bound)
            self.W_delta_up.bias.copy_(dt_bias_init(d))

    def _scan_inputs(self, u: torch.Tensor):
        """``(q, k, log_a, delta)`` of the scan: H = d heads, dk = n, dv = 1."""
        b, L, d = u.shape
        delta = F.softplus(self.W_delta_up(self.W_delta_down(u)))  # (b, L, d)
        A = -torch.exp(self.A_log)  # (d, n), < 0
        log_a = delta[..., None] * A  # (b, L, d, n), <= 0
        q = self.W_C(u)[:, :, None, :].expand(b, L, d, self.n)
        k = self.W_B(u)[:, :, None, :].expand(b, L, d, self.n)
        return q, k, log_a, delta

    def _compact_kernel(self, u: torch.Tensor):
        """:func:`dsflib.kernels.s6_scan.s6_scan` where it serves this call, else None.

        ``backend="kernel"`` always takes it (on a CPU only under ``TRITON_INTERPRET=1``); ``"auto"``
        takes it for CUDA inputs of a dtype the kernel covers when Triton is installed."""
        if self.backend == "kernel" or (self.backend == "auto" and u.is_cuda and u.dtype != torch.float64):
            try:
                from ..kernels.s6_scan import s6_scan
            except ImportError:
                if self.backend == "kernel":
                    raise RuntimeError("backend='kernel' needs Triton (pip install -e '.[kernels]')") from None
                return None
            return s6_scan
        return None

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal: the compact Triton scan on CUDA
        (:func:`dsflib.kernels.s6_scan.s6_scan`), :func:`dsflib.scan.selective_scan` on a CPU, or
        :func:`dsflib.scan.linear_scan` with the chosen ``backend``."""
        check_mixer_input(u, self.d_model, self)
        kernel = self._compact_kernel(u)
        if kernel is not None:  # CUDA (or backend="kernel"): the compact Triton scan, nothing expanded
            delta = F.softplus(self.W_delta_up(self.W_delta_down(u)))
            # one dtype for the per-token inputs (autocast may have made the projections half precision)
            delta, B, C = (t.to(u.dtype) for t in (delta, self.W_B(u), self.W_C(u)))
            y = kernel(u, delta, -torch.exp(self.A_log), B, C)
            return self.W_out(y + self.D * u)
        q, k, log_a, delta = self._scan_inputs(u)
        if not u.is_cuda and self.backend in ("auto", "sequential"):  # CPU: q and k stay (b, L, n)
            y = selective_scan(*common_dtype(q[:, :, 0], k[:, :, 0], delta * u, log_a))
            return self.W_out(y.to(u.dtype) + self.D * u)
        v = (delta * u)[..., None]  # (b, L, d, 1)
        return ssm_output(u, q, k, v, log_a, self.D, self.W_out, self.backend)

    def to_dsf(self, u: torch.Tensor, include_output_projection: bool = True) -> DSF:
        """The exact DSF of the layer for input ``u``; with ``include_output_projection=False``
        the DSF of the SSM alone (before :math:`W_{out}`), whose :math:`\\Phi_{ij}` are diagonal."""
        check_mixer_input(u, self.d_model, self)
        q, k, log_a, delta = self._scan_inputs(u)
        value_map = torch.diag_embed(delta)  # V_i = diag(Delta_i)
        return ssm_dsf(q, k, log_a, value_map, self.D, self.W_out, include_output_projection, u.dtype)
