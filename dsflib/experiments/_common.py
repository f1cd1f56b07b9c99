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


def add_launcher_arguments(parser) -> None:
    """``--launcher local|ray``, ``--address``, ``--cpus-per-run``, ``--gpus-per-run`` (see
    :func:`dsflib.sweep.run_sweep`)."""
    from ..sweep import LAUNCHERS

    group = parser.add_argument_group("launcher", "where the runs execute (results are written here either way)")
    group.add_argument("--launcher", choices=LAUNCHERS, default="local",
                       help="local: this machine; ray: one Ray task per run on a Ray cluster")
    group.add_argument("--address", default=None,
                       help="the Ray cluster to connect to (e.g. 10.0.0.1:6379 or auto; default: $RAY_ADDRESS, "
                            "else a new local Ray instance); only with --launcher ray")
    group.add_argument("--cpus-per-run", type=float, default=None,
                       help="CPUs each Ray task reserves (default: the run's threads, else 1)")
    group.add_argument("--gpus-per-run", type=float, default=None,
                       help="GPUs each Ray task reserves, a fraction shares a GPU (default: the profile's)")


def launcher_options(args, parser, *, gpus_per_run: float) -> dict:
    """The launcher keywords of :func:`dsflib.sweep.run_sweep` from the parsed arguments (exit 2 on a
    bad combination). ``gpus_per_run``: the default for ``--gpus-per-run``."""
    if args.launcher != "ray":
        given = [flag for flag, value in (("--address", args.address), ("--cpus-per-run", args.cpus_per_run),
                                          ("--gpus-per-run", args.gpus_per_run)) if value is not None]
        if given:
            parser.error(f"{', '.join(given)} only go with --launcher ray")
        return {"launcher": "local"}
    if getattr(args, "workers", None) is not None:
        parser.error("--workers is for --launcher local; on Ray the runs at a time follow from the cluster's "
                     "resources and --cpus-per-run/--gpus-per-run")
    import math

    if args.cpus_per_run is not None and not (math.isfinite(args.cpus_per_run) and args.cpus_per_run > 0):
        parser.error(f"--cpus-per-run must be a finite number > 0, got {args.cpus_per_run:g}")
    if args.gpus_per_run is not None and not (math.isfinite(args.gpus_per_run) and args.gpus_per_run >= 0):
        parser.error(f"--gpus-per-run must be a finite number >= 0, got {args.gpus_per_run:g}")
    try:
        from ..cluster import require_ray

        require_ray()
    except ImportError as exc:
        parser.error(str(exc))
    return {"launcher": "ray", "address": args.address, "cpus_per_run": args.cpus_per_run,
            "gpus_per_run": gpus_per_run if args.gpus_per_run is None else args.gpus_per_run}


def report_failures(exc, module: str) -> int:
    """Print a :class:`dsflib.sweep.SweepError` for the command line; the exit status (1)."""
    import sys

    print(f"dsflib.experiments.{module}: {exc}", file=sys.stderr)
    return 1


def sweep_cli(argv, *, experiment: str, module: str, profiles: Mapping, grid, cost_hint, results_path,
              estimate_seconds, run, needs_cuda: Sequence[str], plan=None, cpu_estimate=None) -> int:
    """The command line shared by the sweep experiments (``python -m dsflib.experiments.<module>``): run or
    resume the sweep of ``--profile`` locally or on a Ray cluster (``--launcher ray``), printing the plan
    and the estimated GPU time first; profiles in ``needs_cuda`` refuse to start without CUDA (exit 2)
    unless they run on Ray (the cluster's nodes hold the GPUs). ``plan(profile)`` adds text to the
    plan line. ``cpu_estimate`` maps a CPU profile to a function of the pending configs returning
    (core-seconds, measured runs it rests on): its estimate is printed instead of the GPU time. Runs that fail are logged and the rest go on; the exit status is then 1."""
    import argparse
    import sys
    from pathlib import Path

    import torch

    from ..sweep import SweepError, default_workers, read_results, run_id, run_sweep

    parser = argparse.ArgumentParser(prog=f"python -m dsflib.experiments.{module}",
                                     description=f"Run (or resume) the {experiment} sweep of a profile.")
    parser.add_argument("--profile", choices=sorted(profiles), default="gpu")
    parser.add_argument("--workers", type=int, default=None,
                        help="runs at a time (default: the profile's; on a CPU, one per usable core or $DSF_WORKERS)")
    parser.add_argument("--out", type=Path, default=None, help="results CSV (default: results_path(profile))")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="run the profile's grid at these seeds instead of its own (e.g. a replication: 3 4 5)")
    parser.add_argument("--estimate-only", action="store_true", help="print the plan and the estimate, run nothing")
    add_launcher_arguments(parser)
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.seeds is not None and (min(args.seeds) < 0 or len(set(args.seeds)) != len(args.seeds)):
        parser.error(f"--seeds must be distinct non-negative ints, got {args.seeds}")
    gpu = args.profile in needs_cuda
    # on a GPU, the profile's workers share one device: on Ray each run reserves that share of a GPU
    gpu_share = profiles[args.profile].get("workers", 1)
    launch = launcher_options(args, parser, gpus_per_run=1 / gpu_share if gpu else 0)
    if gpu and launch.get("gpus_per_run") == 0:
        parser.error(f"profile {args.profile!r} needs a GPU per run: --gpus-per-run must be > 0 "
                     f"(default {1 / gpu_share:g}: {gpu_share} runs share a GPU)")
    runs = grid(args.profile) if args.seeds is None else [c for x in args.seeds for c in grid(args.profile, seed=x)]
    configs = sorted(runs, key=cost_hint, reverse=True)
    # a CPU profile runs one run per usable core (each run sets its own threads: the results do not change)
    workers = args.workers or profiles[args.profile].get("workers") or (1 if gpu else default_workers())
    out = args.out or results_path(args.profile)
    done = {r["run_id"] for r in read_results(out)}
    pending = [c for c in configs if run_id(c) not in done]
    estimate = estimate_seconds(pending, workers)
    extra = f" on {plan(args.profile)}" if plan is not None else ""
    where = (f"{workers} at a time" if launch["launcher"] == "local" else
             f"on Ray ({launch['gpus_per_run']:g} GPU per run)")
    if cpu_estimate and args.profile in cpu_estimate:
        core_seconds, basis = cpu_estimate[args.profile](pending)
        cost = (f"estimated {core_seconds / 3600:.1f} core-hours, {core_seconds / 3600 / workers:.1f} h on {workers} "
                f"core(s) (from the per-token times of {basis} measured CPU runs; an estimate)" if basis else
                "no CPU time estimate (no measured CPU runs stored)")
    else:
        cost = f"estimated {estimate / 60:.1f} min on one H200 (an estimate, not a measurement)"
    print(f"{experiment} {args.profile}: {len(configs)} runs{extra}, {len(pending)} to run, {where}, {cost} -> {out}")
    if args.estimate_only:
        return 0
    if args.profile in needs_cuda and launch["launcher"] == "local" and not torch.cuda.is_available():
        print(f"dsflib.experiments.{module}: profile {args.profile!r} needs a CUDA GPU and none is available; "
              "the ci profile runs on a CPU (or run it on a Ray cluster with GPUs: --launcher ray)", file=sys.stderr)
        return 2
    try:
        run_sweep(configs, run, out, desc=f"{experiment} {args.profile}",
                  **({"workers": workers} if launch["launcher"] == "local" else {}), **launch)
    except SweepError as exc:
        return report_failures(exc, module)
    return 0
