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
