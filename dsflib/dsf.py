r"""The Dynamical Systems Framework (DSF): a token mixer as a linear time-varying system.

For an input sequence :math:`u_0, \dots, u_{L-1} \in \mathbb{R}^d` the DSF reads

.. math::

    h_i = A_i h_{i-1} + B_i u_i, \qquad y_i = C_i h_i + D_i u_i, \qquad h_{-1} = 0,

with :math:`h_i \in \mathbb{R}^N`, :math:`N = n d` (:math:`n` is the *state expansion*) and diagonal
:math:`A_i`. Unrolled, :math:`y = \Phi u` with the block lower-triangular matrix
:math:`\Phi_{ij} = C_i A_i \cdots A_{j+1} B_j` for :math:`j < i` and
:math:`\Phi_{ii} = C_i B_i + D_i`.

Layouts (``batch`` first, ``L`` = sequence length):

========  ==========================  =============================================
``A``     ``(batch, L, N)``           the diagonal of each :math:`A_i`
          ``(batch, L, H)``           one scalar per head; head ``h`` scales the
                                      ``N/H`` consecutive state entries it owns
``B``     ``(batch, L, N, d)``
``C``     ``(batch, L, d, N)``
``D``     ``(batch, L, d, d)`` / None  ``None`` means :math:`D_i = 0`
``u, y``  ``(batch, L, d)``
========  ==========================  =============================================

The state is stacked channel-major, :math:`h = [h^{(1)}; \dots; h^{(d)}]` with
:math:`h^{(c)} \in \mathbb{R}^n`. Recurrences accumulate in at least float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import check_finite, check_positive_int, check_same, check_tensor

__all__ = ["DSF", "recurrence", "materialize_phi", "phi_matrix", "apply_phi", "past_to_future", "random_dsf",
           "random_input", "accumulation_dtype"]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype recurrences accumulate in: ``dtype`` promoted to at least float32."""
    return torch.promote_types(dtype, torch.float32)


@dataclass(frozen=True)
class DSF:
    """One DSF instance: the time-varying matrices :math:`A_i, B_i, C_i, D_i` for a batch.

    Construction validates shapes, dtypes, devices and finiteness (see the module docstring
    for the layouts) and raises ``ValueError``/``TypeError`` naming the offending argument.
    """

    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None = None

    def __post_init__(self) -> None:
        check_tensor("B", self.B, (None, None, None, None), "(batch, L, N, d)")
        batch, length, N, d = self.B.shape
        if N % d != 0:
            raise ValueError(f"B has state size N={N} that is not a multiple of d={d}; the DSF needs N = n*d")
        check_tensor("C", self.C, (batch, length, d, N), "(batch, L, d, N)")
        check_tensor("A", self.A, (batch, length, None), "(batch, L, N) or (batch, L, H)")
        heads = self.A.shape[-1]
        if heads != N and (heads == 0 or N % heads != 0):
            raise ValueError(
                f"A must have shape (batch, L, N) = ({batch}, {length}, {N}) or (batch, L, H) with H dividing N={N}, "
                f"got shape {tuple(self.A.shape)}"
            )
        tensors = {"A": self.A, "C": self.C}
        if self.D is not None:
            check_tensor("D", self.D, (batch, length, d, d), "(batch, L, d, d)")
            tensors["D"] = self.D
        for name, x in tensors.items():
            check_same(name, x, "B", self.B)
        for name, x in {"B": self.B, **tensors}.items():
            check_finite(name, x)

    # --- sizes -----------------------------------------------------------------------------
    @property
    def batch(self) -> int:
        return self.B.shape[0]

    @property
    def length(self) -> int:
        return self.B.shape[1]

    @property
    def N(self) -> int:
        """State size :math:`N = n d`."""
        return self.B.shape[2]

    @property
    def d(self) -> int:
        """Model (input/output) width."""
        return self.B.shape[3]

    @property
    def n(self) -> int:
        """State expansion :math:`n = N / d`."""
        return self.N // self.d

    @property
    def scalar_A(self) -> bool:
        """True when ``A`` is given as one scalar per head rather than a full diagonal."""
        return self.A.shape[-1] != self.N

    def diag_A(self) -> torch.Tensor:
        """The full diagonal of every :math:`A_i`, shape ``(batch, L, N)``."""
        if not self.scalar_A:
            return self.A
        return self.A.repeat_interleave(self.N // self.A.shape[-1], dim=-1)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "DSF":
        """A copy with every matrix cast/moved (e.g. ``dsf.to(torch.float64)`` for references)."""
        conv = lambda x: None if x is None else x.to(dtype=dtype, device=device)  # noqa: E731
        return DSF(conv(self.A), conv(self.B), conv(self.C), conv(self.D))


def _check_input(dsf: DSF, u: torch.Tensor) -> None:
    if not isinstance(dsf, DSF):
        raise TypeError(f"dsf must be a dsflib.DSF, got {type(dsf).__name__}")
    check_tensor("u", u, (dsf.batch, dsf.length, dsf.d), "(batch, L, d)")
    check_same("u", u, "the DSF matrices", dsf.B)


def recurrence(
    dsf: DSF,
    u: torch.Tensor,
    *,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
):
    """Run :math:`h_i = A_i h_{i-1} + B_i u_i`, :math:`y_i = C_i h_i + D_i u_i` step by step.

    The state is kept in :func:`accumulation_dtype` (at least float32); ``y`` is returned in
    ``u``'s dtype. ``initial_state`` is :math:`h_{-1}`, shape ``(batch, N)`` (default zeros).
    With ``return_final_state`` the result is ``(y, h_{L-1})``.
    """
    _check_input(dsf, u)
    acc = accumulation_dtype(u.dtype)
    if initial_state is None:
        h = u.new_zeros(dsf.batch, dsf.N, dtype=acc)
    else:
        check_tensor("initial_state", initial_state, (dsf.batch, dsf.N), "(batch, N)")
        check_same("initial_state", initial_state, "u", u)
        h = initial_state.to(acc)
    A, B, C = dsf.diag_A().to(acc), dsf.B.to(acc), dsf.C.to(acc)
    D = None if dsf.D is None else dsf.D.to(acc)
    uu = u.to(acc)
    ys = []
    for i in range(dsf.length):
        h = A[:, i] * h + torch.einsum("bnd,bd->bn", B[:, i], uu[:, i])
        y = torch.einsum("bdn,bn->bd", C[:, i], h)
        if D is not None:
            y = y + torch.einsum("bpq,bq->bp", D[:, i], uu[:, i])
        ys.append(y)
    y = torch.stack(ys, dim=1).to(u.dtype) if ys else u.new_zeros(u.shape)
    return (y, h) if return_final_state else y


def materialize_phi(dsf: DSF) -> torch.Tensor:
    """The blocks of :math:`\\Phi`, shape ``(batch, L, L, d, d)``: ``phi[b, i, j]`` is
    :math:`\\Phi_{ij} = C_i A_i \\cdots A_{j+1} B_j` (zero above the diagonal).

    Costs :math:`O(L^2 d^2 N)` time and :math:`O(L^2 d^2)` memory: meant for analysis at small L.
    The products of :math:`A` are taken directly (no logarithms), so zero or negative
    transitions are handled exactly.
    """
    if not isinstance(dsf, DSF):
        raise TypeError(f"dsf must be a dsflib.DSF, got {type(dsf).__name__}")
    acc = accumulation_dtype(dsf.B.dtype)
    A, B, C = dsf.diag_A().to(acc), dsf.B.to(acc), dsf.C.to(acc)
    b, L, d = dsf.batch, dsf.length, dsf.d
    phi = B.new_zeros(b, L, L, d, d)
    ones = A.new_ones(b, 1, dsf.N)
    for j in range(L):
        # decay[:, k] = A_{j+k} ... A_{j+1}  (the empty product for k = 0)
        decay = torch.cat([ones, torch.cumprod(A[:, j + 1 :], dim=1)], dim=1)
        phi[:, j:, j] = torch.einsum("bipn,bin,bnq->bipq", C[:, j:], decay, B[:, j])
    if dsf.D is not None:
        idx = torch.arange(L, device=phi.device)
        phi[:, idx, idx] += dsf.D.to(acc)
    return phi


def phi_matrix(phi: torch.Tensor) -> torch.Tensor:
    """Flatten ``(batch, L, L, d, d)`` blocks into the ``(batch, L*d, L*d)`` matrix with
    ``y.flatten(1) = Phi @ u.flatten(1)``."""
    check_tensor("phi", phi, (None, None, None, None, None), "(batch, L, L, d, d)")
    b, L, L2, d, d2 = phi.shape
    if L != L2 or d != d2:
        raise ValueError(f"phi must have shape (batch, L, L, d, d), got shape {tuple(phi.shape)}")
    return phi.permute(0, 1, 3, 2, 4).reshape(b, L * d, L * d)


def apply_phi(phi: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """:math:`y_i = \\sum_{j \\le i} \\Phi_{ij} u_j` for blocks ``phi`` of shape ``(batch, L, L, d, d)``."""
    check_tensor("phi", phi, (None, None, None, None, None), "(batch, L, L, d, d)")
    b, L, _, d, _ = phi.shape
    check_tensor("phi", phi, (b, L, L, d, d), "(batch, L, L, d, d)")
    check_tensor("u", u, (b, L, d), "(batch, L, d)")
    y = torch.einsum("bijpq,bjq->bip", phi, u.to(phi.dtype))
    return y.to(u.dtype)


def past_to_future(phi: torch.Tensor, t: int) -> torch.Tensor:
    r"""The block of :math:`\Phi` that maps the past :math:`u_0..u_{t-1}` to the future
    :math:`y_t..y_{L-1}`, as a ``(batch, (L-t)*d, t*d)`` matrix.

    For a DSF with state size :math:`N` it factors through :math:`h_{t-1}`
    (:math:`\Phi_{ij} = [C_i A_i \cdots A_t]\,[A_{t-1} \cdots A_{j+1} B_j]`), so its rank is at most
    :math:`N`: the state is the bottleneck through which the past reaches the future.
    """
    check_tensor("phi", phi, (None, None, None, None, None), "(batch, L, L, d, d)")
    L = phi.shape[1]
    if isinstance(t, bool) or not isinstance(t, int) or not 0 < t < L:
        raise ValueError(f"t must be an int with 0 < t < L={L}, got {t!r}")
    return phi_matrix(phi)[:, t * phi.shape[-1] :, : t * phi.shape[-1]]


def random_input(batch: int, length: int, d: int, *, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A standard Gaussian input ``u`` of shape ``(batch, length, d)`` from its own seeded generator."""
    for name, value in {"batch": batch, "length": length, "d": d}.items():
        check_positive_int(name, value)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, d, generator=gen, dtype=torch.float64).to(dtype)


def random_dsf(
    batch: int,
    length: int,
    d: int,
    n: int,
    *,
    heads: int | None = None,
    feedthrough: bool = True,
    decay_range: tuple[float, float] = (0.75, 0.99),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> DSF:
    """A random DSF with stable transitions: diagonal entries of :math:`A_i` uniform in
    ``decay_range``, Gaussian :math:`B_i, C_i` scaled by :math:`1/\\sqrt{d}` and :math:`1/\\sqrt{N}`.

    ``heads`` gives the scalar-per-head special case (``A`` of shape ``(batch, L, heads)``);
    ``feedthrough=False`` sets :math:`D_i = 0`.
    """
    for name, value in {"batch": batch, "length": length, "d": d, "n": n}.items():
        check_positive_int(name, value)
    lo, hi = decay_range
    if not (0.0 <= lo <= hi <= 1.0):
        raise ValueError(f"decay_range must satisfy 0 <= low <= high <= 1, got {decay_range}")
    N = n * d
    if heads is not None:
        check_positive_int("heads", heads)
        if N % heads != 0:
            raise ValueError(f"heads must divide N = n*d = {N}, got heads={heads}")
    gen = torch.Generator().manual_seed(seed)
    a_dim = N if heads is None else heads
    A = lo + (hi - lo) * torch.rand(batch, length, a_dim, generator=gen, dtype=torch.float64)
    B = torch.randn(batch, length, N, d, generator=gen, dtype=torch.float64) / d**0.5
    C = torch.randn(batch, length, d, N, generator=gen, dtype=torch.float64) / N**0.5
    D = torch.randn(batch, length, d, d, generator=gen, dtype=torch.float64) / d**0.5 if feedthrough else None
    return DSF(A, B, C, D).to(dtype=dtype, device=device)
