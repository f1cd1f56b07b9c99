"""Sweeps on a Ray cluster: the ``launcher="ray"`` of :func:`dsflib.sweep.run_sweep`.

Every pending run becomes one Ray task that needs ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs
(a fraction lets runs share a GPU; Ray sets ``CUDA_VISIBLE_DEVICES`` to the task's GPUs, and a task
without GPUs sees none). The driver (the process that calls ``run_sweep``) submits them all, and as each task
finishes its outcome comes back to the driver, which appends it to the results table: one writer,
so the table stays as :mod:`dsflib.sweep` writes it (locked, atomic, resumable). A task that raises
comes back as a failure and is logged; the other tasks go on. When the driver dies, Ray ends its
tasks; every row already appended stays, and the next launch runs only the missing runs.

Ray is an optional dependency (``pip install -e ".[cluster]"``). The cluster's nodes must run the
same environment as the driver (this repository installed, with its dependencies), as they would for
any Ray job. Each task first compares the node's library code with the driver's
(:func:`dsflib.env.code_fingerprint`): a node that imports other dsflib code (a stale install, a
fork's edits not copied) fails the run with ``CodeMismatch`` instead of writing a row that the
driver's commit would mislabel. ``ray start --head`` on one machine and
``ray start --address=<head>:6379`` on the others make a cluster
(https://docs.ray.io/en/latest/cluster/getting-started.html).
"""
from __future__ import annotations

from typing import Callable, Iterator

__all__ = ["require_ray", "attempt_on_node", "ray_outcomes"]


def require_ray():
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is installed in the test environment
        raise ImportError("launcher='ray' needs Ray: pip install -e '.[cluster]' (or pip install ray)") from exc
    return ray


def _connect(ray, address: str | None) -> bool:
    """Connect to ``address`` (or start a local instance) unless connected; True when this call did.
    Already connected elsewhere (another port than ``address``'s): a ValueError."""
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        port = address.rsplit(":", 1)[-1] if address and ":" in address and "://" not in address else None
        if port is not None and current.rsplit(":", 1)[-1] != port:
            raise ValueError(f"address={address!r}, but this process is connected to the Ray cluster at {current}: "
                             "call ray.shutdown() first, or leave address out to use the connected cluster")
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
                         f"largest node of the Ray cluster has {largest[0]:g} CPUs and {largest[1]:g} GPUs (on an "
                         "autoscaling cluster, start one node of that size before the sweep)")


def attempt_on_node(fn: Callable[[dict], dict], config: dict, driver_code: str) -> dict:
    """:func:`dsflib.sweep.attempt` on a Ray node, after checking that the node runs the driver's
    library code (``driver_code``: the driver's :func:`~dsflib.env.code_fingerprint`)."""
    import socket

    from .env import code_fingerprint
    from .sweep import attempt, failure_outcome

    node_code = code_fingerprint()
    if node_code != driver_code:
        return failure_outcome("CodeMismatch", f"this node imports dsflib code {node_code}, the driver {driver_code}: "
                               "install the driver's checkout on every node (pip install -e . in the same "
                               "environment)", seconds=0.0, host=socket.gethostname(), fatal=True)
    return attempt(fn, config)


def ray_outcomes(fn: Callable[[dict], dict], pending: list[tuple[str, dict]], *, address: str | None = None,
                 cpus_per_run: float | None = None, gpus_per_run: float = 0,
                 driver_code: str | None = None) -> Iterator[tuple[str, dict, dict]]:
    """``(run_id, config, outcome)`` for every pending run, in the order the Ray tasks finish (the
    outcome as :func:`dsflib.sweep.attempt` describes it). ``cpus_per_run=None``: each config's
    ``threads``, else 1. ``driver_code``: the code fingerprint the nodes must match (default: this
    process's). Closing the iterator early cancels the tasks not yet finished."""
    from .env import code_fingerprint
    from .sweep import failure_outcome

    ray = require_ray()
    driver_code = code_fingerprint() if driver_code is None else driver_code
    if not pending:
        return
    started = _connect(ray, address)
    refs: dict = {}
    try:
        cpus = {rid: float(cpus_per_run or config.get("threads") or 1) for rid, config in pending}
        for need in sorted(set(cpus.values())):
            _check_resources(ray, need, gpus_per_run)
        # A GPU task gets a fresh worker process (max_calls=1): a reused one would keep the CUDA context
        # and cached memory of the GPU its previous task had. A task without GPUs sees none (Ray does not
        # hide them), so device="auto" cannot put it on a GPU that Ray did not give it. A run whose worker
        # dies (out of memory, a crash) is tried once more (max_retries=1), then logged as failed.
        task = ray.remote(max_calls=1 if gpus_per_run > 0 else 0, max_retries=1)(attempt_on_node)
        hidden = {} if gpus_per_run > 0 else {"runtime_env": {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}}
        fn_ref = ray.put(fn)
        for rid, config in pending:
            options = dict(num_cpus=cpus[rid], num_gpus=gpus_per_run, name=f"sweep-run-{rid}", **hidden)
            ref = task.options(**options).remote(fn_ref, config, driver_code)
            refs[ref] = (rid, config)
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                rid, config = refs.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the task's worker or node died (after Ray's retries)
                    outcome = failure_outcome(type(exc).__name__, str(exc), traceback=str(exc))
                yield rid, config, outcome
    finally:
        for ref in refs:  # stopped early (on_error="raise", an interrupt): drop the rest
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
