"""Causal softmax attention: its exact (infinite-state) Φ and finite-state DSF approximations."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..dsf import DSF, accumulation_dtype
from ._common import check_mixer_args, check_mixer_input, project_heads, projected_scan_dsf
from .features import positive_random_features, random_feature_weights, taylor_features

__all__ = ["SoftmaxAttention", "FEATURES"]

FEATURES = ("taylor", "random")


class SoftmaxAttention(nn.Module):
    r"""Standard causal multi-head softmax attention:
    :math:`y_i = W_O\,[\sum_{j \le i} \mathrm{softmax}_j(q_i^\top k_j/\sqrt{m})\, v_j]_{\text{heads}}`,
    :math:`q_i = W_Q u_i`, :math:`k_i = W_K u_i` (``head_dim`` :math:`= m` per head),
    :math:`v_i = W_V u_i` (``d_model/heads`` channels per head). Its exact DSF is the separable one of
    the paper's Lemma 1 (App. C) with the infinite Taylor features :math:`\phi_\infty` of :math:`e^{q^\top k/\sqrt{m}}`:
    :math:`A_i = (\eta_{i-1}/\eta_i) I_\infty`, :math:`B_i = \frac{1}{\eta_i}(I \otimes \phi_\infty(k_i)) W_V`,
    :math:`C_i = W_O (I \otimes \phi_\infty(q_i)^\top)`, :math:`D_i = 0`,
    :math:`\eta_i = \sum_{j\le i} e^{q_i^\top k_j/\sqrt{m}}`,
    :math:`N = \infty`. So :meth:`phi` returns the exact blocks
    :math:`\Phi_{ij} = \sum_h \mathrm{softmax}_h(i, j)\, W_O^{(:,h)} W_V^{(h,:)}` and :meth:`to_dsf` a finite-state
    approximation (truncated Taylor or positive random features, :math:`N = n\,d` with ``n`` features).
    """

    #: The DSF transition :math:`A_i` and state size :math:`N` (LaTeX), for the book's overview table.
    dsf_transition = r"(\eta_{i-1}/\eta_i)\, I_\infty"
    dsf_state_size = r"\infty"

    def __init__(
        self,
        d_model: int,
        *,
        heads: int = 1,
        head_dim: int | None = None,
        n: int | None = None,
        dropout: float = 0.0,
        backend: str = "auto",
    ):
        super().__init__()
        # n is accepted for a uniform constructor (checked when given); the exact state is infinite
        check_mixer_args(d_model, n, heads, backend, n_required=False)
        head_dim = d_model // heads if head_dim is None else check_positive_int("head_dim", head_dim)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
        self.d_model, self.heads, self.head_dim = d_model, heads, head_dim
        self.n, self.dropout, self.backend = n, float(dropout), backend
        self.W_Q = nn.Linear(d_model, heads * head_dim, bias=False)
        self.W_K = nn.Linear(d_model, heads * head_dim, bias=False)
        self.W_V = nn.Linear(d_model, d_model, bias=False)
        self.W_O = nn.Linear(d_model, d_model, bias=False)

    def _qkv(self, u: torch.Tensor):
        """q, k ``(batch, L, H, m)`` and v ``(batch, L, H, d/H)``."""
        u = check_mixer_input(u, self.d_model, self)
        return project_heads(u, self.heads, self.W_Q, self.W_K, self.W_V)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(batch, L, d_model) -> (batch, L, d_model)``: masked (fused) softmax attention; dropout on the
        attention weights in training mode. ``backend`` is accepted for a uniform interface and ignored."""
        q, k, v = self._qkv(u)
        b, L = q.shape[:2]
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=True,
            scale=1.0 / math.sqrt(self.head_dim),
        )
        return self.W_O(y.transpose(1, 2).reshape(b, L, self.d_model))

    def attention_weights(self, u: torch.Tensor) -> torch.Tensor:
        """The causal softmax weights, shape ``(batch, heads, L, L)`` (zero above the diagonal)."""
        q, k, _ = self._qkv(u)
        acc = accumulation_dtype(q.dtype)
        scores = torch.einsum("bihm,bjhm->bhij", q.to(acc), k.to(acc)) / math.sqrt(self.head_dim)
        L = q.shape[1]
        causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
        return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)

    def normalizer(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`\eta_i = \sum_{j \le i} \exp(q_i^\top k_j / \sqrt{m})` per head, shape ``(batch, L, heads)``:
        the softmax denominator, whose ratios :math:`\eta_{i-1}/\eta_i` are the exact (infinite-state) DSF's
        :math:`A_i`. Computed in log space (``logsumexp``) and exponentiated, in at least float32."""
        q, k, _ = self._qkv(u)
        acc = accumulation_dtype(q.dtype)
        scores = torch.einsum("bihm,bjhm->bhij", q.to(acc), k.to(acc)) / math.sqrt(self.head_dim)
        L = q.shape[1]
        causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
        return torch.logsumexp(scores.masked_fill(~causal, float("-inf")), dim=-1).exp().transpose(1, 2)

    def phi(self, u: torch.Tensor) -> torch.Tensor:
        r"""The exact blocks :math:`\Phi_{ij} = \sum_h \mathrm{softmax}_h(i,j)\, W_O^{(:,h)} W_V^{(h,:)}`, shape
        ``(batch, L, L, d, d)`` (the layer without dropout, i.e. in eval mode), in at least float32.
        Costs :math:`O(L^2 d^2)` memory: meant for analysis at small L."""
        P = self.attention_weights(u)
        H, d = self.heads, self.d_model
        W_O = self.W_O.weight.to(P.dtype).reshape(d, H, d // H)
        W_V = self.W_V.weight.to(P.dtype).reshape(H, d // H, d)
        return torch.einsum("bhij,phc,hcq->bijpq", P, W_O, W_V)

    def feature_maps(
        self,
        u: torch.Tensor,
        features: str = "taylor",
        *,
        order: int = 2,
        num_features: int = 256,
        seed: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Finite feature maps :math:`\phi(q_i), \phi(k_i)`, shape ``(batch, L, heads, n)``, with
        :math:`\phi(q)^\top\phi(k) \approx e^{q^\top k/\sqrt{m}}`, applied to :math:`x/m^{1/4}`:
        ``"taylor"``: the order-``order`` truncation, :math:`n = \sum_{r \le p} m^r` (exact kernel value
        :math:`\sum_{r\le p} (q^\top k/\sqrt{m})^r/r!`); ``"random"``: ``num_features`` positive random
        features (Performer), unbiased, drawn from ``seed`` (independently per head)."""
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        q, k, _ = self._qkv(u)
        scale = self.head_dim ** -0.25
        q, k = q * scale, k * scale
        if features == "taylor":
            return taylor_features(q, order), taylor_features(k, order)
        W = random_feature_weights(self.head_dim, num_features, heads=self.heads, seed=seed,
                                   dtype=q.dtype, device=q.device)
        return positive_random_features(q, W), positive_random_features(k, W)

    def to_dsf(
        self,
        u: torch.Tensor,
        features: str = "taylor",
        *,
        order: int = 2,
        num_features: int = 256,
        seed: int = 0,
    ) -> DSF:
        r"""A finite-state DSF approximating the layer: softmax's kernel :math:`e^{q^\top k/\sqrt{m}}` replaced by
        :math:`\phi(q)^\top\phi(k)` from :meth:`feature_maps`, in the separable form of the paper's eqs. 13-15
        (:math:`A_i = \eta_{i-1}/\eta_i` per head, :math:`\eta_i = \phi(q_i)^\top \sum_{j\le i}\phi(k_j)`,
        :math:`N = n\,d`). Its recurrence equals that approximate attention exactly.

        Raises ``ValueError`` if some :math:`\eta_i \le 0`: odd Taylor orders can make the kernel negative
        when :math:`|q^\top k|/\sqrt{m}` is large.
        """
        fq, fk = self.feature_maps(u, features, order=order, num_features=num_features, seed=seed)
        b, L, H, _ = fq.shape
        acc = accumulation_dtype(fq.dtype)
        eta = (fq.to(acc) * torch.cumsum(fk.to(acc), dim=1)).sum(-1)
        if not (eta > 0).all():
            bad = (eta <= 0).sum().item()
            if features == "taylor":
                raise ValueError(
                    f"the order-{order} Taylor kernel is not positive for this input: {bad} of the normalizers "
                    f"eta_i = phi(q_i)^T sum_j phi(k_j) are <= 0 (smallest {eta.min().item():.3g}); use an even "
                    "order or inputs with smaller |q^T k|/sqrt(head_dim)")
            raise ValueError(f"{bad} of the random-feature normalizers eta_i are <= 0 (underflow); "
                             "use inputs with smaller |q|, |k|")
        return projected_scan_dsf(fq, fk, fq.new_zeros(b, L, H), self.W_V.weight, self.W_O.weight, eta.to(fq.dtype))

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, heads={self.heads}, head_dim={self.head_dim}, "
                f"dropout={self.dropout}, n={self.n}")
