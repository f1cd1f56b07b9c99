"""Quasi-LSTM (gates from the input only), with the paper's reversed-sigmoid forget gate (eq. 23)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..dsf import DSF
from ._common import check_mixer_args, check_mixer_input, projected_scan, projected_scan_dsf

__all__ = ["QLSTM"]


class QLSTM(nn.Module):
    r"""Quasi-LSTM in its linear DSF view: the gates read the input only, with no conv and no tanh.

    With width :math:`m = n d`, :math:`x_i = W_{in} u_i`, :math:`\iota_i = \sigma(W_\iota u_i + b_\iota)`,
    :math:`o_i = \sigma(W_o u_i + b_o)` and the forget gate :math:`f_i = \sigma(z_i)`, or with
    ``reversed_sigmoid=True`` (paper eq. 23) :math:`f_i = \sigma(-z_i)^{\alpha} = \exp(-\alpha\,
    \mathrm{softplus}(z_i))`, :math:`z_i = W_f u_i + b_f` (the three gates in one
    :math:`W_{gates} = [W_f; W_\iota; W_o]`), the layer computes
    :math:`c_i = f_i \odot c_{i-1} + \iota_i \odot x_i`, :math:`y_i = W_{out}(o_i \odot c_i)`. DSF:
    :math:`A_i = \mathrm{diag}(f_i)`, :math:`B_i = \mathrm{diag}(\iota_i) W_{in}`,
    :math:`C_i = W_{out} \mathrm{diag}(o_i)`, :math:`D_i = 0`, :math:`N = m = n d`.

    The default (``n=2``, with :math:`W_{out}`) is the width :math:`2d` of the authors' released MQAR
    qLSTM. ``output_projection=False`` (which needs ``n=1``) drops :math:`W_{out}`:
    :math:`y_i = o_i \odot c_i`, :math:`C_i = \mathrm{diag}(o_i)`, :math:`N = d` - exactly the paper's
    eq. 20 (App. F.2) with :math:`W_u = W_{in}` (the paper omits biases from its notation).

    The exponent is :math:`\alpha = \mathrm{softplus}(\alpha_{param})` (initially 1), one scalar as in
    the authors' code, which uses ``relu``; softplus keeps :math:`\alpha > 0`, so the gate never turns
    into an undamped integrator with a dead gradient. ``b_f`` starts so that :math:`f` at zero input
    is spread over :math:`[0.9, 0.95]` across channels in both variants (long memory).
    Parameters: ``W_in``, ``W_gates`` (rows :math:`[W_f; W_\iota; W_o]`, bias :math:`[b_f; b_\iota; b_o]`),
    ``W_out`` (None without the output projection) and, with ``reversed_sigmoid``, ``alpha_param``.
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"\mathrm{diag}(f_i),\ f_i = \sigma(z_i)\ \text{or}\ \sigma(-z_i)^{\alpha}"
    dsf_state_size = r"n d"

    def __init__(self, d_model: int, *, n: int = 2, reversed_sigmoid: bool = False,
                 output_projection: bool = True, backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, backend=backend)
        for name, flag in (("reversed_sigmoid", reversed_sigmoid), ("output_projection", output_projection)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        if not output_projection and n != 1:
            raise ValueError(f"n must be 1 without the output projection (the paper's eq. 20, N = d), got n={n}")
        self.d_model, self.n, self.width = d_model, n, n * d_model
        self.reversed_sigmoid, self.output_projection, self.backend = reversed_sigmoid, output_projection, backend
        m = self.width
        self.W_in = nn.Linear(d_model, m, bias=False)
        self.W_gates = nn.Linear(d_model, 3 * m)  # rows [W_f; W_iota; W_o], bias [b_f; b_iota; b_o]
        self.W_out = nn.Linear(m, d_model, bias=False) if output_projection else None
        f0 = torch.linspace(0.9, 0.95, m, dtype=torch.float64)
        logit_f0 = torch.log(f0) - torch.log1p(-f0)
        with torch.no_grad():
            # sigmoid: sigma(b_f) = f0;  reversed: sigma(-b_f)^1 = f0
            self.W_gates.bias[:m] = (-logit_f0 if reversed_sigmoid else logit_f0).to(self.W_gates.bias.dtype)
            self.W_gates.bias[m:].zero_()
        if reversed_sigmoid:
            self.alpha_param = nn.Parameter(torch.tensor(math.log(math.e - 1.0)))  # softplus^{-1}(1)

    @property
    def alpha(self) -> torch.Tensor | None:
        """The forget-gate exponent :math:`\\alpha = \\mathrm{softplus}(\\alpha_{param})` (None without eq. 23)."""
        return F.softplus(self.alpha_param) if self.reversed_sigmoid else None

    def _parts(self, u: torch.Tensor):
        u = check_mixer_input(u, self.d_model, self)
        z_f, z_i, z_o = self.W_gates(u).chunk(3, dim=-1)
        if self.reversed_sigmoid:
            log_f = self.alpha * F.logsigmoid(-z_f)  # log sigma(-z)^alpha = -alpha softplus(z)
        else:
            log_f = F.logsigmoid(z_f)
        # one head per hidden channel, dk = dv = 1; the decay in the per-key layout (batch, L, m, 1),
        # which linear_scan evaluates with the paths suited to element-wise decays
        q, k = torch.sigmoid(z_o)[..., None], torch.sigmoid(z_i)[..., None]
        return u, q, k, log_f[..., None]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``, causal."""
        u, q, k, log_f = self._parts(u)
        W_out = self.W_out if self.output_projection else nn.Identity()
        return projected_scan(u, q, k, log_f, self.W_in, W_out, self.backend)  # W_out (o_i * c_i)

    def to_dsf(self, u: torch.Tensor) -> DSF:
        """The exact DSF of the layer for input ``u`` (``A`` is the full diagonal, ``N = n d``)."""
        _, q, k, log_f = self._parts(u)
        if self.output_projection:
            W_out = self.W_out.weight
        else:  # C_i = diag(o_i): the identity output map
            W_out = torch.eye(self.d_model, dtype=self.W_in.weight.dtype, device=self.W_in.weight.device)
        return projected_scan_dsf(q, k, log_f, self.W_in.weight, W_out)
