"""The paper's WikiText claims (C9, C10) as rules on per-model training perplexities.

A measure holds the final training perplexity per seed (Table 1's metric; lower is better), floored at
the unigram perplexity of the training tokens (a model using no context). Positive control of both
claims: softmax attention is better than linear attention beyond the noise — without that gap there
is nothing for normalized attention to close.
"""
from __future__ import annotations

import math

from ..verdicts import Measure, Outcome, Verdict, compare, control, make_verdict, near, screen, summarize

__all__ = ["PAPER_FRACTION", "FRACTION_MARGIN", "gap_fraction", "fraction_outcome", "c9", "c10", "verdicts"]

#: C10: "better normalization can close 25% of the perplexity gap between linear attention and softmax
#: attention" (App. L).
PAPER_FRACTION = 0.25
FRACTION_MARGIN = 0.10
"""C10's margin, fixed before any run: a fraction within 0.15–0.35 counts as "25 %" (the paper's figure
comes from one run per model and is given as a round number)."""


def gap_fraction(lin: float, norm: float, soft: float) -> float:
    """The share of the linear-softmax perplexity gap that normalized attention closes:
    ``(lin - norm) / (lin - soft)`` (NaN when there is no gap)."""
    gap = lin - soft
    return (lin - norm) / gap if gap != 0 and math.isfinite(gap) else math.nan


def gap_controls(lin: Measure, soft: Measure) -> list[tuple]:
    """The positive control of C9 and C10: softmax attention better than linear attention."""
    return [control("softmax better than linear attention (a gap to close)", compare(soft, lin))]


def c9(lin: Measure, norm: Measure, soft: Measure, labels: dict) -> Verdict:
    """C9 (§4.2, Table 1): normalized attention between linear and softmax attention, each step beyond the
    noise (normalized better than linear, softmax better than normalized)."""
    parts = [("normalized vs linear", compare(norm, lin)), ("softmax vs normalized", compare(soft, norm))]
    return make_verdict("C9", [p for _, p in parts], "training perplexity of normalized vs linear and softmax "
                        "attention (normalized between them, each step beyond the noise)",
                        "; ".join(m.describe() for m in (lin, norm, soft)) + " | " + summarize(parts),
                        controls=gap_controls(lin, soft), **labels)


def fraction_outcome(lin: Measure, norm: Measure, soft: Measure) -> tuple[Outcome, float]:
    """:func:`gap_fraction` of the means with its delta-method variance (seed variance of each mean,
    Welch–Satterthwaite degrees of freedom) against :data:`PAPER_FRACTION` ± :data:`FRACTION_MARGIN`."""
    early = screen([lin, norm, soft], stuck="not below the unigram perplexity")
    if early is not None:  # the fraction is still reported where the means exist
        return early, gap_fraction(lin.mean, norm.mean, soft.mean)
    L, N, S = lin.mean, norm.mean, soft.mean
    f = gap_fraction(L, N, S)
    if not math.isfinite(f):
        return Outcome("inconclusive", math.nan, math.nan, "no linear-softmax gap: the fraction is undefined"), f
    gap = L - S
    grads = ((N - S) / gap ** 2, -1.0 / gap, (L - N) / gap ** 2)  # ∂f/∂lin, ∂f/∂norm, ∂f/∂soft
    parts = []
    for g, m in zip(grads, (lin, norm, soft)):
        seed, df, test = m.mean_variance()
        parts.append((g * g * (seed + test), df))
    return near("fraction (lin − norm)/(lin − soft)", f, parts, PAPER_FRACTION, FRACTION_MARGIN), f


def c10(lin: Measure, norm: Measure, soft: Measure, labels: dict) -> Verdict:
    """C10 (App. L, Table 1): the fraction of the gap closed within :data:`FRACTION_MARGIN` of 25 %."""
    outcome, f = fraction_outcome(lin, norm, soft)
    numbers = "; ".join(m.describe() for m in (lin, norm, soft))
    if math.isfinite(f):
        numbers += f"; fraction of the gap closed (lin − norm)/(lin − soft) = {f:.3f} (paper: {PAPER_FRACTION:g})"
    return make_verdict("C10", [outcome], f"share of the linear-softmax training-perplexity gap closed by normalized "
                        f"attention, against 25 % ± {FRACTION_MARGIN:g}", numbers, controls=gap_controls(lin, soft),
                        **labels)


def verdicts(lin: Measure, norm: Measure, soft: Measure, labels: dict) -> list[Verdict]:
    return [c9(lin, norm, soft, labels), c10(lin, norm, soft, labels)]
