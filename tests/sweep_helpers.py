"""Module-level sweep functions for tests (importable by worker and child processes)."""
import os
import sys
import time


def square(config: dict) -> dict:
    """x squared after ``sleep`` seconds. With ``log`` (a path), appends "<launch> <x>" once the run
    finishes, where <launch> is the Ray job that ran it ("local" outside Ray); ``crash`` ends the
    process at once, as a segfault or the out-of-memory killer would."""
    if config.get("crash"):
        os._exit(3)
    time.sleep(config.get("sleep", 0.0))
    result = {"square": config["x"] ** 2, "device": "cpu (test)"}
    if "log" in config:
        ray = sys.modules.get("ray")
        launch = ray.get_runtime_context().get_job_id() if ray is not None and ray.is_initialized() else "local"
        with open(config["log"], "a") as fh:
            fh.write(f"{launch} {config['x']}\n")
    return result


def tiny_mqar(seed: int, model: str = "linear") -> dict:
    """A run config of :func:`dsflib.experiments.mqar.run_mqar` that trains in about a second on a CPU."""
    return dict(model=model, seq_len=16, num_kv_pairs=4, vocab_size=128, d_model=16, n=2, lr=3e-3, epochs=2,
                batch_size=32, num_train=128, num_test=32, seed=seed, recipe="mixer_only", threads=1)


def logged_mqar(config: dict) -> dict:
    """:func:`dsflib.experiments.mqar.run_mqar` of the config without its ``log`` key, logging
    "<launch> <seed>" to ``log`` like :func:`square`."""
    from dsflib.experiments.mqar import run_mqar

    metrics = run_mqar({k: v for k, v in config.items() if k != "log"})
    ray = sys.modules.get("ray")
    launch = ray.get_runtime_context().get_job_id() if ray is not None and ray.is_initialized() else "local"
    with open(config["log"], "a") as fh:
        fh.write(f"{launch} {config['seed']}\n")
    return metrics
