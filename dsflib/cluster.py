"""Sweeps on a Ray cluster: the ``launcher="ray"`` of :func:`dsflib.sweep.run_sweep`.

Every pending run becomes one Ray task that needs ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs
(a fraction lets runs share a GPU; Ray sets ``CUDA_VISIBLE_DEVICES`` and ``OMP_NUM_THREADS`` for
each task). The driver (the process that calls ``run_sweep``) submits them all, and as each task
finishes its outcome comes back to the driver, which appends it to the results table: one writer,
so the table stays as :mod:`dsflib.sweep` writes it (locked, atomic, resumable). A task that raises
comes back as a failure and is logged; the other tasks go on. When the driver dies, Ray ends its
tasks; every row already appended stays, and the next launch runs only the missing runs.

Ray is an optional dependency (``pip install -e ".[cluster]"``). The cluster's nodes must run the
same environment as the driver (this repository installed, the same torch), as they would for any
Ray job; ``ray start --head`` on one machine and ``ray start --address=<head>:6379`` on the others
make a cluster (https://docs.ray.io/en/latest/cluster/getting-started.html).
"""
from __future__ import annotations

from typing import Callable, Iterator

__all__ = ["require_ray", "ray_outcomes"]


def require_ray():
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is installed in the test environment
        raise ImportError("launcher='ray' needs Ray: pip install -e '.[cluster]' (or pip install ray)") from exc
    return ray


def _connect(ray, address: str | None) -> bool:
    """Connect to ``address`` (or start a local instance) unless connected; True when this call did."""
    if ray.is_initialized():
        return False
    if address is None:
        ray.init(include_dashboard=False)  # $RAY_ADDRESS if set, else a new local instance
    else:
        ray.init(address=address)
    return True


def _check_resources(ray, cpus: float, gpus: float) -> None:
    """Refuse a run that no node of the cluster can hold (its tasks would wait forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
        largest = max(((r.get("CPU", 0), r.get("GPU", 0)) for r in nodes), default=(0, 0))
        raise ValueError(f"a run needs {cpus:g} CPUs and {gpus:g} GPUs (cpus_per_run, gpus_per_run), but the "
                         f"largest node of the Ray cluster has {largest[0]:g} CPUs and {largest[1]:g} GPUs")


def ray_outcomes(fn: Callable[[dict], dict], pending: list[tuple[str, dict]], *, address: str | None = None,
                 cpus_per_run: float | None = None, gpus_per_run: float = 0) -> Iterator[tuple[str, dict, dict]]:
    """``(run_id, config, outcome)`` for every pending run, in the order the Ray tasks finish (the
    outcome as :func:`dsflib.sweep.attempt` describes it). ``cpus_per_run=None``: each config's
    ``threads``, else 1. Closing the iterator early cancels the tasks not yet finished."""
    from .sweep import attempt

    ray = require_ray()
    if not pending:
        return
    started = _connect(ray, address)
    refs: dict = {}
    try:
        cpus = {rid: float(cpus_per_run or config.get("threads") or 1) for rid, config in pending}
        for need in sorted(set(cpus.values())):
            _check_resources(ray, need, gpus_per_run)
        task = ray.remote(attempt)
        fn_ref = ray.put(fn)
        for rid, config in pending:
            ref = task.options(num_cpus=cpus[rid], num_gpus=gpus_per_run, name=f"sweep-run-{rid}").remote(fn_ref, config)
            refs[ref] = (rid, config)
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                rid, config = refs.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the task's worker or node died (after Ray's retries)
                    outcome = {"ok": False, "error": type(exc).__name__, "message": str(exc)[:500],
                               "traceback": "", "seconds": float("nan"), "host": ""}
                yield rid, config, outcome
    finally:
        for ref in refs:  # stopped early (on_error="raise", an interrupt): drop the rest
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
