"""Multi-query associative recall (MQAR), generated here from the standard task definition.

A sequence starts with ``num_kv_pairs`` key-value pairs ``k_1 v_1 k_2 v_2 ...`` (keys drawn without
repetition from the lower half of the vocabulary ``[1, vocab/2)``, values from the upper half
``[vocab/2, vocab)``; token 0 is the filler). Every key is then queried exactly once, at even offsets
of the rest of the sequence placed by power-law distributed gaps (small gaps most likely, exponent
``power_a``). At a query position the label is the value bound to that key; every other label is
``-100`` (ignored by the loss). Generation is vectorized in torch and seeded by a ``torch.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_positive_int

__all__ = ["MQARConfig", "MQARData", "generate_mqar", "no_binding_accuracy", "IGNORE_INDEX"]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class MQARConfig:
    """One MQAR task: sequence length, number of key-value pairs, vocabulary and gap exponent."""

    seq_len: int = 64
    num_kv_pairs: int = 4
    vocab_size: int = 8192
    power_a: float = 0.01

    def __post_init__(self) -> None:
        check_positive_int("seq_len", self.seq_len)
        check_positive_int("num_kv_pairs", self.num_kv_pairs)
        check_positive_int("vocab_size", self.vocab_size)
        if self.seq_len % 2:
            raise ValueError(f"seq_len must be even, got {self.seq_len}")
        if 4 * self.num_kv_pairs > self.seq_len:
            raise ValueError(f"seq_len must be >= 4 * num_kv_pairs = {4 * self.num_kv_pairs}, got {self.seq_len}")
        if self.vocab_size // 2 - 1 < self.num_kv_pairs:
            raise ValueError(f"vocab_size={self.vocab_size} has fewer than num_kv_pairs={self.num_kv_pairs} keys")
        if not self.power_a > 0:
            raise ValueError(f"power_a must be > 0, got {self.power_a}")


@dataclass(frozen=True)
class MQARData:
    """``inputs`` and ``labels``, both ``(num_examples, seq_len)`` int64."""

    inputs: torch.Tensor
    labels: torch.Tensor
    config: MQARConfig

    def __len__(self) -> int:
        return self.inputs.shape[0]


def _distinct(n: int, k: int, low: int, high: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` rows of ``k`` distinct integers drawn uniformly from ``[low, high)``.

    Draws with replacement and redraws only the rows that repeat a value: each row is then a
    uniform sample without replacement, at ``O(n k log k)`` cost instead of ``O(n (high - low))``.
    """
    out = torch.randint(low, high, (n, k), generator=gen)
    todo = torch.arange(n)
    while True:
        rows = out[todo].sort(dim=1).values
        repeated = (rows[:, 1:] == rows[:, :-1]).any(dim=1)
        todo = todo[repeated]
        if todo.numel() == 0:
            return out
        out[todo] = torch.randint(low, high, (todo.numel(), k), generator=gen)


def generate_mqar(config: MQARConfig, num_examples: int, seed: int) -> MQARData:
    """Generate ``num_examples`` MQAR sequences for ``config``, deterministically from ``seed``."""
    if not isinstance(config, MQARConfig):
        raise TypeError(f"config must be an MQARConfig, got {type(config).__name__}")
    check_positive_int("num_examples", num_examples)
    gen = torch.Generator().manual_seed(seed)
    n, L, kv, V = num_examples, config.seq_len, config.num_kv_pairs, config.vocab_size
    keys = _distinct(n, kv, 1, V // 2, gen)
    values = _distinct(n, kv, V // 2, V, gen)
    inputs = torch.zeros(n, L, dtype=torch.long)
    labels = torch.full((n, L), IGNORE_INDEX, dtype=torch.long)
    inputs[:, 0 : 2 * kv : 2] = keys
    inputs[:, 1 : 2 * kv : 2] = values
    # queries: one per key, at even offsets 2*g of the query region, gap slot g ~ power law
    space = (L - 2 * kv) // 2
    g = torch.arange(1, space + 1, dtype=torch.float64)
    weights = (config.power_a * g ** (config.power_a - 1)).expand(n, space)
    slots = torch.multinomial(weights, kv, replacement=False, generator=gen)  # (n, kv), distinct
    positions = 2 * kv + 2 * slots
    inputs.scatter_(1, positions, keys)
    labels.scatter_(1, positions, values)
    return MQARData(inputs, labels, config)


def _query_table(data: MQARData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per query of every sequence: its rank among the sequence's queries, its position, and the index
    of the key-value pair it asks for (each ``(num_examples * num_kv_pairs,)``)."""
    kv = data.config.num_kv_pairs
    positions = (data.labels != IGNORE_INDEX).nonzero()[:, 1].view(-1, kv)  # sorted per row: rank order
    answers = data.labels.gather(1, positions)  # (n, kv) the values asked for, in query order
    values = data.inputs[:, 1 : 2 * kv : 2]  # (n, kv) the values in pair order
    pair = (answers.unsqueeze(2) == values.unsqueeze(1)).float().argmax(dim=2)
    rank = torch.arange(kv).expand_as(positions)
    return rank.reshape(-1), positions.reshape(-1), pair.reshape(-1)


def no_binding_accuracy(config: MQARConfig, num_examples: int = 20_000, seed: int = 1) -> float:
    """The accuracy a model reaches on ``config`` without binding a query to its key: it answers each
    query with the value of the pair most often asked for at that query's rank and position (learned on
    ``num_examples`` sequences drawn with ``seed``, scored on as many drawn with ``seed + 1``).

    Queries are placed in key order with power-law gaps, so the first query most often asks for the
    first pair: this rule beats the ``1 / num_kv_pairs`` of a blind guess among the context's values,
    and a model can learn it from positions alone. It is the measured no-learning level ("plateau") of
    the task: accuracy at or below it shows no recall.
    """
    if not isinstance(config, MQARConfig):
        raise TypeError(f"config must be an MQARConfig, got {type(config).__name__}")
    check_positive_int("num_examples", num_examples)
    kv, L = config.num_kv_pairs, config.seq_len
    r, p, j = _query_table(generate_mqar(config, num_examples, seed))
    counts = torch.zeros(kv, L, kv)
    counts.index_put_((r, p, j), torch.ones(r.shape[0]), accumulate=True)
    by_rank = counts.sum(dim=1).argmax(dim=1)  # for a (rank, position) never seen while learning the rule
    seen = counts.sum(dim=2) > 0
    rule = torch.where(seen, counts.argmax(dim=2), by_rank.unsqueeze(1).expand(kv, L))
    r, p, j = _query_table(generate_mqar(config, num_examples, seed + 1))
    return float((rule[r, p] == j).double().mean())
