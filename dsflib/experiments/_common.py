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


def number(x) -> float:
    """``x`` as a float, NaN when it is not a number (a CSV cell may be empty or text)."""
    import math

    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def sweep_cli(argv, *, experiment: str, module: str, profiles: Mapping, grid, cost_hint, results_path,
              estimate_seconds, run, needs_cuda: Sequence[str], plan=None) -> int:
    """The command line shared by the sweep experiments (``python -m dsflib.experiments.<module>``): run or
    resume the sweep of ``--profile``, printing the plan and the estimated GPU time first; profiles in
    ``needs_cuda`` refuse to start without CUDA (exit 2). ``plan(profile)`` adds text to the plan line."""
    import argparse
    import sys
    from pathlib import Path

    import torch

    from ..sweep import read_results, run_id, run_sweep

    parser = argparse.ArgumentParser(prog=f"python -m dsflib.experiments.{module}",
                                     description=f"Run (or resume) the {experiment} sweep of a profile.")
    parser.add_argument("--profile", choices=sorted(profiles), default="gpu")
    parser.add_argument("--workers", type=int, default=None, help="runs at a time (default: the profile's)")
    parser.add_argument("--out", type=Path, default=None, help="results CSV (default: results_path(profile))")
    parser.add_argument("--estimate-only", action="store_true", help="print the plan and the estimate, run nothing")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    configs = sorted(grid(args.profile), key=cost_hint, reverse=True)
    workers = args.workers or profiles[args.profile].get("workers", 1)
    out = args.out or results_path(args.profile)
    done = {r["run_id"] for r in read_results(out)}
    pending = [c for c in configs if run_id(c) not in done]
    estimate = estimate_seconds(pending, workers)
    extra = f" on {plan(args.profile)}" if plan is not None else ""
    print(f"{experiment} {args.profile}: {len(configs)} runs{extra}, {len(pending)} to run, {workers} at a time, "
          f"estimated {estimate / 60:.1f} min on an H200 (an estimate, not a measurement) -> {out}")
    if args.estimate_only:
        return 0
    if args.profile in needs_cuda and not torch.cuda.is_available():
        print(f"dsflib.experiments.{module}: profile {args.profile!r} needs a CUDA GPU and none is available; "
              "the ci profile runs on a CPU", file=sys.stderr)
        return 2
    run_sweep(configs, run, out, workers=workers, desc=f"{experiment} {args.profile}")
    return 0
