"""Module-level sweep functions for tests (importable by worker and child processes)."""
import time


def square(config: dict) -> dict:
    time.sleep(config.get("sleep", 0.0))
    return {"square": config["x"] ** 2, "device": "cpu (test)"}
