r"""Constructions behind the paper's equivalences (chapters "dsf" and "equivalences").

* :func:`expand_state` - the paper's Lemma 2 (proof in its App. D): a DSF of state size :math:`\bar N \ge N`
  that recovers a given DSF of state size :math:`N`;
* :func:`coupled_ssd` - the SSD-form DSF that reproduces a linear attention layer on a given input
  through the coupling :math:`e^{\Delta_i a} = \eta_{i-1}/\eta_i`, :math:`\Delta_i b_i = \phi(k_i)/\eta_i`,
  :math:`c_i = \phi(q_i)`;
* :func:`ssd_from_tied_s6` - the SSD layer equal to an S6 layer whose decays are tied per head.
"""
from __future__ import annotations

import torch

from ._checks import check_positive_int
from .dsf import DSF, accumulation_dtype
from .models._common import dsf_from_scan
from .models.linear_attention import LinearAttention
from .models.s6 import S6
from .models.ssd import SSD

__all__ = ["coupled_ssd", "expand_state", "ssd_from_tied_s6"]


def expand_state(dsf: DSF, N_bar: int, *, seed: int = 0) -> DSF:
    r"""The DSF of state size ``N_bar`` that recovers ``dsf`` (state size :math:`N \le \bar N`), built as in the
    proof of the paper's Lemma 2 (App. D): :math:`\Lambda^{\bar N}_i = \mathrm{diag}(\Lambda^N_i, \hat\Lambda_i)`,
    :math:`B^{\bar N}_i = [B^N_i; \bar B_i]`, :math:`C^{\bar N}_i = [C^N_i, 0]`, :math:`D^{\bar N}_i = D^N_i`.

    The first :math:`N` states propagate exactly as those of ``dsf``; the :math:`\bar N - N` extra states evolve on
    their own (random :math:`\hat\Lambda_i \in [0.5, 1)`, Gaussian :math:`\bar B_i`, drawn with ``seed``) and never
    reach the output. App. D also allows a block :math:`\bar\Lambda` coupling old states into the new ones; it is
    zero here because the DSF's transitions are diagonal. ``N_bar`` must be a multiple of ``d`` (:math:`N = n d`).
    ``A`` of the result is the full diagonal ``(batch, L, N_bar)``.
    """
    if not isinstance(dsf, DSF):
        raise TypeError(f"dsf must be a dsflib.DSF, got {type(dsf).__name__}")
    check_positive_int("N_bar", N_bar)
    if N_bar < dsf.N:
        raise ValueError(f"N_bar must be at least the state size N={dsf.N} of dsf, got N_bar={N_bar}")
    if N_bar % dsf.d:
        raise ValueError(f"N_bar must be a multiple of d={dsf.d} (N = n*d), got N_bar={N_bar}")
    b, L, extra, d = dsf.batch, dsf.length, N_bar - dsf.N, dsf.d
    gen = torch.Generator().manual_seed(seed)
    acc = accumulation_dtype(dsf.B.dtype)
    A_hat = 0.5 + 0.5 * torch.rand(b, L, extra, generator=gen, dtype=acc)
    B_bar = torch.randn(b, L, extra, d, generator=gen, dtype=acc)
    like = dict(dtype=dsf.B.dtype, device=dsf.B.device)
    A = torch.cat([dsf.diag_A(), A_hat.to(**like)], dim=-1)
    B = torch.cat([dsf.B, B_bar.to(**like)], dim=2)
    C = torch.cat([dsf.C, dsf.C.new_zeros(b, L, d, extra)], dim=3)
    return DSF(A, B, C, dsf.D)


def coupled_ssd(attention: LinearAttention, u: torch.Tensor, a: float = -1.0) -> tuple[DSF, torch.Tensor]:
    r"""The SSD-form DSF (:math:`A_i = e^{\Delta_i a} I`, :math:`B_i = \Delta_i (I \otimes b_i) W_V`,
    :math:`C_i = W_O (I \otimes c_i^\top)`) whose :math:`\Delta_i, b_i, c_i` are set from ``attention`` by
    the coupling, and the per-head steps ``delta`` ``(batch, L, heads)``.

    :math:`\Delta_0` is free (the state starts at zero) and set to 1. ``delta`` is negative wherever
    :math:`\eta` decreases, i.e. where no SSD with :math:`a < 0`, :math:`\Delta > 0` exists.
    """
    if not isinstance(attention, LinearAttention):
        raise TypeError(f"attention must be a LinearAttention, got {type(attention).__name__}")
    if not a < 0:
        raise ValueError(f"a must be negative (an SSD's decay rate), got {a}")
    q, k, _, eta = attention.features(u)
    b, L, d = u.shape
    delta = torch.cat([torch.ones_like(eta[:, :1]), torch.log(eta[:, 1:] / eta[:, :-1]) / -a], dim=1)
    b_in = k / (eta * delta)[..., None]  # b_i = phi(k_i) / (eta_i Delta_i)
    system = dsf_from_scan(q, delta[..., None] * b_in, a * delta,
                           value_map=attention.W_V.weight.expand(b, L, d, d),
                           output_map=attention.W_O.weight.expand(b, L, d, d))
    return system, delta


def ssd_from_tied_s6(s6: S6, heads: int) -> SSD:
    """The :class:`SSD` with ``heads`` heads that equals ``s6``, which must be tied: within each head all
    channels share one step projection and bias, and every state entry of the head one rate ``A_log``."""
    if not isinstance(s6, S6):
        raise TypeError(f"s6 must be an S6, got {type(s6).__name__}")
    d, n = s6.d_model, s6.n
    check_positive_int("heads", heads)
    if d % heads:
        raise ValueError(f"heads must divide d_model={d}, got heads={heads}")
    group = d // heads
    with torch.no_grad():
        W_delta = s6.W_delta_up.weight @ s6.W_delta_down.weight  # (d, d): S6's step projection
        bias, A_log = s6.W_delta_up.bias, s6.A_log
        for name, x in (("step projection", W_delta), ("step bias", bias), ("A_log", A_log)):
            per_head = x.reshape(heads, group, *x.shape[1:])
            if not torch.equal(per_head, per_head[:, :1].expand_as(per_head)):
                raise ValueError(f"s6 is not tied for heads={heads}: its {name} differs within a head")
        if not torch.equal(A_log, A_log[:, :1].expand_as(A_log)):
            raise ValueError("s6 is not tied: A_log differs across the state entries of a channel")
        ssd = SSD(d, n=n, heads=heads).to(dtype=A_log.dtype, device=A_log.device)
        ssd.W_delta.weight.copy_(W_delta[::group])
        ssd.W_delta.bias.copy_(bias[::group])
        ssd.A_log.copy_(A_log[::group, 0])
        for name in ("W_B", "W_C", "W_out"):
            getattr(ssd, name).weight.copy_(getattr(s6, name).weight)
        ssd.D.copy_(s6.D)
    return ssd
