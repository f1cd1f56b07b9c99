"""The paper's MQAR claims (C1–C8, C13's MQAR part) as rules on per-cell measures.

A cell is ``(model, L, KV, d, n)``; its :class:`~dsflib.verdicts.Measure` holds the best-over-lr test
accuracy per seed, floored at the task's measured no-binding accuracy
(:func:`dsflib.data.mqar.no_binding_accuracy`). Every claim first checks the positive control
"softmax attention solves the task" (every seed reaches :data:`PERFECT` at its largest n there), and the
models it compares must learn where the claim looks; then its parts are combined by the claim's
quantifier.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from ..verdicts import (NOT_TESTED, Measure, Outcome, Verdict, compare, contrast, control, make_verdict, reaches,
                        summarize)

__all__ = ["PERFECT", "ON_PAR_MARGIN_C5", "PAPER_GRID", "Cells", "verdicts", "control_table", "every_seed_learns"]

PERFECT = 0.99  # "perfect accuracy" (C1, C7) read as a mean of at least 0.99
ON_PAR_MARGIN_C5 = 0.05
"""C5's equivalence margin, fixed before any run: five accuracy points, the resolution at which App. L
reads a heat map of accuracies (Fig. 7 shows no finer distinction the text relies on)."""
PAPER_GRID = dict(d_min=64, n_min=32, exception=(512, 64, 64, 32))
"""C7's domain: App. J.1's grid starts at d = 64 and n = 32; its exception is (L, KV, d, n) =
(512, 64, 64, 32), and every cell at or below it on that task (smaller d or n) is exempt too."""


@dataclass
class Cells:
    """The measures of one profile: ``get`` a cell (an empty measure when not run), the cells of a model."""

    measures: Mapping[tuple, Measure]
    figures: Mapping
    labels: dict = field(default_factory=dict)

    def get(self, model: str, task: tuple, d: int, n: int) -> Measure:
        return self.measures.get((model, task[0], task[1], d, n)) or Measure(
            f"{model} (L={task[0]}, d={d}, n={n})", ())

    def cells_of(self, model: str, task: tuple | None = None) -> list[tuple]:
        return sorted((L, kv, d, n) for (m, L, kv, d, n) in self.measures
                      if m == model and (task is None or (L, kv) == tuple(task)))

    def shared(self, a: str, b: str, task: tuple | None = None) -> list[tuple]:
        return sorted(set(self.cells_of(a, task)) & set(self.cells_of(b, task)))

    def largest_n(self, model: str, task: tuple, d: int | None = None) -> tuple | None:
        here = [c for c in self.cells_of(model, task) if d is None or c[2] == d]
        return max(here, key=lambda c: (c[3], c[2])) if here else None

    def verdict(self, claim: str, parts, cells: str, *, quantifier: str = "all", controls=(), note: str = "") -> Verdict:
        return make_verdict(claim, [p for _, p in parts], cells, summarize(parts, limit=8), quantifier=quantifier,
                            controls=controls, note=note, **self.labels)


def _not_run(what: str) -> Outcome:
    return Outcome(NOT_TESTED, math.nan, math.nan, what)


def every_seed_reaches(m: Measure, label: str) -> tuple:
    """Control: every seed of ``m`` reaches :data:`PERFECT` within its test set's noise (a run solved
    the task); diverged seeds fail it."""
    if not m.values:
        return control(label, None, "not run")
    k = m.seeds_at(PERFECT)
    return control(label, k == len(m.values), f"{k} of {len(m.values)} seeds at {PERFECT} within the test "
                                              f"set's noise: {', '.join(f'{v:.3f}' for v in m.values)}")


def solvable(cells: Cells, task: tuple, d: int | None = None) -> tuple:
    """Control: softmax attention solves ``task`` — every seed reaches :data:`PERFECT` at softmax's
    largest n there (at width ``d``)."""
    top = cells.largest_n("softmax", task, d)
    where = f"L={task[0]}" + (f", d={d}" if d else "")
    if top is None:
        return control(f"softmax solves {where}", None, "not run: softmax not run there")
    return every_seed_reaches(cells.get("softmax", task, top[2], top[3]),
                              f"softmax solves {where} (n={top[3]}, d={top[2]})")


def learns(cells: Cells, model: str, task: tuple, d: int | None = None) -> tuple:
    """Control: ``model`` leaves the no-binding plateau at its largest n on ``task`` (at width ``d``)."""
    top = cells.largest_n(model, task, d)
    where = f"L={task[0]}" + (f", d={d}" if d else "")
    if top is None:
        return control(f"{model} learns at its largest n ({where})", None, "not run there")
    m = cells.get(model, task, top[2], top[3])
    return control(f"{model} learns at n={top[3]} ({where})", every_seed_learns(m),
                   f"{m.learned_seeds()} of {len(m.values)} seeds above the plateau {m.floor:.3f}")


def every_seed_learns(m: Measure) -> bool:
    """Whether every seed of ``m`` left the no-binding plateau (its lower bound above the floor); a
    diverged seed did not."""
    return bool(m.values) and m.learned_seeds() == len(m.values)


def control_table(measures: Mapping[tuple, Measure]) -> list[dict]:
    """The positive controls per (model, task, d): softmax solves the task at every n it ran (every seed
    at :data:`PERFECT` within its test set's noise); every other model learns at its largest n (every
    seed above the plateau); its smallest n binds (measurably below its largest n, ``compare``'s
    "better"). One row each, with the seeds behind it and ``passes`` (True, False, or None where a control
    could not be evaluated)."""
    cells = Cells(measures, {})
    rows = []
    for model in sorted({k[0] for k in measures}):
        for L, kv, d in sorted({(c[0], c[1], c[2]) for c in cells.cells_of(model)}):
            ns = sorted(c[3] for c in cells.cells_of(model, (L, kv)) if c[2] == d)
            top = cells.get(model, (L, kv), d, ns[-1])
            row = dict(model=model, L=L, KV=kv, d=d, n=", ".join(map(str, ns)))
            if model == "softmax":
                hits = [(n, cells.get(model, (L, kv), d, n)) for n in ns]
                row["control"] = f"solves ({PERFECT}) at every n"
                row["seeds"] = "; ".join(f"n={n}: {m.seeds_at(PERFECT)}/{len(m.values)}" for n, m in hits)
                row["passes"] = all(m.values and m.seeds_at(PERFECT) == len(m.values) for _, m in hits)
                rows.append(row)
                continue
            rows.append(row | dict(control=f"learns at n={ns[-1]} (every seed above {top.floor:.3f})",
                                   seeds=f"{top.learned_seeds()}/{len(top.values)}",
                                   passes=every_seed_learns(top)))
            if len(ns) >= 2:
                low = cells.get(model, (L, kv), d, ns[0])
                binds = compare(top, low, require_learned=False)
                _, passed, _ = control("binds", binds)
                rows.append(row | dict(control=f"n={ns[0]} binds (below n={ns[-1]})",
                                       seeds=f"n={ns[-1]} {top.mean:.3f} vs n={ns[0]} {low.mean:.3f}: {binds.outcome}",
                                       passes=passed))
    return rows


def c1(cells: Cells) -> Verdict:
    """C1 (§4.1, Fig. 1): on Fig. 1's cells, linear attention's gap to softmax (softmax's mean accuracy
    less linear's) shrinks from the smallest to the largest n (:func:`~dsflib.verdicts.contrast` of the
    four means); controls: every seed of softmax reaches :data:`PERFECT` at every n ("which achieves
    perfect accuracy throughout"), linear attention learns at its largest n."""
    fig = cells.figures
    parts, controls = [], []
    for task in map(tuple, fig["fig1_tasks"]):
        for d in fig["fig1_d"]:
            ns = sorted({n for (_, _, dd, n) in cells.cells_of("linear", task) if dd == d})
            if len(ns) < 2:
                parts.append((f"L={task[0]}, d={d}", _not_run("linear attention at fewer than two n")))
                continue
            controls += [every_seed_reaches(cells.get("softmax", task, d, n),
                                            f"softmax reaches {PERFECT} at L={task[0]}, d={d}, n={n}") for n in ns]
            controls.append(learns(cells, "linear", task, d))
            lo, hi = ns[0], ns[-1]
            shrink = contrast(f"gap at n={lo} − gap at n={hi}", [
                (1.0, cells.get("softmax", task, d, lo)), (-1.0, cells.get("linear", task, d, lo)),
                (-1.0, cells.get("softmax", task, d, hi)), (1.0, cells.get("linear", task, d, hi))])
            parts.append((f"L={task[0]}, d={d}: softmax − linear smaller at n={hi} than at n={lo}", shrink))
    return cells.verdict("C1", parts, f"Fig. 1 cells: tasks {fig['fig1_tasks']}, d {fig['fig1_d']}; softmax − linear "
                         "mean accuracy, smallest vs largest n", controls=controls)


def _fig2(cells: Cells, claim: str) -> Verdict:
    fig = cells.figures
    task, n2 = tuple(fig["fig2_task"]), fig["fig2_n"]
    shared = [c for c in cells.shared("normalized", "linear", task) if c[3] == n2]
    parts = [(f"d={d}", compare(cells.get("normalized", task, d, n2), cells.get("linear", task, d, n2)))
             for _, _, d, _ in shared]
    controls = [solvable(cells, task)] + [learns(cells, m, task) for m in ("normalized", "linear")]
    return cells.verdict(claim, parts or [("Fig. 2", _not_run("no Fig. 2 cell"))],
                         f"Fig. 2 cells: L={task[0]}, KV={task[1]}, n={n2}, every d; normalized (exp) vs linear",
                         controls=controls)


def c2(cells: Cells) -> Verdict:
    """C2 (§4.2, Fig. 2): normalized attention (eq. 22) better than linear attention in every Fig. 2 cell."""
    return _fig2(cells, "C2")


def c3(cells: Cells) -> Verdict:
    """C3 (App. L, Fig. 2): the same cells and test as C2 (App. L restates it)."""
    return _fig2(cells, "C3")


def _pairwise(cells: Cells, a: str, b: str, relation: str = "better", margin=None) -> tuple[list, list]:
    """Parts ``a`` vs ``b`` in every shared cell, and the controls of each task they share."""
    parts, controls, tasks = [], [], sorted({(L, kv) for L, kv, _, _ in cells.shared(a, b)})
    kw = {"margin": margin} if relation == "on_par" else {}
    for L, kv, d, n in cells.shared(a, b):
        parts.append((f"L={L}, d={d}, n={n}", compare(cells.get(a, (L, kv), d, n), cells.get(b, (L, kv), d, n),
                                                      relation, **kw)))
    for task in tasks:
        controls += [solvable(cells, task), learns(cells, a, task), learns(cells, b, task)]
    return parts or [("cells", _not_run(f"no cell where {a} and {b} both ran"))], controls


def c4(cells: Cells) -> Verdict:
    """C4 (App. L): SSD better than S6 in every cell where both ran."""
    parts, controls = _pairwise(cells, "ssd", "s6")
    return cells.verdict("C4", parts, "every cell where SSD and S6 ran", controls=controls)


def c5(cells: Cells) -> Verdict:
    """C5 (App. L): normalized attention on par with S6 (TOST, :data:`ON_PAR_MARGIN_C5`) in every shared cell."""
    parts, controls = _pairwise(cells, "normalized", "s6", "on_par", ON_PAR_MARGIN_C5)
    return cells.verdict("C5", parts, f"every cell where normalized attention (exp) and S6 ran; on par = within "
                         f"±{ON_PAR_MARGIN_C5:g} (stated in advance)", controls=controls)


def c6(cells: Cells) -> Verdict:
    """C6 (App. L): on the largest task, at the largest d each model ran there, the largest n better than
    the smallest, for linear and normalized attention, S6 and SSD."""
    task = tuple(cells.figures["fig2_task"])
    parts, controls = [], [solvable(cells, task)]
    for model in ("linear", "normalized", "s6", "ssd"):
        here = cells.cells_of(model, task)
        if not here:
            parts.append((model, _not_run(f"{model} not run on L={task[0]}")))
            continue
        d = max(c[2] for c in here)
        ns = sorted({c[3] for c in here if c[2] == d})
        if len(ns) < 2:
            parts.append((model, _not_run(f"{model} ran at one n only")))
            continue
        controls.append(learns(cells, model, task, d))
        parts.append((f"{model} d={d}, n {ns[0]}→{ns[-1]}",
                      compare(cells.get(model, task, d, ns[-1]), cells.get(model, task, d, ns[0]),
                              require_learned=False)))
    return cells.verdict("C6", parts, f"L={task[0]}, KV={task[1]}, the largest d of each model, smallest vs largest n",
                         controls=controls, note="the paper adds that for small d the accuracy may decrease with n "
                                                 "or be erratic; only the largest d is used here")


def c7(cells: Cells) -> Verdict:
    """C7 (App. L): softmax reaches :data:`PERFECT` in every cell of the paper's grid (d ≥ 64, n ≥ 32)
    except (L=512, KV=64, d=64, n=32) and the cells at or below it on that task."""
    g = PAPER_GRID
    L0, kv0, d0, n0 = g["exception"]

    def exempt(L, kv, d, n):
        return (L, kv) == (L0, kv0) and d <= d0 and n <= n0

    inside = [c for c in cells.cells_of("softmax") if c[2] >= g["d_min"] and c[3] >= g["n_min"] and not exempt(*c)]
    parts = [(f"L={L}, d={d}, n={n}", reaches(cells.get("softmax", (L, kv), d, n), PERFECT)) for L, kv, d, n in inside]
    if not parts:
        parts = [("paper grid", _not_run(f"no softmax cell inside the paper's grid (d ≥ {g['d_min']}, "
                                         f"n ≥ {g['n_min']})"))]
    return cells.verdict("C7", parts, f"every softmax cell with d ≥ {g['d_min']}, n ≥ {g['n_min']}, except "
                         f"(L={L0}, KV={kv0}, d={d0}, n={n0}) and the cells below it; 'perfect' read as ≥ {PERFECT}")


def c8(cells: Cells) -> Verdict:
    """C8 (§4.3, Fig. 3): the eq.-23 qLSTM better than the qLSTM in every (task, d) cell where both ran."""
    parts, controls = [], []
    shared = cells.shared("qlstm_rev", "qlstm")
    for L, kv, d, n in shared:
        parts.append((f"L={L}, d={d}", compare(cells.get("qlstm_rev", (L, kv), d, n), cells.get("qlstm", (L, kv), d, n))))
    for task in sorted({(L, kv) for L, kv, _, _ in shared}):
        controls.append(solvable(cells, task))
    return cells.verdict("C8", parts or [("cells", _not_run("no cell where both qLSTMs ran"))],
                         "every (task, d) cell where both qLSTMs ran", controls=controls)


def c13(cells: Cells) -> Verdict:
    """C13, MQAR part (App. H, Table 2): exp normalization better than softplus and than sigmoid in every
    (d, n) cell of the normalization task."""
    task = tuple(cells.figures["norm_task"])
    others = ("normalized_softplus", "normalized_sigmoid")
    parts = [(f"d={d}, n={n} vs {o.split('_')[1]}", compare(cells.get("normalized", task, d, n),
                                                            cells.get(o, task, d, n)))
             for _, _, d, n in cells.shared("normalized", others[0], task) for o in others]
    controls = [solvable(cells, task)] + [learns(cells, m, task) for m in ("normalized", *others)]
    return cells.verdict("C13", parts or [("cells", _not_run("the normalizations did not run"))],
                         f"MQAR part: L={task[0]}, KV={task[1]}, every (d, n) cell where the normalizations ran",
                         controls=controls, note="MQAR part of the claim only; 'perform similarly' is not decided")


RULES = (c1, c2, c3, c4, c5, c6, c7, c8, c13)


def verdicts(measures: Mapping[tuple, Measure], figures: Mapping, labels: dict) -> list[Verdict]:
    """Every MQAR claim's verdict from the cells' measures, the profile's figure cells and run labels."""
    cells = Cells(measures, figures, labels)
    return [rule(cells) for rule in RULES]
