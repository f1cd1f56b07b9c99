"""Verdict stability: the ci grids re-run at other seeds, and which verdicts move.

The ci profile's verdicts come from seeds 0–2 (WikiText: 0–1) computed in each build. The same grids
at :data:`SEEDS` are stored in ``book/results/replication/`` (computed once, on the CPU, by the
experiments' command lines with ``--seeds``). A verdict may move to or from "inconclusive" between the
two; a **flip** — supported on one set of seeds and contradicted on the other — would say the rule
decides on noise.
"""
from __future__ import annotations

from pathlib import Path

from ..env import REPO_ROOT
from ..verdicts import CONTRADICTED, SUPPORTED, Verdict

__all__ = ["SEEDS", "FOLDER", "replication_path", "replication_verdicts", "is_flip", "comparison"]

SEEDS = (3, 4, 5)
FOLDER = REPO_ROOT / "book" / "results" / "replication"
_EXPERIMENTS = ("mqar", "lra", "wikitext")


def replication_path(experiment: str) -> Path:
    """Where the ci grid of ``experiment`` at :data:`SEEDS` is stored (WikiText: a folder's ``runs.csv``,
    as its results tables are)."""
    if experiment not in _EXPERIMENTS:
        raise ValueError(f"experiment must be one of {_EXPERIMENTS}, got {experiment!r}")
    stem = f"{experiment}-ci-seeds-{'-'.join(map(str, SEEDS))}"
    return FOLDER / stem / "runs.csv" if experiment == "wikitext" else FOLDER / f"{stem}.csv"


def replication_verdicts(experiment: str, module) -> list[Verdict]:
    """``module.paper_verdicts("ci")`` on the stored runs at :data:`SEEDS` ("not tested" where none
    are stored)."""
    return module.paper_verdicts("ci", results_path=replication_path(experiment), seeds=list(SEEDS))


def is_flip(a: str, b: str) -> bool:
    """Whether two outcomes decide opposite ways (supported against contradicted)."""
    return {a, b} == {SUPPORTED, CONTRADICTED}


def comparison(first: list[Verdict], second: list[Verdict]) -> list[dict]:
    """One row per claim of ``first``: both outcomes (with their categories) and whether they flip.
    Verdicts pair by claim id and, for a claim spanning two experiments, by position."""
    rows = []
    for a, b in zip(first, second):
        if a.claim.id != b.claim.id:
            raise ValueError(f"the verdict lists must be in the same claim order, got {a.claim.id} and {b.claim.id}")
        rows.append(dict(claim=a.claim.id, first=f"{a.outcome} ({a.category})", second=f"{b.outcome} ({b.category})",
                         flip=is_flip(a.outcome, b.outcome)))
    return rows
