"""A model wrapper for experiments: embedding -> layers of (norm, mixer, optional MLP) -> head.

One class serves the three experiment families of the paper:

* MQAR and language modelling (``task="lm"``): token ids in, next-token logits out, the head
  tied to the token embedding;
* LRA classification (``task="classify"``): token ids (or feature vectors) in, one class per
  sequence out, after mean (or last-token) pooling over the valid positions.

Blocks are pre-norm residual: ``x = x + mixer(LN(x))`` then, with ``mlp_mult > 0``,
``x = x + MLP(LN(x))``. Any mixer in :data:`dsflib.models.MIXERS`, or registered with
:func:`dsflib.models.register_mixer`, can be used.
"""
from __future__ import annotations

import torch
from torch import nn

from ._checks import check_positive_int, check_tensor
from .models import build_mixer, mixer_names

__all__ = ["SequenceModel", "Block"]

TASKS = ("lm", "classify")
POOLINGS = ("mean", "last")


class Block(nn.Module):
    """Pre-norm residual block: a sequence mixer, then an optional GELU MLP."""

    def __init__(self, mixer: nn.Module, d_model: int, mlp_mult: int = 0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.mixer = mixer
        self.drop = nn.Dropout(dropout)
        self.mlp = None
        if mlp_mult:
            self.norm2 = nn.LayerNorm(d_model)
            self.mlp = nn.Sequential(nn.Linear(d_model, mlp_mult * d_model), nn.GELU(),
                                     nn.Linear(mlp_mult * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.mixer(self.norm1(x)))
        if self.mlp is not None:
            x = x + self.drop(self.mlp(self.norm2(x)))
        return x


class SequenceModel(nn.Module):
    """Embedding, ``n_layers`` :class:`Block` s with the mixer ``mixer``, final norm and head.

    Inputs are token ids ``(batch, L)`` when ``vocab_size`` is given, else float features
    ``(batch, L, input_dim)``. ``max_len`` adds learned absolute position embeddings (as the
    paper's attention baselines use). ``dropout`` acts on the embeddings and on each residual branch;
    ``embed_dropout`` (default: ``dropout``) overrides it on the embeddings alone. ``mixer_kwargs``
    go to the mixer's constructor (e.g.
    ``n`` for the state expansion, ``heads``).
    """

    def __init__(
        self,
        mixer: str,
        d_model: int,
        n_layers: int,
        *,
        task: str = "lm",
        vocab_size: int | None = None,
        input_dim: int | None = None,
        num_classes: int | None = None,
        max_len: int | None = None,
        mlp_mult: int = 0,
        dropout: float = 0.0,
        embed_dropout: float | None = None,
        pooling: str = "mean",
        tie_embeddings: bool = True,
        mixer_kwargs: dict | None = None,
    ):
        super().__init__()
        if mixer not in mixer_names():
            raise ValueError(f"mixer must be one of {mixer_names()}, got {mixer!r}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        check_positive_int("d_model", d_model)
        check_positive_int("n_layers", n_layers)
        if (vocab_size is None) == (input_dim is None):
            raise ValueError("give exactly one of vocab_size (token inputs) or input_dim (feature inputs)")
        if task == "lm" and vocab_size is None:
            raise ValueError("task='lm' needs vocab_size")
        if task == "classify":
            check_positive_int("num_classes", num_classes)
        self.task, self.pooling, self.d_model = task, pooling, d_model
        self.vocab_size, self.input_dim, self.max_len = vocab_size, input_dim, max_len
        if vocab_size is not None:
            self.embed = nn.Embedding(check_positive_int("vocab_size", vocab_size), d_model)
        else:
            self.embed = nn.Linear(check_positive_int("input_dim", input_dim), d_model)
        self.pos = nn.Embedding(check_positive_int("max_len", max_len), d_model) if max_len else None
        for name, rate in (("dropout", dropout), ("embed_dropout", embed_dropout)):
            if rate is not None and not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate!r}")
        self.drop = nn.Dropout(dropout if embed_dropout is None else embed_dropout)
        kwargs = dict(mixer_kwargs or {})
        self.blocks = nn.ModuleList(
            Block(build_mixer(mixer, d_model, **kwargs), d_model, mlp_mult, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        if task == "lm":
            self.head = nn.Linear(d_model, vocab_size, bias=False)
            if tie_embeddings:
                self.head.weight = self.embed.weight
        else:
            self.head = nn.Linear(d_model, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.embed.weight, std=0.02)
        if self.pos is not None:
            nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits: ``(batch, L, vocab)`` for ``lm``, ``(batch, classes)`` for ``classify``.

        ``mask`` ``(batch, L)`` bool marks valid (non-padding) positions for pooling. ``positions``
        ``(batch, L)`` bool (``lm`` only) selects the positions whose logits are returned, as
        ``(count, vocab)`` in row-major order: the head then skips the positions no loss reads.
        """
        if positions is not None:
            if self.task != "lm":
                raise ValueError("positions selects logits of task='lm' only; classify pools with mask")
            check_tensor("positions", positions, (x.shape[0], x.shape[1]), "(batch, L)", floating=False)
            if positions.dtype != torch.bool:
                raise TypeError(f"positions must be a bool tensor, got {positions.dtype}")
        if self.vocab_size is not None:
            check_tensor("x", x, (None, None), "(batch, L) of token ids", floating=False)
            if x.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"x must hold integer token ids (int64/int32), got {x.dtype}")
            if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
                raise ValueError(f"x must hold token ids in [0, {self.vocab_size}), got range "
                                 f"[{x.min().item()}, {x.max().item()}]")
        else:
            check_tensor("x", x, (None, None, self.input_dim), f"(batch, L, input_dim={self.input_dim})")
        L = x.shape[1]
        h = self.embed(x)
        if self.pos is not None:
            if L > self.max_len:
                raise ValueError(f"x has length {L} > max_len={self.max_len} of the position embeddings")
            h = h + self.pos(torch.arange(L, device=x.device))
        h = self.drop(h)
        for block in self.blocks:
            h = block(h)
        if self.task == "lm":
            if positions is not None:
                h = h[positions]
            return self.head(self.norm(h))
        h = self.norm(h)
        return self.head(self._pool(h, mask))

    def _pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, L, _ = h.shape
        if mask is None:
            mask = torch.ones(b, L, dtype=torch.bool, device=h.device)
        check_tensor("mask", mask, (b, L), "(batch, L)", floating=False)
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
        if not mask.any(dim=1).all():
            raise ValueError("mask must mark at least one valid position in every sequence")
        if self.pooling == "mean":
            w = mask.to(h.dtype)[..., None]
            return (h * w).sum(1) / w.sum(1)
        last = mask.long().cumsum(1).argmax(1)  # index of the last valid position
        return h[torch.arange(b, device=h.device), last]

    def num_parameters(self) -> int:
        """Trainable parameters (tied weights counted once)."""
        return sum(p.numel() for p in {id(p): p for p in self.parameters() if p.requires_grad}.values())
