"""Argument checks shared by the experiment modules (MQAR, LRA, WikiText)."""
from __future__ import annotations

from typing import Mapping, Sequence


def check_config(config, required: Sequence[str]) -> dict:
    """A copy of the run ``config`` after checking it is a mapping holding every ``required`` key."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    missing = [k for k in required if k not in config]
    if missing:
        raise ValueError(f"config misses the keys {missing}")
    return dict(config)


def check_seed(seed, default: int) -> int:
    """``seed`` (``default`` when None), which must be a non-negative int."""
    seed = default if seed is None else seed
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return seed
