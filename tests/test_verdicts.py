"""The verdict engine: Welch t with test-set variance (checked against scipy), TOST, non-superiority,
reaching a level, the measured-plateau rule, one seed, quantifiers with Bonferroni, positive controls."""
import math

import pytest
from scipy import stats

from dsflib.verdicts import (ALPHA, CATEGORIES, CLAIMS, OUTCOMES, Measure, Outcome, binomial_margin, combine, compare,
                             control, decide, load_verdicts, make_verdict, near, not_tested, reaches, save_verdicts,
                             verdict_details, verdict_markdown, verdict_rows)


def m(name, values, floor=0.25, **kw):
    return Measure(name, values, floor=floor, **kw)


def test_better_is_welchs_t_test_from_scipy():
    a, b = [0.80, 0.82, 0.85], [0.50, 0.52, 0.60]
    out = compare(m("a", a), m("b", b))
    ref = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert out.outcome == "supported" and out.category == "decided"
    assert out.p_for == pytest.approx(ref.pvalue, rel=1e-9)
    half = stats.t.ppf(1 - ALPHA / 2, ref.df) * math.sqrt(stats.tvar(a) / 3 + stats.tvar(b) / 3)
    assert out.interval == pytest.approx((out.difference - half, out.difference + half), rel=1e-9)
    assert compare(m("b", b), m("a", a)).outcome == "contradicted"
    wide = compare(m("c", [0.68, 0.70, 0.72]), m("wide", [0.40, 0.60, 0.80]))
    assert wide.outcome == "inconclusive" and wide.category == "inside the noise" and "contains 0" in wide.reason


def test_the_test_set_variance_widens_the_interval_and_more_seeds_do_not_remove_it():
    a, b = [0.70, 0.71, 0.72], [0.66, 0.67, 0.68]
    seeds_only = compare(m("a", a), m("b", b))
    with_test = compare(m("a", a, test_items=200), m("b", b, test_items=200))
    assert seeds_only.outcome == "supported" and with_test.outcome == "inconclusive"
    assert with_test.tolerance > seeds_only.tolerance
    # many seeds with no spread: the binomial variance of 200 items stays
    many = compare(m("a", [0.70] * 50, test_items=200), m("b", [0.68] * 50, test_items=200))
    assert many.outcome == "inconclusive" and many.tolerance > 0.02


def test_one_seed_needs_a_pooled_spread():
    out = compare(m("a", [0.9], test_items=2000), m("b", [0.6], test_items=2000))
    assert out.outcome == "inconclusive" and out.category == "too few seeds"
    pooled = dict(seed_sd=0.02, seed_sd_df=12, seed_sd_source="pooled over 6 cells")
    out = compare(m("a", [0.9], test_items=2000, **pooled), m("b", [0.6], test_items=2000, **pooled))
    assert out.outcome == "supported" and "df" in out.test
    # the pooled spread is used only with one seed: two seeds use their own
    assert m("a", [0.5, 0.7], seed_sd=0.001, seed_sd_df=5).seed_variance()[2] == "spread over 2 seeds"


def test_learned_means_a_majority_of_seeds_above_the_measured_plateau():
    plateau = 0.387
    stuck = m("s6 n=2", [0.340, 0.335, 0.342], floor=plateau, test_items=2000)
    assert not stuck.learned() and stuck.learned_seeds() == 0
    one_of_three = m("normalized", [0.987, 0.337, 0.330], floor=plateau, test_items=2000)
    assert not one_of_three.learned()  # one lucky seed is not learning
    two_of_three = m("ssd", [0.80, 0.41, 0.62], floor=plateau, test_items=2000)
    assert two_of_three.learned() and two_of_three.learned_seeds() == 2
    # just above the plateau but inside the test set's noise: not learned
    assert not m("x", [0.40], floor=plateau, test_items=500).learned()
    # a diverged seed counts against
    assert not m("y", [0.9, math.nan, math.nan], floor=plateau).learned()
    out = compare(stuck, m("ok", [0.9, 0.91, 0.92], floor=plateau))
    assert out.outcome == "inconclusive" and out.category == "did not learn" and "0 of 3 seeds" in out.reason


def test_on_par_is_tost_with_a_margin_stated_in_advance():
    a, b = m("a", [0.70, 0.71, 0.72]), m("b", [0.70, 0.705, 0.715])
    assert compare(a, b, "on_par", margin=0.05).outcome == "supported"
    assert compare(m("c", [0.95, 0.96, 0.955]), b, "on_par", margin=0.05).outcome == "contradicted"
    # inside the noise is no proof of equality: a wide spread is inconclusive, not supported
    noisy = compare(m("d", [0.5, 0.9, 0.7]), m("e", [0.4, 0.8, 0.6]), "on_par", margin=0.05)
    assert noisy.outcome == "inconclusive"
    ppl = dict(floor=4096.0, higher_is_better=False)
    with pytest.raises(ValueError, match="margin"):
        compare(Measure("p", [100.0, 101.0], **ppl), Measure("q", [100.0, 101.0], **ppl), "on_par")


def test_not_better_is_non_superiority():
    a, b = m("s6", [0.600, 0.601, 0.602]), m("att", [0.595, 0.596, 0.597])
    assert compare(a, b, "not_better", margin=0.02).outcome == "supported"
    assert compare(m("s6", [0.70, 0.71, 0.72]), b, "not_better", margin=0.02).outcome == "contradicted"
    with pytest.raises(ValueError, match="margin"):
        compare(a, b, "not_better")


def test_lower_is_better():
    ppl = dict(floor=4096.0, higher_is_better=False)
    low, high = Measure("low", [100.0, 102.0, 101.0], **ppl), Measure("high", [150.0, 151.0, 149.0], **ppl)
    assert compare(low, high).outcome == "supported"
    assert compare(high, low).outcome == "contradicted"
    with pytest.raises(ValueError, match="higher_is_better"):
        compare(low, m("acc", [0.5, 0.6]))


def test_reaches_needs_three_seeds_and_its_lower_bound_at_the_level():
    assert reaches(m("s", [1.0, 0.9995, 1.0], test_items=2000), 0.99).outcome == "supported"
    assert reaches(m("s", [1.0, 1.0], test_items=2000), 0.99).category == "too few seeds"
    assert reaches(m("s", [0.80, 0.81, 0.82], test_items=2000), 0.99).outcome == "contradicted"
    # a noisier cell with the same mean cannot reach more easily: its interval widens
    tight = reaches(m("s", [0.985, 0.986, 0.987], test_items=20000), 0.99)
    loose = reaches(m("s", [0.96, 0.999, 0.999], test_items=20000), 0.99)
    assert tight.outcome == "contradicted" and loose.outcome == "inconclusive"
    # a pooled spread never stands in for the cell's own seeds: two seeds stay too few
    pooled = reaches(m("s", [1.0, 1.0], test_items=2000, seed_sd=0.001, seed_sd_df=20), 0.99)
    assert pooled.category == "too few seeds"
    assert reaches(m("missing", []), 0.99).outcome == "not tested"


def test_nan_runs_are_diverged_and_missing_cells_not_tested():
    a = m("a", [0.9, float("nan"), 0.92])
    assert a.seeds == 2 and a.mean == pytest.approx(0.91) and "1 diverged" in a.describe()
    out = compare(a, m("b", [float("nan")]))
    assert out.outcome == "inconclusive" and "diverged" in out.reason and out.category == "did not learn"
    assert compare(a, m("missing", [])).outcome == "not tested"


def _p(outcome, p_for=math.nan, p_against=math.nan, category=""):
    return Outcome(outcome, 0.0, 0.0, "r", category, (0.0, 0.0), p_for, p_against)


def test_quantifiers_combine_parts_with_bonferroni():
    assert combine([]) == "not tested"
    assert decide(["not tested"]).category == "not run"
    # all: every tested part must support (intersection-union)
    assert combine(["supported", "supported", "not tested"], "all") == "supported"
    assert combine(["supported", "inconclusive"], "all") == "inconclusive"
    # one contradicting part at the Bonferroni level contradicts an "all" claim
    strong = _p("contradicted", 0.99, 0.0001)
    weak = _p("contradicted", 0.99, 0.008)  # decided alone (< ALPHA/2) but not at ALPHA/(2*3)
    assert combine([_p("supported", 0.001, 0.99), strong, _p("inconclusive", 0.3, 0.7)], "all") == "contradicted"
    assert combine([_p("supported", 0.001, 0.99), weak, _p("inconclusive", 0.3, 0.7)], "all") == "inconclusive"
    # some: one part at the Bonferroni level supports; one supporting part among undecided ones at its
    # own level only does not
    assert combine([_p("supported", 0.0001, 0.99), _p("inconclusive", 0.3, 0.7)], "some") == "supported"
    assert combine([_p("supported", 0.008, 0.99), _p("inconclusive", 0.3, 0.7)], "some") == "inconclusive"
    assert combine(["contradicted", "contradicted"], "some") == "contradicted"
    d = decide([_p("supported", 0.001), _p("inconclusive", category="did not learn"), "not tested"], "all")
    assert (d.outcome, d.category, d.counts) == ("inconclusive", "did not learn", "1/0/1 of 2 (+1 not run)")
    with pytest.raises(ValueError, match="outcomes"):
        combine(["maybe"])
    with pytest.raises(ValueError, match="quantifier"):
        combine([], "most")


def test_a_failed_control_makes_the_verdict_inconclusive():
    part = compare(m("a", [0.9, 0.91, 0.92]), m("b", [0.5, 0.51, 0.52]))
    ok = control("softmax solves the task", True)
    failed = control("softmax better than linear", compare(m("b", [0.5, 0.51, 0.52]), m("a", [0.9, 0.91, 0.92])))
    assert failed[1] is False and failed[2].startswith("contradicted")
    v = make_verdict("C9", [part], "cells", "numbers", controls=[ok, failed])
    assert v.outcome == "inconclusive" and v.category == "controls failed"
    assert v.numbers.startswith("controls failed: softmax better than linear")
    assert "softmax solves the task: passed" in v.controls and "FAILED" in v.controls
    assert make_verdict("C9", [part], "cells", "numbers", controls=[ok]).outcome == "supported"
    with pytest.raises(TypeError, match="controls"):
        make_verdict("C9", [part], "cells", "numbers", controls=[("x", "yes", "")])


def test_near_decides_a_derived_quantity_against_a_target():
    assert near("f", 0.26, [(1e-4, 10), (1e-4, 10)], 0.25, 0.1).outcome == "supported"
    assert near("f", 0.60, [(1e-4, 10)], 0.25, 0.1).outcome == "contradicted"
    assert near("f", 0.30, [(0.01, 2)], 0.25, 0.1).outcome == "inconclusive"
    assert near("f", math.nan, [(0.01, 2)], 0.25, 0.1).outcome == "inconclusive"


def test_verdict_text_rows_markdown_and_roundtrip(tmp_path):
    out = compare(m("normalized", [0.90, 0.91, 0.92]), m("linear", [0.50, 0.51, 0.52]))
    v = make_verdict("C3", [out], "L=16, KV=4, d=32, n=8", "normalized 0.910, linear 0.510", profile="ci",
                     device="cpu", seeds="0, 1, 2", commit="abc", date="2026-12-06", scale="CPU proxy")
    text = str(v)
    assert CLAIMS["C3"].quote in text and "App. L" in text and "SUPPORTED (decided)" in text
    assert "profile ci" in text and "commit abc" in text and "1/0/0 of 1 (all)" in text
    assert "above 0 (Welch t" in v.numbers
    df = verdict_rows([v, not_tested("C9", "no stored results")])
    assert list(df["verdict"]) == ["supported", "not tested"] and list(df["category"]) == ["decided", "not run"]
    assert df["scale"].iloc[0] == "CPU proxy" and df["counts"].iloc[0] == "1/0/0 of 1"
    md = verdict_markdown([v])
    assert md.startswith("| claim |") and "**supported**" in md
    path = save_verdicts([v], tmp_path / "v.json")
    assert load_verdicts(path) == [v]
    assert load_verdicts(tmp_path / "absent.json") == []


def test_verdict_details_is_a_bullet_list_with_one_item_per_comparison():
    a = compare(m("normalized", [0.90, 0.91, 0.92]), m("linear", [0.50, 0.51, 0.52]))
    b = compare(m("normalized", [0.60, 0.62, 0.64]), m("linear", [0.59, 0.61, 0.63]))
    v = make_verdict("C3", [a, b], "d [32, 64]", "2 comparison(s)", profile="ci", device="cpu", seeds="0",
                     note="a_b *c* $x$")
    md = verdict_details([v, not_tested("C9", "no stored results")])
    lines = md.splitlines()
    assert lines[0] == "* **C3** (App. L): **inconclusive** (inside the noise)"
    assert "  * cells: d \\[32, 64\\]" in lines
    assert sum(line.startswith("    * normalized − linear") for line in lines) == 2  # one sub-item each
    assert "  * note: a\\_b \\*c\\* \\$x\\$" in lines  # Markdown and math characters escaped
    assert "  * runs: profile ci, seeds 0, device cpu" in lines
    assert "* **C9** (§4.2, Table 1): **not tested** (not run)" in lines
    with pytest.raises(TypeError, match="Verdict"):
        verdict_details(["C1"])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="claim_id"):
        make_verdict("C99", [], "", "")
    with pytest.raises(TypeError, match="values"):
        Measure("a", ["x"])
    with pytest.raises(ValueError, match="margin"):
        Measure("a", [0.5], margin=-1)
    with pytest.raises(ValueError, match="either margin or test_items"):
        Measure("a", [0.5], margin=0.1, test_items=10)
    with pytest.raises(ValueError, match="test_items"):
        Measure("a", [0.5], test_items=0)
    with pytest.raises(ValueError, match="seed_sd_df"):
        Measure("a", [0.5], seed_sd=0.1)
    with pytest.raises(ValueError, match="relation"):
        compare(m("a", [1.0]), m("b", [1.0]), "worse")
    with pytest.raises(ValueError, match="margin is for"):
        compare(m("a", [1.0]), m("b", [1.0]), margin=0.1)
    with pytest.raises(TypeError, match="level"):
        reaches(m("a", [1.0]), "0.99")
    with pytest.raises(ValueError, match="n must be"):
        binomial_margin(0)
    with pytest.raises(ValueError, match="columns"):
        verdict_markdown([], columns=["nope"])
    with pytest.raises(ValueError, match="category"):
        Outcome("supported", 0.0, 0.0, "r", "maybe")


def test_every_claim_quotes_the_paper_with_a_place():
    assert {c.experiment for c in CLAIMS.values()} == {"mqar", "lra", "wikitext", "mqar+lra"}
    for c in CLAIMS.values():
        assert c.quote and c.source and any(s in c.source for s in ("§", "App.", "Fig.", "Table"))
    assert set(OUTCOMES) == {"supported", "contradicted", "inconclusive", "not tested"}
    assert len(CATEGORIES) == 6


def test_contrast_decides_a_combination_of_means():
    from dsflib.verdicts import contrast

    soft0, lin0 = m("soft n=2", [1.0, 0.999, 1.0], test_items=2000), m("lin n=2", [0.50, 0.52, 0.51], test_items=2000)
    soft1, lin1 = m("soft n=32", [1.0, 1.0, 0.999], test_items=2000), m("lin n=32", [0.90, 0.91, 0.92], test_items=2000)
    shrink = contrast("gap shrinks", [(1, soft0), (-1, lin0), (-1, soft1), (1, lin1)])
    assert shrink.outcome == "supported" and shrink.difference == pytest.approx(0.4, abs=0.01)
    grows = contrast("gap shrinks", [(1, soft1), (-1, lin1), (-1, soft0), (1, lin0)])
    assert grows.outcome == "contradicted"
    assert contrast("x", [(1, m("one", [0.5]))]).category == "too few seeds"
    assert contrast("x", [(1, m("missing", []))]).outcome == "not tested"


def test_a_control_that_cannot_be_evaluated_says_why():
    few = compare(m("a", [0.9]), m("b", [0.5]))
    assert control("softmax better", few)[1] is None
    part = compare(m("a", [0.9, 0.91, 0.92]), m("b", [0.5, 0.51, 0.52]))
    v = make_verdict("C9", [part], "cells", "numbers", controls=[control("softmax better", few)])
    assert (v.outcome, v.category) == ("inconclusive", "too few seeds")
    assert v.numbers.startswith("controls not evaluable: softmax better (too few seeds")
    v = make_verdict("C9", [part], "cells", "numbers", controls=[control("softmax ran", None, "not run")])
    assert (v.outcome, v.category) == ("inconclusive", "not run") and "not evaluable" in v.controls
    # a failed control wins over one that could not be evaluated
    v = make_verdict("C9", [part], "cells", "numbers",
                     controls=[control("softmax ran", None, "not run"), control("learns", False)])
    assert v.category == "controls failed"


def test_seeds_at_a_level_count_runs_not_measurably_short_of_it():
    s = m("softmax", [0.997, 0.995, 0.9, float("nan")], test_items=2000)
    assert s.seeds_at(0.99) == 2  # 0.9 is short beyond the test noise; a diverged run never counts
    assert m("s", [0.988], test_items=2000).seeds_at(0.99) == 1  # inside the noise of 2,000 items
    assert m("s", [0.988], test_items=200_000).seeds_at(0.99) == 0
