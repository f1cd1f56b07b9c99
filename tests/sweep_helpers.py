"""Module-level sweep functions for tests (importable by worker and child processes)."""
import time
from pathlib import Path


def square(config: dict) -> dict:
    """x squared after ``sleep`` seconds; with ``log`` and ``phase`` (paths), appends "<phase> <x>" to the
    log once the run finishes, the phase read when it started (which launch ran it)."""
    phase = Path(config["phase"]).read_text().strip() if "phase" in config else ""
    time.sleep(config.get("sleep", 0.0))
    result = {"square": config["x"] ** 2, "device": "cpu (test)"}
    if "log" in config:
        with open(config["log"], "a") as fh:
            fh.write(f"{phase} {config['x']}\n")
    return result
