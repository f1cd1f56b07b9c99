"""ListOps (Nangia & Bowman 2018, as used by the Long Range Arena), generated here from the task definition.

An expression is a digit ``0``-``9`` or an operator applied to 2..``max_args`` sub-expressions,
written in prefix form with a closing bracket: ``[MAX 2 9 [MIN 4 7 ] 0 ]``. The operators are

* ``[MAX`` / ``[MIN``: the largest / smallest argument;
* ``[MED``: the median, rounded down (``floor`` of the mean of the two middle values for an even
  number of arguments, i.e. ``int(numpy.median(args))``);
* ``[SM``: the sum modulo 10.

The label is the value of the whole expression, one of 10 classes. LRA's release writes its
expressions with tree parentheses ``( ( [MAX 2 ) 9 ) ...``; they carry no information beyond the
brackets and :func:`tokenize` drops them. Token ids (:data:`VOCAB`): 0 is padding, then the ten
digits, the four operators and ``]`` (vocabulary size :data:`VOCAB_SIZE` = 16). Sequences are
padded on the **left** (:func:`encode`), so that the last position of a causal model has read the
whole expression: the LRA classifiers here pool that last position.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_positive_int

__all__ = ["OPERATORS", "VOCAB", "VOCAB_SIZE", "PAD", "ListOpsConfig", "generate_expression", "generate_listops",
           "evaluate", "tokenize", "encode"]

OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
PAD = 0
VOCAB = {"<pad>": PAD, **{str(v): v + 1 for v in range(10)}, **{op: 11 + i for i, op in enumerate(OPERATORS)},
         "]": 15}
VOCAB_SIZE = len(VOCAB)


@dataclass(frozen=True)
class ListOpsConfig:
    """Expression limits: nesting ``max_depth``, operator arity 2..``max_args``, token length in
    ``[min_length, max_length]`` (tokens = digits, operators and closing brackets). ``value_p`` is the
    probability that an argument (below the maximum depth) is a digit rather than a sub-expression."""

    max_depth: int = 10
    max_args: int = 10
    min_length: int = 500
    max_length: int = 2000
    value_p: float = 0.25

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_args", "min_length", "max_length"):
            check_positive_int(name, getattr(self, name))
        if self.max_args < 2:
            raise ValueError(f"max_args must be >= 2, got {self.max_args}")
        if self.min_length > self.max_length:
            raise ValueError(f"min_length={self.min_length} must be <= max_length={self.max_length}")
        if self.max_length < 4:
            raise ValueError(f"max_length must be >= 4 (the shortest operator expression), got {self.max_length}")
        if not 0.0 < self.value_p < 1.0:
            raise ValueError(f"value_p must be in (0, 1), got {self.value_p}")


def _expression(rng: np.random.Generator, depth: int, config: ListOpsConfig, budget: int) -> list[str]:
    """One random expression of at most ``budget`` tokens (``depth`` = current nesting)."""
    if depth > 0 and (depth >= config.max_depth or budget < 4 or rng.random() < config.value_p):
        return [str(int(rng.integers(10)))]
    arity = int(rng.integers(2, config.max_args + 1))
    tokens = [OPERATORS[int(rng.integers(len(OPERATORS)))]]
    budget -= 2  # operator and closing bracket
    for i in range(arity):
        left = arity - i - 1  # arguments still to come need at least one token each
        if budget - left < 1:
            break
        sub = _expression(rng, depth + 1, config, budget - left)
        tokens += sub
        budget -= len(sub)
    if len(tokens) < 3:  # an operator needs at least two arguments: fall back to a digit pair
        tokens += [str(int(rng.integers(10)))]
    return tokens + ["]"]


def generate_expression(config: ListOpsConfig, rng: np.random.Generator, max_tries: int = 1000) -> list[str]:
    """One expression (list of tokens) whose length lies in ``[min_length, max_length]``."""
    for _ in range(max_tries):
        tokens = _expression(rng, 0, config, config.max_length)
        if config.min_length <= len(tokens) <= config.max_length:
            return tokens
    raise ValueError(f"no expression of length {config.min_length}..{config.max_length} in {max_tries} tries: "
                     f"raise max_depth/max_args or widen the length range ({config})")


def evaluate(tokens) -> int:
    """The value (0-9) of an expression given as a token list or a string (parentheses ignored)."""
    if isinstance(tokens, str):
        tokens = tokenize(tokens)
    stack: list[list] = []
    result = None
    for tok in tokens:
        if tok in OPERATORS:
            stack.append([tok])
        elif tok == "]":
            if not stack:
                raise ValueError("unbalanced expression: ']' without an operator")
            op, *args = stack.pop()
            if len(args) == 0:
                raise ValueError(f"operator {op} has no arguments")
            value = {"[MAX": max, "[MIN": min, "[SM": lambda a: sum(a) % 10,
                     "[MED": lambda a: int(np.median(a))}[op](args)
            if stack:
                stack[-1].append(value)
            else:
                result = value
        elif tok.isdigit() and len(tok) == 1:
            if stack:
                stack[-1].append(int(tok))
            else:
                result = int(tok)
        else:
            raise ValueError(f"unknown ListOps token {tok!r}")
    if stack or result is None:
        raise ValueError("unbalanced or empty expression")
    return int(result)


def tokenize(text: str) -> list[str]:
    """Split an expression string into tokens, dropping LRA's tree parentheses ``(`` and ``)``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [t for t in text.replace("(", " ").replace(")", " ").split()]


def encode(expressions, seq_len: int) -> torch.Tensor:
    """Token ids ``(len(expressions), seq_len)`` int64, left-padded with :data:`PAD`; longer expressions
    keep their last ``seq_len`` tokens (the end, where the outermost operator closes)."""
    check_positive_int("seq_len", seq_len)
    out = torch.full((len(expressions), seq_len), PAD, dtype=torch.long)
    for row, expr in enumerate(expressions):
        tokens = tokenize(expr) if isinstance(expr, str) else list(expr)
        try:
            ids = [VOCAB[t] for t in tokens[-seq_len:]]
        except KeyError as err:
            raise ValueError(f"expression {row} holds the unknown token {err.args[0]!r}") from None
        if ids:
            out[row, seq_len - len(ids):] = torch.tensor(ids)
    return out


def generate_listops(config: ListOpsConfig, num_examples: int, seed: int, seq_len: int | None = None):
    """``num_examples`` expressions: ``(inputs (num_examples, seq_len) int64, labels (num_examples,) int64,
    expressions)``; ``seq_len`` defaults to ``config.max_length``. Deterministic in ``seed``."""
    if not isinstance(config, ListOpsConfig):
        raise TypeError(f"config must be a ListOpsConfig, got {type(config).__name__}")
    check_positive_int("num_examples", num_examples)
    seq_len = config.max_length if seq_len is None else check_positive_int("seq_len", seq_len)
    rng = np.random.default_rng(seed)
    expressions = [generate_expression(config, rng) for _ in range(num_examples)]
    labels = torch.tensor([evaluate(e) for e in expressions], dtype=torch.long)
    return encode(expressions, seq_len), labels, expressions
