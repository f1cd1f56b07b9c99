"""S6: Mamba's selective state-space layer (without the surrounding Mamba block) and its DSF."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..dsf import DSF
from ..scan import BACKENDS, linear_scan
from ._common import check_mixer_input, dsf_from_scan

__all__ = ["S6"]


def check_backend(backend: object) -> str:
    """``backend`` must be one of :data:`dsflib.scan.BACKENDS`."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def dt_bias_init(size: int, dt_min: float = 1e-3, dt_max: float = 1e-1) -> torch.Tensor:
    """Biases ``b`` with ``softplus(b)`` log-uniform in ``[dt_min, dt_max]`` (Mamba's step-size init)."""
    log_dt = torch.rand(size) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    dt = log_dt.exp().clamp(min=1e-4)
    return dt + torch.log(-torch.expm1(-dt))  # inverse of softplus


def common_dtype(*xs: torch.Tensor) -> list[torch.Tensor]:
    """Cast the scan operands to one dtype (their promotion), e.g. under autocast."""
    dtype = xs[0].dtype
    for x in xs[1:]:
        dtype = torch.promote_types(dtype, x.dtype)
    return [x.to(dtype) for x in xs]


class S6(nn.Module):
    r"""Mamba's selective SSM (no in_proj, conv or gating, as in the paper's MQAR code).

    Per channel :math:`c`: :math:`\Delta_i = \mathrm{softplus}(W_{\Delta 2} W_{\Delta 1} u_i + b_\Delta) \in \mathbb{R}^d`
    (rank ``dt_rank``), :math:`b_i = W_B u_i`, :math:`c_i = W_C u_i \in \mathbb{R}^n`,
    :math:`A_c = -\mathrm{diag}(e^{\text{A\_log}_c})` (S4D-real init :math:`a_{c,k} = -(k+1)`),
    :math:`h^{(c)}_i = e^{\Delta_{i,c} A_c} h^{(c)}_{i-1} + \Delta_{i,c}\, b_i u_{i,c}` (Euler :math:`B`),
    :math:`y_{i,c} = c_i^\top h^{(c)}_i + D_c u_{i,c}`, output :math:`W_{out} y_i`. DSF with :math:`N = nd`:
    :math:`A_i = \mathrm{blockdiag}_c(e^{\Delta_{i,c} A_c})`, :math:`B_i = (I_d \otimes b_i)\,\mathrm{diag}(\Delta_i)`,
    :math:`C_i = W_{out} (I_d \otimes c_i^\top)`, :math:`D_i = W_{out}\,\mathrm{diag}(D)`; before :math:`W_{out}`,
    :math:`\Phi_{ij}` is diagonal (no channel mixing).
    """

    def __init__(self, d_model: int, *, n: int = 16, dt_rank: int | None = None, backend: str = "auto"):
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)
        self.n = check_positive_int("n", n)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank is None else check_positive_int("dt_rank", dt_rank)
        self.backend = check_backend(backend)
        d = d_model
        self.dt_down = nn.Linear(d, self.dt_rank, bias=False)  # W_Delta1
        self.dt_up = nn.Linear(self.dt_rank, d, bias=True)  # W_Delta2, b_Delta
        self.B_proj = nn.Linear(d, n, bias=False)  # W_B
        self.C_proj = nn.Linear(d, n, bias=False)  # W_C
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.get_default_dtype())).repeat(d, 1))
        self.D = nn.Parameter(torch.ones(d))
        self.out_proj = nn.Linear(d, d, bias=False)  # W_out
        with torch.no_grad():
            bound = self.dt_rank**-0.5
            self.dt_up.weight.uniform_(-bound, bound)
            self.dt_up.bias.copy_(dt_bias_init(d))

    def _scan_inputs(self, u: torch.Tensor):
        """``(q, k, log_a, delta)`` of the scan: H = d heads, dk = n, dv = 1."""
        b, L, d = u.shape
        delta = F.softplus(self.dt_up(self.dt_down(u)))  # (b, L, d)
        A = -torch.exp(self.A_log)  # (d, n), < 0
        log_a = delta[..., None] * A  # (b, L, d, n), <= 0
        q = self.C_proj(u)[:, :, None, :].expand(b, L, d, self.n)
        k = self.B_proj(u)[:, :, None, :].expand(b, L, d, self.n)
        return q, k, log_a, delta

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal, via :func:`dsflib.scan.linear_scan`."""
        check_mixer_input(u, self.d_model)
        q, k, log_a, delta = self._scan_inputs(u)
        v = (delta * u)[..., None]  # (b, L, d, 1)
        q, k, v, log_a = common_dtype(q, k, v, log_a)
        y = linear_scan(q, k, v, log_a, backend=self.backend).squeeze(-1)
        return self.out_proj(y.to(u.dtype) + self.D * u)

    def to_dsf(self, u: torch.Tensor, include_output_projection: bool = True) -> DSF:
        """The exact DSF of the layer for input ``u``; with ``include_output_projection=False``
        the DSF of the SSM alone (before :math:`W_{out}`), whose :math:`\\Phi_{ij}` are diagonal."""
        check_mixer_input(u, self.d_model)
        b, L, d = u.shape
        q, k, log_a, delta = self._scan_inputs(u)
        value_map = torch.diag_embed(delta)  # V_i = diag(Delta_i)
        D = torch.diag(self.D).to(u.dtype)
        if include_output_projection:
            W = self.out_proj.weight
            output_map, feedthrough = W.expand(b, L, d, d), (W @ D).expand(b, L, d, d)
        else:
            output_map, feedthrough = None, D.expand(b, L, d, d)
        return dsf_from_scan(q, k, log_a, value_map, output_map=output_map, feedthrough=feedthrough)
