"""The paper's empirical claims and the rule that turns our numbers into a verdict on each.

A verdict has one of four outcomes (:data:`OUTCOMES`):

* ``supported`` — the compared models learned and the difference points the claim's way by more
  than the noise;
* ``contradicted`` — they learned and the difference points the other way by more than the noise;
* ``inconclusive`` — a compared model did not leave its chance/plateau level, a model diverged on
  every seed, or the difference is inside the noise: the spread over seeds (with ≥ 2 seeds on both
  sides) or, with one seed, a stated measurement margin (e.g. :func:`binomial_margin` for an
  accuracy on ``n`` test items). One seed and no margin is inconclusive too: nothing says how large
  a difference must be to count;
* ``not tested`` — a cell the rule needs was not run (missing results, a profile without it).

Everything a rule compares is a :class:`Measure`: one model in one cell, its value per seed (NaN for
a diverged run), the level at which it counts as "did not learn", the direction in which it is better.
:func:`compare` decides "a is better than b" or "a is on par with b" for two measures,
:func:`reaches` "a reaches a level", :func:`combine` merges the outcomes of several cells, and
:class:`Verdict` carries the claim (an exact quote of the paper with its place, :data:`CLAIMS`), the
outcome, the cells used and the numbers, for printing and for the book's claims table.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["OUTCOMES", "Claim", "CLAIMS", "Measure", "Outcome", "Verdict", "binomial_margin", "compare", "screen",
           "reaches", "combine", "summarize", "make_verdict", "not_tested", "verdict_rows", "verdict_markdown",
           "verdict_details", "save_verdicts", "load_verdicts"]

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED = "supported", "contradicted", "inconclusive", "not tested"
OUTCOMES = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED)


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
    """Twice the binomial standard error of an accuracy ``p`` measured on ``n`` independent items:
    the margin below which two single-seed accuracies are not told apart."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (the number of test items), got {n!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return 2.0 * math.sqrt(max(p * (1.0 - p), 1.0 / (4.0 * n)) / n)


@dataclass(frozen=True)
class Measure:
    """One model in one cell: ``values`` per seed (NaN marks a diverged run); ``floor`` is the level a
    model that did not learn sits at (chance, the 1/KV plateau, a unigram perplexity); ``margin`` the
    measurement margin used when there is one seed (e.g. :func:`binomial_margin`)."""

    name: str
    values: tuple[float, ...]
    floor: float = -math.inf
    higher_is_better: bool = True
    margin: float | None = None

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
        if math.isnan(float(self.floor)):
            raise ValueError(f"floor of {self.name!r} must be a number, got NaN")

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

    @property
    def noise(self) -> float:
        """The spread over seeds with ≥ 2 seeds, else the measurement margin (NaN when neither)."""
        if self.seeds >= 2:
            return self.std
        return math.nan if self.margin is None else float(self.margin)

    def learned(self) -> bool:
        """Whether the mean is beyond the floor by more than the noise (a NaN noise counts as 0)."""
        noise = 0.0 if math.isnan(self.noise) else self.noise
        gain = self.mean - self.floor if self.higher_is_better else self.floor - self.mean
        return bool(self.seeds) and gain > noise

    def describe(self) -> str:
        if not self.values:
            return f"{self.name}: not run"
        if not self.seeds:
            return f"{self.name}: diverged on all {len(self.values)} seed(s)"
        text = f"{self.name} {self.mean:.3f}"
        if self.seeds >= 2:
            text += f" ± {self.std:.3f} ({self.seeds} seeds)"
        else:
            text += " (1 seed" + (f", margin {self.margin:.3f}" if self.margin is not None else "") + ")"
        diverged = len(self.values) - self.seeds
        return text + (f", {diverged} diverged" if diverged else "")


@dataclass(frozen=True)
class Outcome:
    """The result of one comparison: the outcome, the difference in the claim's direction, the noise
    it was held against, and a one-line reason."""

    outcome: str
    difference: float
    tolerance: float
    reason: str


def screen(measures: Sequence[Measure], require_learned: bool = True,
           stuck: str = "did not leave chance/plateau") -> Outcome | None:
    """The outcome that settles a comparison before any difference is looked at: not tested when a
    measure was not run; inconclusive when one diverged on every seed or (with ``require_learned``)
    did not learn, the reason starting with ``stuck``; ``None`` when the comparison can go on."""
    missing = [m.name for m in measures if not m.values]
    if missing:
        return Outcome(NOT_TESTED, math.nan, math.nan, f"not run: {', '.join(missing)}")
    diverged = [m.name for m in measures if not m.seeds]
    if diverged:
        return Outcome(INCONCLUSIVE, math.nan, math.nan, f"diverged on every seed: {', '.join(diverged)}")
    if require_learned:
        flat = [m.name for m in measures if not m.learned()]
        if flat:
            return Outcome(INCONCLUSIVE, math.nan, math.nan, f"{stuck}: {', '.join(flat)}")
    return None


def _tolerance(a: Measure, b: Measure) -> float:
    """Seed spread (sum of the two standard deviations) when both have ≥ 2 seeds, else the larger
    measurement margin; NaN when neither exists."""
    if a.seeds >= 2 and b.seeds >= 2:
        return a.std + b.std
    margins = [m.noise for m in (a, b) if not math.isnan(m.noise)]
    return max(margins) if margins else math.nan


def compare(a: Measure, b: Measure, relation: str = "better", *, require_learned: bool = True) -> Outcome:
    """Decide the claim "``a`` is better than ``b``" (``relation="better"``) or "``a`` is on par with
    ``b``" (``relation="on_par"``) from their per-seed values.

    Both measures must agree on ``higher_is_better``. Not tested when either was not run;
    inconclusive when either diverged on every seed, did not learn (unless ``require_learned`` is
    false), or when no noise level exists (one seed and no margin); else the difference is held
    against the noise (:func:`_tolerance`): for "better", beyond it in the claim's direction is
    supported, beyond it the other way contradicted, inside it inconclusive; for "on par", inside it
    is supported and beyond it contradicted.
    """
    if not isinstance(a, Measure) or not isinstance(b, Measure):
        raise TypeError("a and b must be Measure objects")
    if relation not in ("better", "on_par"):
        raise ValueError(f"relation must be 'better' or 'on_par', got {relation!r}")
    if a.higher_is_better != b.higher_is_better:
        raise ValueError(f"a ({a.name}) and b ({b.name}) must agree on higher_is_better")
    early = screen([a, b], require_learned)
    if early is not None:
        return early
    sign = 1.0 if a.higher_is_better else -1.0
    diff = sign * (a.mean - b.mean)
    tol = _tolerance(a, b)
    if math.isnan(tol):
        return Outcome(INCONCLUSIVE, diff, tol, "one seed and no measurement margin: no noise level to judge by")
    if relation == "better":
        if diff > tol:
            return Outcome(SUPPORTED, diff, tol, f"{a.name} better by {diff:.3f} > noise {tol:.3f}")
        if diff < -tol:
            return Outcome(CONTRADICTED, diff, tol, f"{b.name} better by {-diff:.3f} > noise {tol:.3f}")
        return Outcome(INCONCLUSIVE, diff, tol, f"difference {diff:+.3f} inside the noise {tol:.3f}")
    if abs(diff) <= tol:
        return Outcome(SUPPORTED, diff, tol, f"difference {diff:+.3f} inside the noise {tol:.3f}")
    return Outcome(CONTRADICTED, diff, tol, f"difference {diff:+.3f} beyond the noise {tol:.3f}")


def reaches(a: Measure, level: float) -> Outcome:
    """Decide "``a`` reaches ``level``" (e.g. perfect accuracy): supported when the mean is at or
    beyond ``level`` less the noise, contradicted when short of it by more than the noise.
    A single seed without margin is judged at noise 0 (the level itself is the tolerance stated)."""
    if not isinstance(a, Measure):
        raise TypeError("a must be a Measure")
    early = screen([a], require_learned=False)
    if early is not None:
        return early
    tol = 0.0 if math.isnan(a.noise) else a.noise
    short = (level - a.mean) if a.higher_is_better else (a.mean - level)
    if short <= tol:
        return Outcome(SUPPORTED, -short, tol, f"{a.name} {a.mean:.3f} reaches {level:g} (noise {tol:.3f})")
    return Outcome(CONTRADICTED, -short, tol, f"{a.name} {a.mean:.3f} short of {level:g} by {short:.3f} "
                                              f"> noise {tol:.3f}")


def combine(outcomes: Iterable[str | Outcome]) -> str:
    """One outcome for a claim tested in several cells: not tested when no cell was tested; supported
    when some cell supports it and none contradicts it; contradicted when some cell contradicts it and
    none supports it; inconclusive otherwise (all inconclusive, or cells that disagree)."""
    names = [o.outcome if isinstance(o, Outcome) else o for o in outcomes]
    bad = [o for o in names if o not in OUTCOMES]
    if bad:
        raise ValueError(f"outcomes must be among {OUTCOMES}, got {bad}")
    tested = [o for o in names if o != NOT_TESTED]
    if not tested:
        return NOT_TESTED
    if SUPPORTED in tested and CONTRADICTED not in tested:
        return SUPPORTED
    if CONTRADICTED in tested and SUPPORTED not in tested:
        return CONTRADICTED
    return INCONCLUSIVE


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
    """A claim, its outcome, the cells the rule used, the numbers, and where they were computed."""

    claim: Claim
    outcome: str
    cells: str
    numbers: str
    profile: str = ""
    device: str = ""
    seeds: str = ""
    note: str = ""

    def __post_init__(self):
        if not isinstance(self.claim, Claim):
            raise TypeError(f"claim must be a Claim, got {type(self.claim).__name__}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")

    def __str__(self) -> str:
        c = self.claim
        lines = [f"{c.id} ({c.source}): \"{c.quote}\"", f"  verdict: {self.outcome.upper()}",
                 f"  cells: {self.cells}", f"  numbers: {self.numbers}"]
        if self.note:
            lines.append(f"  note: {self.note}")
        label = ", ".join(x for x in (f"profile {self.profile}" if self.profile else "",
                                      f"seeds {self.seeds}" if self.seeds else "",
                                      f"device {self.device}" if self.device else "") if x)
        if label:
            lines.append(f"  ({label})")
        return "\n".join(lines)

    def as_row(self) -> dict:
        return {"claim": self.claim.id, "experiment": self.claim.experiment, "source": self.claim.source,
                "quote": self.claim.quote, "verdict": self.outcome, "cells": self.cells, "numbers": self.numbers,
                "note": self.note, "profile": self.profile, "seeds": self.seeds, "device": self.device}


def make_verdict(claim_id: str, outcomes: Sequence[str | Outcome], cells: str, numbers: str, *, profile: str = "",
                 device: str = "", seeds: str = "", note: str = "") -> Verdict:
    """The :class:`Verdict` of :data:`CLAIMS` ``[claim_id]`` from the outcomes of its cells (see
    :func:`combine`). The reasons of the cells' outcomes are appended to ``numbers``."""
    if claim_id not in CLAIMS:
        raise ValueError(f"claim_id must be one of {sorted(CLAIMS)}, got {claim_id!r}")
    reasons = [o.reason for o in outcomes if isinstance(o, Outcome)]
    text = numbers + (" — " + "; ".join(reasons) if reasons else "")
    return Verdict(CLAIMS[claim_id], combine(outcomes), cells, text, profile=profile, device=device, seeds=seeds,
                   note=note)


def not_tested(claim_id: str, why: str, *, profile: str = "", device: str = "") -> Verdict:
    """A ``not tested`` verdict with the reason (no cell of the claim exists in this profile)."""
    return make_verdict(claim_id, [], "none", why, profile=profile, device=device)


def verdict_rows(verdicts: Iterable[Verdict]):
    """The verdicts as a pandas DataFrame, one row each (:meth:`Verdict.as_row`)."""
    import pandas as pd

    return pd.DataFrame([v.as_row() for v in verdicts],
                        columns=["claim", "experiment", "source", "quote", "verdict", "cells", "numbers", "note",
                                 "profile", "seeds", "device"])


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
        lines = [f"* **{_md_text(c.id)}** ({_md_text(c.source)}): **{v.outcome}**"]
        lines.append(f"  * cells: {_md_text(v.cells)}")
        parts = [p.strip() for chunk in v.numbers.split(" — ") for p in chunk.split("; ") if p.strip()]
        if len(parts) <= 1:
            lines.append(f"  * numbers: {_md_text(v.numbers)}")
        else:
            lines.append("  * numbers:")
            lines += [f"    * {_md_text(p)}" for p in parts]
        if v.note:
            lines.append(f"  * note: {_md_text(v.note)}")
        run = ", ".join(x for x in (f"profile {v.profile}" if v.profile else "",
                                    f"seeds {v.seeds}" if v.seeds else "",
                                    f"device {v.device}" if v.device else "") if x)
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
        out.append(Verdict(claim, **d))
    return out
