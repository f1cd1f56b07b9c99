"""How often a verdict is wrong: the rules of :mod:`dsflib.verdicts` run on simulated per-seed results
whose truth is known.

Each :data:`CASES` entry fixes a truth (no difference, a large gap, a mean short of a level, a model at
its floor, ...), a number of seeds and a seed-to-seed noise. One trial draws every seed's true value
``clip(mean + sd * z, 0, 1)`` and measures it on ``test_items`` test items (a binomial draw), as an
accuracy is measured; the rule then decides, and the trial counts as a **wrong decision** when the
outcome contradicts the truth (a decision where there is no difference, "on par" supported across a
large gap, "reaches" supported short of the level, "learned" at the floor). :func:`error_rates` gives
the rate per case, with the rate of the right decision (power) where the truth is decidable.
Every number of seeds is simulated twice: alone (with one seed the rule must answer inconclusive) and
with a seed-spread estimate pooled from six other cells of three seeds (12 degrees of freedom), as a
stored profile supplies it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED, Measure, compare, reaches

__all__ = ["Case", "CASES", "simulate", "error_rates", "LIMIT"]

LIMIT = 0.05  # the book's promise: at most 5 % wrong decisions in every case


@dataclass(frozen=True)
class Case:
    """One simulated truth. ``kind``: ``better`` (a vs b), ``on_par`` (a vs b within ``margin``),
    ``reaches`` (a vs ``level``), ``learned`` (a vs its floor ``level``). ``gap`` is the true
    mean of a less that of b; ``pooled``: the measures carry a seed spread pooled from other cells.
    ``calibrated``: inside the domain where the rule promises at most :data:`LIMIT` wrong decisions
    (outside it — a level judged at a seed spread of 0.2, where runs pile at 1.0, or a mean short of
    the level by less than three seeds can resolve — the rate is shown, not promised)."""

    kind: str
    truth: str
    seeds: int
    sd: float
    mean: float = 0.6
    gap: float = 0.0
    level: float = 0.0
    margin: float = 0.05
    test_items: int = 2000
    pooled: bool = False
    calibrated: bool = True

    @property
    def label(self) -> str:
        seeds = f"{self.seeds}" + (" + pooled sd" if self.pooled else "")
        return f"{self.kind}: {self.truth}, {seeds} seed(s), seed sd {self.sd:g}"


def _cases() -> list[Case]:
    out = []
    for seeds, pooled in ((1, False), (1, True), (2, False), (3, False), (3, True), (5, False)):
        for sd in (0.02, 0.05, 0.1, 0.2):
            kw = dict(seeds=seeds, sd=sd, pooled=pooled)
            out += [Case("better", "no difference", **kw),
                    Case("better", "no difference, near 1", mean=0.97, **kw),
                    Case("better", "a better by 6 sd", gap=6 * sd, mean=0.5, **kw),
                    Case("on_par", "gap 0.3 (margin 0.05)", gap=0.3, mean=0.5, **kw),
                    Case("on_par", "gap 2 x margin", gap=0.1, mean=0.5, **kw),
                    Case("on_par", "no difference", **kw),
                    Case("reaches", "mean 0.95, level 0.99", mean=0.95, level=0.99, calibrated=sd <= 0.1, **kw),
                    Case("reaches", "mean 0.98, level 0.99", mean=0.98, level=0.99, calibrated=False, **kw)]
        out.append(Case("reaches", "mean 0.998, level 0.99", seeds=seeds, sd=0.002, mean=0.998, level=0.99,
                        pooled=pooled))
        out.append(Case("learned", "at the floor 0.35", seeds=seeds, sd=0.0, mean=0.35, level=0.35, pooled=pooled))
    return out


CASES = _cases()

# the outcome that is wrong for each (kind, truth) and the one that is right (None: no right decision)
def _judge(case: Case) -> tuple[set[str], str | None]:
    if case.kind == "better":
        if case.gap == 0:
            return {SUPPORTED, CONTRADICTED}, None
        return {CONTRADICTED}, SUPPORTED
    if case.kind == "on_par":
        if case.gap == 0:
            return {CONTRADICTED}, None
        return {SUPPORTED}, CONTRADICTED if case.gap > case.margin else None
    if case.kind == "reaches":
        return ({CONTRADICTED}, SUPPORTED) if case.mean >= case.level else ({SUPPORTED}, None)
    return {"learned"}, None


def _draw(rng: np.random.Generator, mean: float, case: Case, n: int) -> np.ndarray:
    true = np.clip(mean + case.sd * rng.standard_normal(n), 0.0, 1.0)
    return rng.binomial(case.test_items, true) / case.test_items


def _measure(name: str, values, case: Case, rng: np.random.Generator, floor: float = 0.0) -> Measure:
    kw = {}
    if case.pooled:  # six other cells of three seeds each: the pooled sample sd with 12 df
        other = np.clip(case.sd * rng.standard_normal((6, 3)) + 0.5, 0.0, 1.0)
        kw = dict(seed_sd=float(np.sqrt(other.var(axis=1, ddof=1).mean())), seed_sd_df=12,
                  seed_sd_source="pooled over 6 simulated cells")
    return Measure(name, tuple(float(v) for v in values), floor=floor, test_items=case.test_items, **kw)


def simulate(case: Case, trials: int = 2000, seed: int = 0) -> dict:
    """Run ``trials`` simulated trials of ``case``; return the rates of each outcome, of the wrong
    decision and of the right one."""
    if not isinstance(case, Case):
        raise TypeError(f"case must be a Case, got {type(case).__name__}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive int, got {trials!r}")
    rng = np.random.default_rng(seed)
    wrong_set, right = _judge(case)
    counts = {SUPPORTED: 0, CONTRADICTED: 0, INCONCLUSIVE: 0, "learned": 0}
    for _ in range(trials):
        if case.kind == "learned":
            values = rng.binomial(case.test_items, case.mean, case.seeds) / case.test_items
            a = _measure("a", values, case, rng, floor=case.level)
            counts["learned" if a.learned() else INCONCLUSIVE] += 1
            continue
        a = _measure("a", _draw(rng, case.mean + case.gap, case, case.seeds), case, rng)
        if case.kind == "reaches":
            out = reaches(a, case.level)
        else:
            b = _measure("b", _draw(rng, case.mean, case, case.seeds), case, rng)
            out = compare(a, b, case.kind, **({"margin": case.margin} if case.kind == "on_par" else {}),
                          require_learned=False)
        counts[out.outcome] += 1
    rates = {k: v / trials for k, v in counts.items()}
    return dict(rates, wrong=sum(rates[k] for k in wrong_set), right=rates[right] if right else float("nan"))


def error_rates(trials: int = 2000, seed: int = 0, cases=None):
    """Every case of :data:`CASES` (or ``cases``) simulated: a DataFrame with the case, its truth, the
    wrong-decision rate and, where the truth is decidable, the rate of the right decision."""
    import pandas as pd

    rows = []
    for i, case in enumerate(CASES if cases is None else cases):
        r = simulate(case, trials, seed + i)
        rows.append(dict(rule=case.kind, truth=case.truth, seeds=case.seeds, pooled_sd=case.pooled, seed_sd=case.sd,
                         calibrated=case.calibrated, wrong=r["wrong"], right=r["right"], supported=r[SUPPORTED], contradicted=r[CONTRADICTED],
                         inconclusive=r[INCONCLUSIVE]))
    return pd.DataFrame(rows)
