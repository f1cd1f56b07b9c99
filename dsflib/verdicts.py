"""The paper's empirical claims and the rules that turn our numbers into a verdict on each.

A verdict has one of four outcomes (:data:`OUTCOMES`):

* ``supported`` / ``contradicted`` — the compared models learned and a confidence interval of the
  difference lies entirely on the claim's side / the other side (for "on par": inside / outside a
  margin stated in advance);
* ``inconclusive`` — a model did not leave its measured no-learning level, diverged on every seed,
  there are too few seeds to know the noise, a positive control of the claim failed, or the interval
  straddles the decision line;
* ``not tested`` — a cell the rule needs was not run (missing results, a profile without it).

The statistics are the standard tests of :mod:`scipy.stats`, computed with the t and normal
distribution functions of :mod:`scipy.special` (the ones behind ``scipy.stats.t``), at a
wrong-decision budget :data:`ALPHA` per comparison, both directions together:

* "a is better than b" — Welch's t-test on the per-seed values, the variance of each mean being the
  seed-to-seed variance over the seeds **plus** the measurement variance of the test set (binomial for
  an accuracy on ``test_items`` items; it is not reduced by more seeds, the test set being the same);
  degrees of freedom by Welch–Satterthwaite. Without test-set variance it is exactly
  ``scipy.stats.ttest_ind(..., equal_var=False)``.
* "a is on par with b" — two one-sided tests (TOST) against an equivalence margin stated in advance:
  the interval inside ``(-margin, margin)`` supports, entirely outside contradicts.
* "a is not better than b by more than a margin" — non-superiority: the interval below the margin
  supports, above it contradicts.
* "a reaches a level" — a one-sample t interval on three seeds or more: its lower end at or above the
  level supports, its upper end below the level contradicts.
* a derived quantity (:func:`contrast`: a combination of means; :func:`near`: e.g. a ratio by the
  delta method) — the same interval, its variance summed from the measures'.

One seed has no seed-to-seed variance: a comparison with one seed is inconclusive unless the measure
carries a seed-variance estimate from elsewhere (``seed_sd``, pooled from stored multi-seed runs of the
same profile and task), which is then used and named. :func:`combine` merges the parts of a claim by
the claim's quantifier (``all`` / ``some``), correcting for the number of parts (Bonferroni). How often
these rules decide wrongly is measured by simulation in :mod:`dsflib.verdict_calibration`.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["OUTCOMES", "CATEGORIES", "QUANTIFIERS", "ALPHA", "CONFIDENCE", "ON_PAR_MARGIN", "Claim", "CLAIMS",
           "Measure", "Outcome", "Decision", "Verdict", "RELATIONS", "binomial_margin", "compare", "screen", "reaches", "near",
           "contrast",
           "combine", "decide", "control", "summarize", "make_verdict", "not_tested", "verdict_rows",
           "verdict_markdown", "verdict_details", "failed_controls", "untestable", "save_verdicts", "load_verdicts"]

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED = "supported", "contradicted", "inconclusive", "not tested"
OUTCOMES = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED)

# why a verdict is what it is: one reason category per outcome
DECIDED, NOISE, FEW_SEEDS, NOT_LEARNED, CONTROLS, NOT_RUN = (
    "decided", "inside the noise", "too few seeds", "did not learn", "controls failed", "not run")
CATEGORIES = (DECIDED, NOISE, FEW_SEEDS, NOT_LEARNED, CONTROLS, NOT_RUN)

# how the parts (cells) of a claim combine: every part must hold, or some part
QUANTIFIERS = ("all", "some")

ALPHA = 0.02
"""Wrong-decision budget of one comparison, both directions together: a part is decided when its
two-sided ``1 - ALPHA`` (98 %) interval excludes the decision line, so a true null is decided in
either direction with probability at most ``ALPHA``. Chosen below the 5 % the book promises so that
non-normal noise (values clipped at 0 and 1, test-set sampling) keeps the measured rates under it."""
CONFIDENCE = 1.0 - ALPHA

RELATIONS = ("better", "on_par", "not_better")

ON_PAR_MARGIN = 0.05
"""The default equivalence margin of "on par" for accuracies in [0, 1]: five accuracy points. A claim
states its own margin, with its reason, where it has one (:mod:`dsflib.claims`)."""


def _special():
    # scipy.special's t and normal distribution functions (those behind scipy.stats.t and .norm, without
    # their per-call overhead); imported on first use: the sweep bookkeeping imports this module
    from scipy import special

    return special


@dataclass(frozen=True)
class Claim:
    """One empirical claim of the paper: ``quote`` is the paper's own words, ``source`` its place."""

    id: str
    experiment: str
    quote: str
    source: str


def _claims(*rows: tuple[str, str, str, str]) -> dict[str, Claim]:
    return {r[0]: Claim(*r) for r in rows}


# Exact short quotes (ellipses mark omissions), places as in the paper (NeurIPS 2024 camera-ready).
CLAIMS = _claims(
    ("C1", "mqar", "with larger n linear attention converges to the performance of softmax attention, which "
     "achieves perfect accuracy throughout", "§4.1, Fig. 1"),
    ("C2", "mqar", "proper normalization, i.e., using normalization (22), improves the performance of linear "
     "attention schemes", "§4.2, Fig. 2"),
    ("C3", "mqar", "Figure 2 shows that normalized attention outperforms standard linear attention", "App. L"),
    ("C4", "mqar", "SSD outperforms S6", "App. L"),
    ("C5", "mqar", "normalized attention performs on par with S6", "App. L"),
    ("C6", "mqar", "The effect of state expansion can not only be observed for linear attention (Figure 1) but "
     "also for normalized attention (22), S6, and SSD", "App. L (task L=512, KV=64)"),
    ("C7", "mqar", "softmax attention performs perfectly accross all sweeps except {L = 512, KV-pairs = 64}, "
     "d = 64, and n = 32", "App. L"),
    ("C8", "mqar", "the reversed sigmoid state transition outperforms the original state transition on all three "
     "benchmark tasks", "§4.3, Fig. 3"),
    ("C9", "wikitext", "normalized attention closes part of the gap to softmax attention on the WikiText-103 "
     "dataset", "§4.2, Table 1"),
    ("C10", "wikitext", "better normalization can close 25% of the perplexity gap between linear attention and "
     "softmax attention", "App. L, Table 1"),
    ("C11", "lra", "While normalized attention outperforms linear and softmax attention on the LRA, it performs "
     "significantly worse than S6", "§4.2, Table 1"),
    ("C12", "lra", "S6 only achieves significantly higher accuracy on the tasks Text and Image", "App. M, Table 3"),
    ("C13", "mqar+lra", "perform similarly on both tasks, however the exponential normalization … yields the best "
     "performance", "App. H, Table 2 (LRA Image; MQAR L=512, KV=64)"),
)


def binomial_margin(n: int, p: float = 0.5) -> float:
    """Twice the binomial standard error of an accuracy ``p`` measured on ``n`` independent items
    (``p = 0.5``, the default, gives the largest). A :class:`Measure`'s ``margin``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (the number of test items), got {n!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return 2.0 * math.sqrt(max(p * (1.0 - p), 1.0 / (4.0 * n)) / n)


def _binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` on ``n`` items, Agresti–Coull adjusted (never 0 at p = 0 or 1)."""
    q = (p * n + 2.0) / (n + 4.0)
    return math.sqrt(q * (1.0 - q) / (n + 4.0))


@dataclass(frozen=True)
class Measure:
    """One model in one cell: ``values`` per seed (NaN marks a diverged run).

    ``floor`` is the measured level a model that did not learn sits at (the MQAR no-binding baseline,
    chance on LRA, the unigram perplexity on WikiText); ``higher_is_better`` the direction. The
    measurement noise of one value: ``test_items`` (an accuracy on that many items: binomial variance
    at the value) or ``margin`` (twice its standard error, :func:`binomial_margin`); at most one.
    ``seed_sd`` (with ``seed_sd_df`` degrees of freedom, from ``seed_sd_source``) is a seed-to-seed
    standard deviation known from other runs, used only when the measure has one seed.
    """

    name: str
    values: tuple[float, ...]
    floor: float = -math.inf
    higher_is_better: bool = True
    margin: float | None = None
    test_items: int | None = None
    seed_sd: float | None = None
    seed_sd_df: int | None = None
    seed_sd_source: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        try:
            values = tuple(float(v) for v in self.values)
        except (TypeError, ValueError):
            raise TypeError(f"values of {self.name!r} must be a sequence of numbers, got {self.values!r}") from None
        object.__setattr__(self, "values", values)
        if self.margin is not None and not (self.margin >= 0):
            raise ValueError(f"margin of {self.name!r} must be >= 0 or None, got {self.margin!r}")
        if self.test_items is not None:
            if isinstance(self.test_items, bool) or not isinstance(self.test_items, int) or self.test_items < 1:
                raise ValueError(f"test_items of {self.name!r} must be a positive int, got {self.test_items!r}")
            if self.margin is not None:
                raise ValueError(f"give {self.name!r} either margin or test_items, not both")
        if math.isnan(float(self.floor)):
            raise ValueError(f"floor of {self.name!r} must be a number, got NaN")
        if self.seed_sd is not None:
            if not (self.seed_sd >= 0) or not math.isfinite(self.seed_sd):
                raise ValueError(f"seed_sd of {self.name!r} must be a finite number >= 0, got {self.seed_sd!r}")
            if isinstance(self.seed_sd_df, bool) or not isinstance(self.seed_sd_df, int) or self.seed_sd_df < 1:
                raise ValueError(f"seed_sd_df of {self.name!r} must be a positive int with seed_sd, "
                                 f"got {self.seed_sd_df!r}")

    @property
    def finite(self) -> tuple[float, ...]:
        return tuple(v for v in self.values if math.isfinite(v))

    @property
    def seeds(self) -> int:
        return len(self.finite)

    @property
    def mean(self) -> float:
        f = self.finite
        return sum(f) / len(f) if f else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation over the finite seeds (NaN with fewer than two)."""
        f = self.finite
        if len(f) < 2:
            return math.nan
        m = sum(f) / len(f)
        return math.sqrt(sum((v - m) ** 2 for v in f) / (len(f) - 1))

    def value_se(self, value: float) -> float:
        """The measurement standard error of one value (0 when the measure states none)."""
        if self.test_items is not None:
            return _binomial_se(min(max(value, 0.0), 1.0), self.test_items)
        return 0.0 if self.margin is None else self.margin / 2.0

    def seed_variance(self) -> tuple[float, float, str] | None:
        """(variance, degrees of freedom, source) of one seed's value: the sample variance with ≥ 2
        seeds, else ``seed_sd`` when given, else ``None`` (no way to know the seed-to-seed noise)."""
        if self.seeds >= 2:
            return self.std ** 2, float(self.seeds - 1), f"spread over {self.seeds} seeds"
        if self.seeds == 1 and self.seed_sd is not None:
            return self.seed_sd ** 2, float(self.seed_sd_df), self.seed_sd_source or "a pooled seed spread"
        return None

    def mean_variance(self) -> tuple[float, float, float] | None:
        """(seed part, its degrees of freedom, test-set part) of the variance of :attr:`mean`; ``None``
        when the seed-to-seed noise is unknown."""
        sv = self.seed_variance()
        if sv is None:
            return None
        return sv[0] / self.seeds, sv[1], self.value_se(self.mean) ** 2

    @property
    def noise(self) -> float:
        """The standard error of :attr:`mean` (seed and test-set parts), NaN when unknown."""
        mv = self.mean_variance()
        return math.nan if mv is None else math.sqrt(mv[0] + mv[2])

    def seeds_at(self, level: float) -> int:
        """How many seeds are not measurably short of ``level``: the value's upper ``CONFIDENCE`` bound
        under its measurement noise at or beyond it (a run that solved a task, within its test set)."""
        z = _quantile(math.inf)
        sign = 1.0 if self.higher_is_better else -1.0
        return int(sum(sign * (v - level) + z * self.value_se(v) >= 0 for v in self.finite))

    def learned_seeds(self) -> int:
        """How many seeds left the floor: the value's lower ``CONFIDENCE`` bound under its measurement
        noise beyond :attr:`floor`."""
        z = _quantile(math.inf)
        sign = 1.0 if self.higher_is_better else -1.0
        return int(sum(sign * (v - self.floor) - z * self.value_se(v) > 0 for v in self.finite))

    def learned(self) -> bool:
        """Whether a majority of the seeds (diverged ones counted) left the floor (:meth:`learned_seeds`)."""
        return bool(self.values) and bool(2 * self.learned_seeds() > len(self.values))

    def describe(self) -> str:
        if not self.values:
            return f"{self.name}: not run"
        if not self.seeds:
            return f"{self.name}: diverged on all {len(self.values)} seed(s)"
        text = f"{self.name} {self.mean:.3f}"
        if self.seeds >= 2:
            text += f" ± {self.std:.3f} ({self.seeds} seeds)"
        elif self.seed_sd is not None:
            text += f" (1 seed; {self.seed_sd_source or f'pooled seed spread {self.seed_sd:.3f}'})"
        else:
            text += " (1 seed)"
        diverged = len(self.values) - self.seeds
        return text + (f", {diverged} diverged" if diverged else "")


def _check_outcome(obj) -> None:
    """Validate ``obj.outcome`` and ``obj.category`` (an :class:`Outcome` or a :class:`Verdict`), filling
    in the category an outcome implies when none is given."""
    if obj.outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {obj.outcome!r}")
    if not obj.category:
        default = {SUPPORTED: DECIDED, CONTRADICTED: DECIDED, NOT_TESTED: NOT_RUN}.get(obj.outcome, NOISE)
        object.__setattr__(obj, "category", default)
    if obj.category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {obj.category!r}")


@dataclass(frozen=True)
class Outcome:
    """The result of one comparison: the outcome, the difference in the claim's direction, the
    half-width of its interval (``tolerance``), a one-line reason, the reason's category, the
    ``CONFIDENCE`` interval, the one-sided p-values for and against the claim and the test used."""

    outcome: str
    difference: float
    tolerance: float
    reason: str
    category: str = ""
    interval: tuple[float, float] = (math.nan, math.nan)
    p_for: float = math.nan
    p_against: float = math.nan
    test: str = ""

    def __post_init__(self):
        _check_outcome(self)


def screen(measures: Sequence[Measure], require_learned: bool = True,
           stuck: str = "did not leave its no-learning level") -> Outcome | None:
    """The outcome that settles a comparison before any difference is looked at: not tested when a
    measure was not run; inconclusive when one diverged on every seed or (with ``require_learned``)
    did not learn (:meth:`Measure.learned`), the reason starting with ``stuck``; ``None`` when the
    comparison can go on."""
    missing = [m.name for m in measures if not m.values]
    if missing:
        return Outcome(NOT_TESTED, math.nan, math.nan, f"not run: {', '.join(missing)}")
    diverged = [m.name for m in measures if not m.seeds]
    if diverged:
        return Outcome(INCONCLUSIVE, math.nan, math.nan, f"diverged on every seed: {', '.join(diverged)}",
                       NOT_LEARNED)
    if require_learned:
        flat = [f"{m.name} ({m.learned_seeds()} of {len(m.values)} seeds)" for m in measures if not m.learned()]
        if flat:
            return Outcome(INCONCLUSIVE, math.nan, math.nan, f"{stuck}: {', '.join(flat)}", NOT_LEARNED)
    few = [m.name for m in measures if m.seed_variance() is None]
    if few:
        return Outcome(INCONCLUSIVE, math.nan, math.nan, "one seed and no seed-spread estimate: "
                       + ", ".join(few), FEW_SEEDS)
    return None


def _quantile(df: float) -> float:
    """The two-sided ``CONFIDENCE`` quantile of Student's t with ``df`` degrees of freedom (normal at ∞)."""
    special = _special()
    q = 1.0 - ALPHA / 2.0
    return float(special.ndtri(q) if math.isinf(df) else special.stdtrit(df, q))


def _sf(x: float, df: float) -> float:
    """``P(T > x)`` for Student's t with ``df`` degrees of freedom (normal at ∞)."""
    special = _special()
    return float(special.ndtr(-x) if math.isinf(df) else special.stdtr(df, -x))


def _difference_stats(a: Measure, b: Measure) -> tuple[float, float]:
    """Variance of ``mean(a) - mean(b)`` and its Welch–Satterthwaite degrees of freedom (the test-set
    parts count as known: infinite degrees of freedom)."""
    sa, dfa, ta = a.mean_variance()
    sb, dfb, tb = b.mean_variance()
    var = sa + ta + sb + tb
    den = sa * sa / dfa + sb * sb / dfb
    return var, (var * var / den if den > 0 else math.inf)


def _fmt_df(df: float) -> str:
    return "∞" if math.isinf(df) else f"{df:.1f}"


def compare(a: Measure, b: Measure, relation: str = "better", *, margin: float | None = None,
            require_learned: bool = True) -> Outcome:
    """Decide "``a`` is better than ``b``" (``relation="better"``), "``a`` is on par with ``b``"
    (``relation="on_par"``, within ``margin``: default :data:`ON_PAR_MARGIN` for accuracies, required
    otherwise) or "``a`` is not better than ``b`` by more than ``margin``" (``relation="not_better"``,
    margin required: the interval below it supports, above it contradicts) from their per-seed values.

    Not tested when either was not run; inconclusive when either diverged on every seed, did not
    learn (unless ``require_learned`` is false) or has one seed and no seed-spread estimate. Else
    "better" is Welch's t-test on the difference (seed and test-set variance; see the module's
    docstring): the ``CONFIDENCE`` interval above 0 supports, below 0 contradicts, across 0 is
    inconclusive. "On par" is TOST: the interval inside ``(-margin, margin)`` supports, entirely
    outside it contradicts.
    """
    if not isinstance(a, Measure) or not isinstance(b, Measure):
        raise TypeError("a and b must be Measure objects")
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    if a.higher_is_better != b.higher_is_better:
        raise ValueError(f"a ({a.name}) and b ({b.name}) must agree on higher_is_better")
    if relation == "not_better":
        if margin is None or not (margin >= 0) or not math.isfinite(margin):
            raise ValueError(f"margin (how much better still counts as 'not better') must be a finite number >= 0 "
                             f"for relation='not_better', got {margin!r}")
    elif relation == "on_par":
        if margin is None:
            unit = all(0.0 <= v <= 1.0 for v in a.finite + b.finite)
            if not unit:
                raise ValueError("margin (the equivalence margin of 'on par') is required for values outside "
                                 "[0, 1]; the default ON_PAR_MARGIN is for accuracies")
            margin = ON_PAR_MARGIN
        if not (margin > 0) or not math.isfinite(margin):
            raise ValueError(f"margin must be a positive finite number, got {margin!r}")
    elif margin is not None:
        raise ValueError("margin is for relation='on_par' or 'not_better' only")
    early = screen([a, b], require_learned)
    if early is not None:
        return early
    sign = 1.0 if a.higher_is_better else -1.0
    diff = sign * (a.mean - b.mean)
    var, df = _difference_stats(a, b)
    pooled = "".join(f"; {m.name}: {m.seed_variance()[2]}" for m in (a, b) if m.seeds == 1)
    if relation == "better":
        return _positive(f"{a.name} − {b.name}", diff, var, df, f"Welch t, df {_fmt_df(df)}{pooled}")
    iv = _interval(f"{a.name} − {b.name}", diff, var, df)
    if iv is None:
        return Outcome(INCONCLUSIVE, diff, 0.0, NO_NOISE, FEW_SEEDS)
    se, half, lo, hi, ci = iv
    if relation == "not_better":
        test = f"non-superiority, margin {margin:g}, df {_fmt_df(df)}{pooled}"
        p_for, p_against = _sf((margin - diff) / se, df), _sf((diff - margin) / se, df)
        if hi < margin:
            return Outcome(SUPPORTED, diff, half, f"{ci}: below {margin:g} ({test})", DECIDED, (lo, hi), p_for,
                           p_against, test)
        if lo > margin:
            return Outcome(CONTRADICTED, diff, half, f"{ci}: above {margin:g} ({test})", DECIDED, (lo, hi), p_for,
                           p_against, test)
        return Outcome(INCONCLUSIVE, diff, half, f"{ci}: contains {margin:g} ({test})", NOISE, (lo, hi), p_for,
                       p_against, test)
    test = f"TOST, margin ±{margin:g}, df {_fmt_df(df)}{pooled}"
    p_for = max(_sf((diff + margin) / se, df), _sf((margin - diff) / se, df))
    p_against = min(_sf((diff - margin) / se, df), _sf((-diff - margin) / se, df))
    if -margin < lo and hi < margin:
        return Outcome(SUPPORTED, diff, half, f"{ci}: inside ±{margin:g} ({test})", DECIDED, (lo, hi), p_for,
                       p_against, test)
    if lo > margin or hi < -margin:
        return Outcome(CONTRADICTED, diff, half, f"{ci}: outside ±{margin:g} ({test})", DECIDED, (lo, hi), p_for,
                       p_against, test)
    return Outcome(INCONCLUSIVE, diff, half, f"{ci}: crosses ±{margin:g} ({test})", NOISE, (lo, hi), p_for,
                   p_against, test)


NO_NOISE = "no spread and no measurement noise: no noise level to judge by"


def _interval(name: str, diff: float, var: float, df: float) -> tuple | None:
    """``(se, half-width, low, high, text)`` of the ``CONFIDENCE`` interval of ``diff`` with variance
    ``var`` and ``df`` degrees of freedom; None when there is no variance to judge by."""
    if var <= 0:
        return None
    se = math.sqrt(var)
    half = _quantile(df) * se
    lo, hi = diff - half, diff + half
    return se, half, lo, hi, f"{name} = {diff:+.3f}, {CONFIDENCE:.1%} CI [{lo:+.3f}, {hi:+.3f}]"


def _positive(name: str, diff: float, var: float, df: float, test: str) -> Outcome:
    """Decide ``diff > 0`` from its variance and degrees of freedom: the ``CONFIDENCE`` interval above 0
    supports, below 0 contradicts, across 0 is inconclusive."""
    iv = _interval(name, diff, var, df)
    if iv is None:
        return Outcome(INCONCLUSIVE, diff, 0.0, NO_NOISE, FEW_SEEDS)
    se, half, lo, hi, ci = iv
    p_for, p_against = _sf(diff / se, df), _sf(-diff / se, df)
    if lo > 0:
        return Outcome(SUPPORTED, diff, half, f"{ci}: above 0 ({test})", DECIDED, (lo, hi), p_for, p_against, test)
    if hi < 0:
        return Outcome(CONTRADICTED, diff, half, f"{ci}: below 0 ({test})", DECIDED, (lo, hi), p_for, p_against, test)
    return Outcome(INCONCLUSIVE, diff, half, f"{ci}: contains 0 ({test})", NOISE, (lo, hi), p_for, p_against, test)


def contrast(name: str, terms: Sequence[tuple[float, Measure]]) -> Outcome:
    """Decide "``sum(w * mean(m))`` is above 0" for independent measures (e.g. how much a gap shrinks:
    ``(soft_0 - lin_0) - (soft_1 - lin_1)``), each mean with its seed and test-set variance, degrees of
    freedom by Welch–Satterthwaite. Not tested / inconclusive as :func:`compare` screens (no learning
    requirement: a contrast's rule states its own controls)."""
    measures = [m for _, m in terms]
    early = screen(measures, require_learned=False)
    if early is not None:
        return early
    estimate, var, den = 0.0, 0.0, 0.0
    for w, m in terms:
        seed, df, test = m.mean_variance()
        estimate += w * m.mean
        var += w * w * (seed + test)
        den += (w * w * seed) ** 2 / df
    df = var * var / den if den > 0 else math.inf
    return _positive(name, estimate, var, df, f"Welch–Satterthwaite t, df {_fmt_df(df)}")


def reaches(a: Measure, level: float) -> Outcome:
    """Decide "``a`` reaches ``level``" (e.g. perfect accuracy read as 0.99): a one-sample t interval of
    the mean (seed and test-set variance) whose lower end (upper end, lower is better) is at or beyond
    ``level`` supports, whose upper end falls short of it contradicts; else inconclusive.

    Seeds piled at a bound (runs at 1.0) show no spread whatever the model's true spread, and a spread
    pooled over cells piled there shows none either: a level is judged only on three seeds of the cell
    itself or more, on their own spread (a pooled one is not used)."""
    if not isinstance(a, Measure):
        raise TypeError("a must be a Measure")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not math.isfinite(level):
        raise TypeError(f"level must be a finite number, got {level!r}")
    early = screen([a], require_learned=False)
    if early is not None:
        return early
    if a.seeds < 3:
        return Outcome(INCONCLUSIVE, math.nan, math.nan, f"{a.name}: {a.seeds} seed(s); reaching a level needs "
                       "three (seeds piled at the bound hide their spread)", FEW_SEEDS)
    sign = 1.0 if a.higher_is_better else -1.0
    above = sign * (a.mean - level)
    s, df_seed, t = a.mean_variance()
    var = s + t
    if var <= 0:
        return Outcome(INCONCLUSIVE, above, 0.0, NO_NOISE, FEW_SEEDS)
    df = var * var / (s * s / df_seed) if s > 0 else math.inf
    se = math.sqrt(var)
    half = _quantile(df) * se
    lo, hi = a.mean - half, a.mean + half
    test = f"one-sample t, df {_fmt_df(df)}"
    text = f"{a.name} {a.mean:.3f}, {CONFIDENCE:.1%} CI [{lo:.3f}, {hi:.3f}] vs {level:g}"
    p_for, p_against = _sf(above / se, df), _sf(-above / se, df)
    if above - half >= 0:
        return Outcome(SUPPORTED, above, half, f"{text}: reaches it ({test})", DECIDED, (lo, hi), p_for, p_against,
                       test)
    if above + half < 0:
        return Outcome(CONTRADICTED, above, half, f"{text}: short of it ({test})", DECIDED, (lo, hi), p_for,
                       p_against, test)
    return Outcome(INCONCLUSIVE, above, half, f"{text}: interval contains it ({test})", NOISE, (lo, hi), p_for,
                   p_against, test)


def near(name: str, estimate: float, parts: Sequence[tuple[float, float]], target: float, margin: float) -> Outcome:
    """Decide "``estimate`` is within ``margin`` of ``target``" (TOST) for a derived quantity (e.g. a
    ratio of means by the delta method) whose variance is the sum of ``parts`` ``(variance, degrees of
    freedom)``, degrees of freedom by Welch–Satterthwaite."""
    if not math.isfinite(estimate):
        return Outcome(INCONCLUSIVE, math.nan, math.nan, f"{name} is undefined", NOISE)
    if not (margin > 0):
        raise ValueError(f"margin must be > 0, got {margin!r}")
    var = sum(v for v, _ in parts)
    den = sum(v * v / df for v, df in parts if v > 0)
    if var <= 0:
        return Outcome(INCONCLUSIVE, estimate - target, 0.0, f"{name}: no noise level to judge by", FEW_SEEDS)
    df = var * var / den if den > 0 else math.inf
    se = math.sqrt(var)
    half = _quantile(df) * se
    lo, hi = estimate - half, estimate + half
    test = f"TOST, margin ±{margin:g}, df {_fmt_df(df)}"
    text = f"{name} {estimate:.3f}, {CONFIDENCE:.1%} CI [{lo:.3f}, {hi:.3f}] vs {target:g}"
    diff = estimate - target
    p_for = max(_sf((diff + margin) / se, df), _sf((margin - diff) / se, df))
    p_against = min(_sf((diff - margin) / se, df), _sf((-diff - margin) / se, df))
    if target - margin < lo and hi < target + margin:
        return Outcome(SUPPORTED, diff, half, f"{text}: inside ±{margin:g} ({test})", DECIDED, (lo, hi), p_for,
                       p_against, test)
    if lo > target + margin or hi < target - margin:
        return Outcome(CONTRADICTED, diff, half, f"{text}: outside ±{margin:g} ({test})", DECIDED, (lo, hi), p_for,
                       p_against, test)
    return Outcome(INCONCLUSIVE, diff, half, f"{text}: crosses ±{margin:g} ({test})", NOISE, (lo, hi), p_for,
                   p_against, test)


@dataclass(frozen=True)
class Decision:
    """A claim's outcome from its parts: the outcome, its reason category, a reason, and how many
    parts supported, contradicted, were inconclusive and were not tested."""

    outcome: str
    category: str
    reason: str
    supported: int = 0
    contradicted: int = 0
    inconclusive: int = 0
    not_tested: int = 0

    @property
    def counts(self) -> str:
        tested = self.supported + self.contradicted + self.inconclusive
        text = f"{self.supported}/{self.contradicted}/{self.inconclusive} of {tested}"
        return text + (f" (+{self.not_tested} not run)" if self.not_tested else "")


def _as_outcome(o: str | Outcome) -> Outcome:
    if isinstance(o, Outcome):
        return o
    if o not in OUTCOMES:
        raise ValueError(f"outcomes must be among {OUTCOMES}, got {o!r}")
    return Outcome(o, math.nan, math.nan, "")


def decide(outcomes: Iterable[str | Outcome], quantifier: str = "all") -> Decision:
    """One :class:`Decision` for a claim tested in several parts, by its ``quantifier``:

    * ``"all"`` (the claim holds in every part): supported when every tested part is supported (an
      intersection–union test: no correction needed); contradicted when some part contradicts it at
      the Bonferroni level ``ALPHA / m`` for ``m`` tested parts (its one-sided p-value against the
      claim below ``ALPHA / (2 m)``); else inconclusive.
    * ``"some"`` (it holds in at least one part): supported when some part supports it at the
      Bonferroni level and none contradicts it at that level; contradicted when every tested part
      contradicts it; else inconclusive.

    Parts that were not run are left out (and counted); with none tested the claim is not tested.
    Plain outcome strings (no p-values) count as decided at their own level."""
    if quantifier not in QUANTIFIERS:
        raise ValueError(f"quantifier must be one of {QUANTIFIERS}, got {quantifier!r}")
    parts = [_as_outcome(o) for o in outcomes]
    counts = {o: sum(p.outcome == o for p in parts) for o in OUTCOMES}
    tallies = dict(supported=counts[SUPPORTED], contradicted=counts[CONTRADICTED],
                   inconclusive=counts[INCONCLUSIVE], not_tested=counts[NOT_TESTED])
    tested = [p for p in parts if p.outcome != NOT_TESTED]
    if not tested:
        return Decision(NOT_TESTED, NOT_RUN, "no part was run", **tallies)
    m = len(tested)
    level = ALPHA / (2.0 * m)

    def strong(p: Outcome, against: bool) -> bool:
        wanted = CONTRADICTED if against else SUPPORTED
        pv = p.p_against if against else p.p_for
        return p.outcome == wanted and (math.isnan(pv) or pv < level)

    def why_not() -> tuple[str, str]:
        cats = [p.category for p in tested if p.outcome == INCONCLUSIVE]
        for cat in (CONTROLS, NOT_LEARNED, FEW_SEEDS, NOISE):
            if cat in cats:
                return cat, f"{cats.count(cat)} of {m} part(s): {cat}"
        return NOISE, f"parts disagree or are not decided at the level {ALPHA:g}/{m} (Bonferroni)"

    if quantifier == "all":
        if all(p.outcome == SUPPORTED for p in tested):
            return Decision(SUPPORTED, DECIDED, f"all {m} tested part(s) supported", **tallies)
        if any(strong(p, True) for p in tested):
            k = sum(strong(p, True) for p in tested)
            return Decision(CONTRADICTED, DECIDED, f"{k} of {m} part(s) contradict it at the level "
                            f"{ALPHA:g}/{m}", **tallies)
    else:
        if all(p.outcome == CONTRADICTED for p in tested):
            return Decision(CONTRADICTED, DECIDED, f"all {m} tested part(s) contradict it", **tallies)
        if any(strong(p, False) for p in tested) and not any(strong(p, True) for p in tested):
            k = sum(strong(p, False) for p in tested)
            return Decision(SUPPORTED, DECIDED, f"{k} of {m} part(s) support it at the level {ALPHA:g}/{m}",
                            **tallies)
    category, reason = why_not()
    return Decision(INCONCLUSIVE, category, reason, **tallies)


def combine(outcomes: Iterable[str | Outcome], quantifier: str = "all") -> str:
    """The outcome of :func:`decide` (one outcome for a claim tested in several parts)."""
    return decide(outcomes, quantifier).outcome


def control(label: str, outcome: Outcome | bool | None, reason: str = "") -> tuple[str, bool | None, str]:
    """A positive control of a claim: ``(label, passed, reason)``. An :class:`Outcome` passes when it is
    ``supported``, cannot be evaluated (``passed`` None) when it was not run or has too few seeds, and
    fails otherwise; a bool is the result itself, None "could not be evaluated" (say why in ``reason``)."""
    if isinstance(outcome, Outcome):
        if outcome.category in (NOT_RUN, FEW_SEEDS):
            return label, None, reason or f"{outcome.category}: {outcome.reason}"
        return label, outcome.outcome == SUPPORTED, reason or f"{outcome.outcome}: {outcome.reason}"
    if outcome is None or isinstance(outcome, bool):
        return label, outcome, reason
    raise TypeError(f"outcome must be an Outcome, a bool or None, got {type(outcome).__name__}")


def summarize(parts: Sequence[tuple[str, Outcome]], limit: int | None = None) -> str:
    """One line for several labelled comparisons: how many of each outcome, then ``label: outcome
    (reason)`` for each (the first ``limit`` when given)."""
    counts = {o: sum(p.outcome == o for _, p in parts) for o in OUTCOMES}
    head = f"{len(parts)} comparison(s): " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    shown = parts if limit is None else parts[:limit]
    text = "; ".join(f"{label}: {p.outcome} ({p.reason})" for label, p in shown)
    more = f"; … {len(parts) - len(shown)} more" if len(parts) > len(shown) else ""
    return head + (" — " + text + more if parts else "")


@dataclass(frozen=True)
class Verdict:
    """A claim, its outcome, the reason category, the cells the rule used and how many supported,
    contradicted, were inconclusive (``counts``: ``"s/c/i of m"``), the claim's quantifier, its positive
    controls, the numbers, and where and when they were computed."""

    claim: Claim
    outcome: str
    cells: str
    numbers: str
    profile: str = ""
    device: str = ""
    seeds: str = ""
    note: str = ""
    category: str = ""
    counts: str = ""
    quantifier: str = ""
    controls: str = ""
    scale: str = ""
    commit: str = ""
    date: str = ""

    def __post_init__(self):
        if not isinstance(self.claim, Claim):
            raise TypeError(f"claim must be a Claim, got {type(self.claim).__name__}")
        _check_outcome(self)

    def _run(self) -> str:
        return ", ".join(x for x in (f"profile {self.profile}" if self.profile else "",
                                     f"seeds {self.seeds}" if self.seeds else "",
                                     f"device {self.device}" if self.device else "",
                                     f"commit {self.commit}" if self.commit else "",
                                     self.date) if x)

    def __str__(self) -> str:
        c = self.claim
        lines = [f"{c.id} ({c.source}): \"{c.quote}\"", f"  verdict: {self.outcome.upper()} ({self.category})",
                 f"  cells: {self.cells}"]
        if self.counts:
            lines.append(f"  parts supported/contradicted/inconclusive: {self.counts} ({self.quantifier})")
        if self.controls:
            lines.append(f"  controls: {self.controls}")
        lines.append(f"  numbers: {self.numbers}")
        if self.note:
            lines.append(f"  note: {self.note}")
        if self._run():
            lines.append(f"  ({self._run()})")
        return "\n".join(lines)

    def as_row(self) -> dict:
        return {"claim": self.claim.id, "experiment": self.claim.experiment, "source": self.claim.source,
                "quote": self.claim.quote, "verdict": self.outcome, "category": self.category,
                "counts": self.counts, "quantifier": self.quantifier, "controls": self.controls,
                "cells": self.cells, "numbers": self.numbers, "note": self.note, "profile": self.profile,
                "seeds": self.seeds, "device": self.device, "scale": self.scale, "commit": self.commit,
                "date": self.date}


ROW_COLUMNS = ("claim", "experiment", "source", "quote", "verdict", "category", "counts", "quantifier", "controls",
               "cells", "numbers", "note", "profile", "seeds", "device", "scale", "commit", "date")


def make_verdict(claim_id: str, outcomes: Sequence[str | Outcome], cells: str, numbers: str, *,
                 quantifier: str = "all", controls: Sequence[tuple[str, bool, str]] = (), profile: str = "",
                 device: str = "", seeds: str = "", note: str = "", scale: str = "", commit: str = "",
                 date: str = "") -> Verdict:
    """The :class:`Verdict` of :data:`CLAIMS` ``[claim_id]`` from the outcomes of its parts, combined by
    ``quantifier`` (:func:`decide`). ``controls`` (from :func:`control`) are checked first: when one
    failed, the verdict is inconclusive with the reason "controls failed: …" whatever the parts say; when
    one could not be evaluated (not run, too few seeds), inconclusive with that reason.
    The reasons of the parts not already in ``numbers`` are appended to it."""
    if claim_id not in CLAIMS:
        raise ValueError(f"claim_id must be one of {sorted(CLAIMS)}, got {claim_id!r}")
    decision = decide(outcomes, quantifier)
    reasons = [o.reason for o in outcomes if isinstance(o, Outcome) and o.reason and o.reason not in numbers]
    text = numbers + (" — " + "; ".join(reasons) if reasons else "")
    controls = list(controls)
    for c in controls:
        if not (isinstance(c, tuple) and len(c) == 3 and (c[1] is None or isinstance(c[1], bool))):
            raise TypeError(f"controls must be (label, passed, reason) tuples from control(), got {c!r}")
    failed = [f"{label} ({why})" if why else label for label, ok, why in controls if ok is False]
    open_ = [(label, why) for label, ok, why in controls if ok is None]
    control_text = "; ".join(f"{label}: {({True: 'passed', False: 'FAILED'}).get(ok, 'not evaluable')}"
                             for label, ok, _ in controls)
    outcome, category = decision.outcome, decision.category
    if failed and outcome != NOT_TESTED:
        outcome, category = INCONCLUSIVE, CONTROLS
        text = "controls failed: " + "; ".join(failed) + " | " + text
    elif open_ and outcome != NOT_TESTED:
        # a control that could not be evaluated: the claim cannot be asked, for the control's reason
        few = any(why.startswith(FEW_SEEDS) for _, why in open_)
        outcome, category = INCONCLUSIVE, FEW_SEEDS if few else NOT_RUN
        text = "controls not evaluable: " + "; ".join(f"{label} ({why})" for label, why in open_) + " | " + text
    return Verdict(CLAIMS[claim_id], outcome, cells, text, profile=profile, device=device, seeds=seeds, note=note,
                   category=category, counts=decision.counts, quantifier=quantifier, controls=control_text,
                   scale=scale, commit=commit, date=date)


def not_tested(claim_id: str, why: str, *, profile: str = "", device: str = "", scale: str = "") -> Verdict:
    """A ``not tested`` verdict with the reason (no cell of the claim exists in this profile)."""
    return make_verdict(claim_id, [], "none", why, profile=profile, device=device, scale=scale)


def verdict_rows(verdicts: Iterable[Verdict]):
    """The verdicts as a pandas DataFrame, one row each (:meth:`Verdict.as_row`)."""
    import pandas as pd

    return pd.DataFrame([v.as_row() for v in verdicts], columns=list(ROW_COLUMNS))


def verdict_markdown(verdicts: Iterable[Verdict], columns: Sequence[str] = ("claim", "quote", "source", "verdict",
                                                                           "numbers")) -> str:
    """A Markdown table of the verdicts (pipes escaped), for ``IPython.display.Markdown``."""
    df = verdict_rows(verdicts)
    unknown = [c for c in columns if c not in df.columns]
    if unknown:
        raise ValueError(f"columns must be among {list(df.columns)}, got {unknown}")

    from .tables import markdown_table

    shown = df[list(columns)].astype(str).apply(lambda col: col.str.replace("\n", " "))
    if "verdict" in shown:
        shown["verdict"] = "**" + shown["verdict"] + "**"
    return markdown_table(shown) + "\n"


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|$#"})


def _md_text(text: str) -> str:
    """``text`` as literal Markdown: characters Markdown (or MyST's ``$`` math) would interpret are
    escaped and line breaks become spaces."""
    return " ".join(str(text).split()).translate(_MARKDOWN_SPECIAL)


def failed_controls(v: Verdict) -> list[str]:
    """The labels of the positive controls of ``v`` that failed (empty when none did)."""
    if not isinstance(v, Verdict):
        raise TypeError(f"v must be a Verdict, got {type(v).__name__}")
    return [part.rsplit(": ", 1)[0] for part in v.controls.split("; ") if part.endswith(": FAILED")]


def untestable(verdicts: Iterable[Verdict]) -> list[str]:
    """One line per verdict whose controls failed: the claim is untestable in its profile, and which
    control says so."""
    return [f"{v.claim.id}: untestable in profile {v.profile or '?'} - failed: {'; '.join(failed_controls(v))}"
            for v in verdicts if v.category == CONTROLS]


def verdict_details(verdicts: Iterable[Verdict]) -> str:
    """The verdicts as a Markdown bullet list, one item per verdict (claim, place, outcome), with the
    cells, the note, the runs it rests on, and its numbers split into one sub-item per comparison
    (the parts :func:`summarize` and :func:`make_verdict` join with `` — `` and ``; ``).

    Formatting only: the same fields as ``str(verdict)``, laid out so that long reasons wrap in a
    page's column instead of running off it as one printed line.
    """
    items = []
    for v in verdicts:
        if not isinstance(v, Verdict):
            raise TypeError(f"verdicts must be Verdict objects, got {type(v).__name__}")
        c = v.claim
        lines = [f"* **{_md_text(c.id)}** ({_md_text(c.source)}): **{v.outcome}** ({_md_text(v.category)})"]
        if v.counts:
            lines.append(f"  * parts supported/contradicted/inconclusive: {_md_text(v.counts)}, "
                         f"quantifier {_md_text(v.quantifier)}")
        if v.controls:
            lines.append(f"  * controls: {_md_text(v.controls)}")
        lines.append(f"  * cells: {_md_text(v.cells)}")
        parts = [p.strip() for chunk in v.numbers.split(" — ") for p in chunk.split("; ") if p.strip()]
        if len(parts) <= 1:
            lines.append(f"  * numbers: {_md_text(v.numbers)}")
        else:
            lines.append("  * numbers:")
            lines += [f"    * {_md_text(p)}" for p in parts]
        if v.note:
            lines.append(f"  * note: {_md_text(v.note)}")
        run = v._run()
        if run:
            lines.append(f"  * runs: {_md_text(run)}")
        items.append("\n".join(lines))
    return "\n".join(items) + "\n"


def save_verdicts(verdicts: Iterable[Verdict], path: str | os.PathLike) -> Path:
    """Write the verdicts as JSON (atomically: temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = [asdict(v) for v in verdicts]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_verdicts(path: str | os.PathLike) -> list[Verdict]:
    """Read verdicts written by :func:`save_verdicts` (an empty list when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for d in json.loads(path.read_text()):
        claim = Claim(**d.pop("claim"))
        known = {f.name for f in fields(Verdict)}
        out.append(Verdict(claim, **{k: v for k, v in d.items() if k in known}))
    return out
