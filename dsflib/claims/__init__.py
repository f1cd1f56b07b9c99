"""The paper's claims as rules: one small function per claim, from measures to a :class:`Verdict`.

Each rule states its cells, its quantifier (how its cells combine: ``all`` or ``some``, as the claim's
words say), its positive controls (what must hold before the claim can be asked at all: the task is
solvable by the recipe, the compared models learn) and, for "on par", its equivalence margin with the
reason. The statistics are :mod:`dsflib.verdicts`'; the experiment modules
(:mod:`dsflib.experiments`) turn stored runs into measures and call :mod:`.mqar`, :mod:`.lra` and
:mod:`.wikitext` here. :data:`UNTESTED` lists, quoted with their places, the paper's claims no rule tests.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

from ..verdicts import Measure

__all__ = ["UNTESTED", "pooled_seed_sd", "with_pooled_sd", "run_labels"]

# The paper's claims this book does not test, exact quotes with their places (../paper-facts.md §2).
UNTESTED = (
    ("Figure 7 shows an even more significant performance gap", "App. L",
     "Fig. 7 is an image; no rule compares a gap between figures"),
    ("still achieve considerably higher performance than attention-based models", "§4.2 (S6 on LRA)",
     "C11 and C12 test S6 against the attention models on LRA; 'considerably' has no stated size"),
    ("performs slightly better on LRA than the other two attention-based models", "App. M (normalized attention)",
     "'slightly' has no stated size; C11 tests the ordering"),
    ("with proper normalization the performance of linear attention can be significantly increased", "§6",
     "a summary of C2, C9 and C10, which are tested"),
    ("the performance decreases with increased state expansion n or shows erratic behaviour", "App. L (second "
     "half of C6)", "'erratic' has no test; C6 tests the first half"),
    ("does not hurt performance", "App. L (SSD's scalar Λ_i against S6's)", "C4 tests SSD against S6"),
)


def pooled_seed_sd(measures: Iterable[Measure]) -> tuple[float, int] | None:
    """The seed-to-seed standard deviation pooled over the measures with two or more seeds
    (``sqrt(sum((k - 1) s^2) / sum(k - 1))``) and its degrees of freedom; ``None`` when none has two."""
    num, df = 0.0, 0
    for m in measures:
        if m.seeds >= 2:
            num += (m.seeds - 1) * m.std ** 2
            df += m.seeds - 1
    return (math.sqrt(num / df), df) if df else None


def with_pooled_sd(measures: Mapping, source: str) -> dict:
    """``measures`` with the pooled seed spread (:func:`pooled_seed_sd` over all of them) attached to
    every measure, so that a single-seed cell is judged against the profile's spread (named by
    ``source``) and a level is never judged on less spread than the profile shows."""
    from dataclasses import replace

    pooled = pooled_seed_sd(measures.values())
    if pooled is None:
        return dict(measures)
    sd, df = pooled
    text = f"seed spread {sd:.3f} pooled over {source} ({df} df)"
    return {k: replace(m, seed_sd=sd, seed_sd_df=df, seed_sd_source=text) for k, m in measures.items()}


def run_labels(rows: Sequence[Mapping], profile: str, scale: str) -> dict:
    """The labels every verdict of a profile carries: profile, devices, seeds, commits (with the code
    fingerprints of the rows, :func:`dsflib.env.code_fingerprint`) and dates of the rows it rests on,
    and the profile's scale in words. Rows computed by different library code are never mixed
    silently: the commit label then says how many code versions the verdict rests on."""
    def values(key):
        return sorted({str(r.get(key, "")) for r in rows} - {"", "nan", "None"})

    seeds = sorted({int(float(r["seed"])) for r in rows if str(r.get("seed", "")) not in ("", "nan")})
    dates = values("date")
    codes = values("code")
    commit = ", ".join(values("commit"))
    if codes:
        commit += f" (code {', '.join(codes)})"
    if len(codes) > 1:
        commit += f" — MIXED: rows from {len(codes)} versions of the library code"
    elif codes and len(codes) == 1 and any(str(r.get("code", "")) in ("", "nan", "None") for r in rows):
        commit += " — MIXED: some rows record no code version"
    return dict(profile=profile, device=", ".join(values("device")), seeds=", ".join(map(str, seeds)),
                commit=commit, scale=scale,
                date=(dates[0] if len(dates) == 1 else f"{dates[0]} – {dates[-1]}") if dates else "")
