"""Run labels: every number in the book carries its profile, seed, device, commit and date.

``run_info`` collects them once per chapter; ``select_profile`` turns the chapter's ``profile``
parameter into its settings and rejects unknown names.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.util
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # torch is imported where it is used: the sweep bookkeeping runs without it
    import torch

__all__ = ["PROFILES", "select_profile", "device_name", "git_commit", "code_fingerprint", "run_info", "run_label",
           "seed_everything"]

PROFILES = ("ci", "paper")
REPO_ROOT = Path(__file__).resolve().parent.parent


def select_profile(profile: str, settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Return ``settings[profile]`` as a dict; ``profile`` must be one of :data:`PROFILES`."""
    if not isinstance(profile, str):
        raise TypeError(f"profile must be a str, one of {PROFILES}, got {type(profile).__name__}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    missing = [p for p in PROFILES if p not in settings]
    if missing:
        raise ValueError(f"settings must define every profile {PROFILES}; missing {missing}")
    return dict(settings[profile])


def device_name(device: torch.device | str | None = None) -> str:
    """A readable name of the device results are computed on, e.g. ``'cpu (x86_64, 2 threads)'``."""
    import torch

    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def git_commit(root: Path = REPO_ROOT) -> str:
    """Short commit hash of the checkout, ``+dirty`` when tracked files are modified, or ``'unknown'``."""
    def git(*args: str) -> str:
        # no optional locks: `git status` would otherwise take .git/index.lock, which a process killed
        # mid-call (a killed sweep) leaves behind, blocking every later git command in the checkout
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              env=env).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("DSF_COMMIT", "unknown")
    return commit + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """12 hex digits over the source files of the dsflib this process imports (the package and its
    kernels, by path relative to each, so an editable and a regular install of the same code agree).
    Two processes with the same fingerprint run the same library code, whatever their machines."""
    h = hashlib.sha256()
    kernels = Path(importlib.util.find_spec("dsflib.kernels").origin).parent
    for folder in (Path(__file__).resolve().parent, kernels.resolve()):
        for path in sorted(folder.rglob("*.py")):
            if folder != kernels.resolve() and kernels.resolve() in path.parents:
                continue  # a regular install nests the kernels in the package: hashed once, below
            h.update(path.relative_to(folder).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    import random

    import numpy as np

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_info(profile: str, seed, device: torch.device | str | None = None) -> dict[str, str]:
    """Everything a reader needs to place a result: profile, seed (an int, or a sequence of ints shown
    as ``0,1,2``), device, versions, commit, date."""
    import torch

    select_profile(profile, {p: {} for p in PROFILES})
    return {
        "profile": profile,
        "seed": str(seed) if isinstance(seed, (int, str)) else ",".join(str(s) for s in seed),
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def run_label(info: Mapping[str, str], width: int | None = 88) -> str:
    """The run's place for figure captions and printouts: ``profile=ci · seed=0 · device=cpu (...) ·
    commit=… · date``, broken into lines of at most ``width`` characters at the `` · `` joints (one
    line when ``width`` is None), so it fits a page's column."""
    if width is not None and (not isinstance(width, int) or width < 20):
        raise ValueError(f"width must be an int >= 20 or None, got {width!r}")
    parts = [f"{k}={info[k]}" for k in ("profile", "seed", "device", "commit", "date")]
    if width is None:
        return " · ".join(parts)
    lines, line = [], ""
    for part in parts:
        joined = f"{line} · {part}" if line else part
        if line and len(joined) > width - 2:  # room for the trailing " ·"
            lines.append(line + " ·")
            line = part
        else:
            line = joined
    return "\n".join([*lines, line])