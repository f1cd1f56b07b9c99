"""The verdict mechanism: every outcome, the noise rules, the edge cases (NaN, one seed, missing cells)."""
import math

import pytest

from dsflib.verdicts import (CLAIMS, OUTCOMES, Measure, binomial_margin, combine, compare, load_verdicts,
                             make_verdict, not_tested, reaches, save_verdicts, verdict_details, verdict_markdown,
                             verdict_rows)


def m(name, values, floor=0.25, **kw):
    return Measure(name, values, floor=floor, **kw)


def test_better_supported_contradicted_inconclusive_by_seed_spread():
    a = m("a", [0.80, 0.82, 0.84])
    b = m("b", [0.50, 0.52, 0.54])
    assert compare(a, b).outcome == "supported"
    assert compare(b, a).outcome == "contradicted"
    wide = m("wide", [0.40, 0.60, 0.80])  # std 0.2: a difference of 0.1 is inside the spread
    out = compare(m("c", [0.68, 0.70, 0.72]), wide)
    assert out.outcome == "inconclusive" and "inside the noise" in out.reason
    assert out.tolerance == pytest.approx(0.02 + 0.2)


def test_one_seed_uses_the_margin_and_without_margin_is_inconclusive():
    margin = binomial_margin(2000)
    assert margin == pytest.approx(2 * math.sqrt(0.25 / 2000))
    assert compare(m("a", [0.9], margin=margin), m("b", [0.6], margin=margin)).outcome == "supported"
    assert compare(m("a", [0.61], margin=margin), m("b", [0.6], margin=margin)).outcome == "inconclusive"
    out = compare(m("a", [0.9]), m("b", [0.6]))
    assert out.outcome == "inconclusive" and "no noise level" in out.reason
    # one seed against several: the seed spread does not exist on both sides, so the margin decides
    assert compare(m("a", [0.9], margin=0.05), m("b", [0.6, 0.62])).outcome == "supported"


def test_a_model_at_its_floor_makes_the_comparison_inconclusive():
    learned = m("learned", [0.9, 0.92])
    plateau = m("plateau", [0.25, 0.26])
    out = compare(learned, plateau)
    assert out.outcome == "inconclusive" and "plateau" in out.reason and "plateau" in out.reason.split(":")[1]
    assert compare(learned, plateau, require_learned=False).outcome == "supported"
    # a single seed just above the floor but within its margin has not left it
    assert not m("x", [0.27], margin=0.05).learned()
    assert m("x", [0.40], margin=0.05).learned()


def test_nan_runs_are_diverged_and_missing_cells_not_tested():
    a = m("a", [0.9, float("nan"), 0.92])
    assert a.seeds == 2 and a.mean == pytest.approx(0.91)
    assert "1 diverged" in a.describe()
    all_nan = m("b", [float("nan")])
    out = compare(a, all_nan)
    assert out.outcome == "inconclusive" and "diverged" in out.reason
    assert compare(a, m("missing", [])).outcome == "not tested"
    assert reaches(m("missing", []), 0.99).outcome == "not tested"


def test_on_par_and_lower_is_better():
    a = m("a", [0.70, 0.74])
    b = m("b", [0.71, 0.73])
    assert compare(a, b, "on_par").outcome == "supported"
    assert compare(m("c", [0.95, 0.96]), b, "on_par").outcome == "contradicted"
    ppl = dict(floor=4096.0, higher_is_better=False)
    low, high = Measure("low", [100.0, 102.0], **ppl), Measure("high", [150.0, 151.0], **ppl)
    assert compare(low, high).outcome == "supported"
    assert compare(high, low).outcome == "contradicted"
    with pytest.raises(ValueError, match="higher_is_better"):
        compare(low, a)


def test_reaches_a_level():
    assert reaches(m("s", [1.0, 0.995]), 0.99).outcome == "supported"
    assert reaches(m("s", [0.80]), 0.99).outcome == "contradicted"
    assert reaches(m("s", [0.985], margin=0.01), 0.99).outcome == "supported"


def test_combine_rules():
    assert combine([]) == "not tested"
    assert combine(["not tested", "supported", "inconclusive"]) == "supported"
    assert combine(["contradicted", "inconclusive"]) == "contradicted"
    assert combine(["supported", "contradicted"]) == "inconclusive"
    assert combine(["inconclusive", "not tested"]) == "inconclusive"
    with pytest.raises(ValueError, match="outcomes"):
        combine(["maybe"])


def test_verdict_text_rows_markdown_and_roundtrip(tmp_path):
    out = compare(m("normalized", [0.9], margin=0.02), m("linear", [0.5], margin=0.02))
    v = make_verdict("C3", [out], "L=16, KV=4, d=32, n=8", "normalized 0.900, linear 0.500", profile="ci",
                     device="cpu", seeds="0")
    text = str(v)
    assert CLAIMS["C3"].quote in text and "App. L" in text and "SUPPORTED" in text and "profile ci" in text
    assert "normalized better by 0.400" in v.numbers
    df = verdict_rows([v, not_tested("C9", "no stored results")])
    assert list(df["verdict"]) == ["supported", "not tested"]
    md = verdict_markdown([v])
    assert md.startswith("| claim |") and "**supported**" in md
    path = save_verdicts([v], tmp_path / "v.json")
    assert load_verdicts(path) == [v]
    assert load_verdicts(tmp_path / "absent.json") == []


def test_verdict_details_is_a_bullet_list_with_one_item_per_comparison():
    a = compare(m("normalized", [0.9], margin=0.02), m("linear", [0.5], margin=0.02))
    b = compare(m("normalized", [0.6], margin=0.02), m("linear", [0.59], margin=0.02))
    v = make_verdict("C3", [a, b], "d [32, 64]", "2 comparison(s): 1 supported, 1 inconclusive",
                     profile="ci", device="cpu", seeds="0", note="a_b *c* $x$")
    md = verdict_details([v, not_tested("C9", "no stored results")])
    lines = md.splitlines()
    assert lines[0] == "* **C3** (App. L): **supported**"
    assert "  * cells: d \\[32, 64\\]" in lines
    assert "    * normalized better by 0.400 \\> noise 0.020" in lines  # one sub-item per comparison
    assert "    * difference +0.010 inside the noise 0.020" in lines
    assert "  * note: a\\_b \\*c\\* \\$x\\$" in lines  # Markdown and math characters escaped
    assert "  * runs: profile ci, seeds 0, device cpu" in lines
    assert "* **C9** (§4.2, Table 1): **not tested**" in lines and "  * numbers: no stored results" in lines
    with pytest.raises(TypeError, match="Verdict"):
        verdict_details(["C1"])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="claim_id"):
        make_verdict("C99", [], "", "")
    with pytest.raises(TypeError, match="values"):
        Measure("a", ["x"])
    with pytest.raises(ValueError, match="margin"):
        Measure("a", [0.5], margin=-1)
    with pytest.raises(ValueError, match="relation"):
        compare(m("a", [1.0]), m("b", [1.0]), "worse")
    with pytest.raises(ValueError, match="n must be"):
        binomial_margin(0)
    with pytest.raises(ValueError, match="columns"):
        verdict_markdown([], columns=["nope"])


def test_every_claim_quotes_the_paper_with_a_place():
    assert {c.experiment for c in CLAIMS.values()} == {"mqar", "lra", "wikitext", "mqar+lra"}
    for c in CLAIMS.values():
        assert c.quote and c.source and any(s in c.source for s in ("§", "App.", "Fig.", "Table"))
    assert set(OUTCOMES) == {"supported", "contradicted", "inconclusive", "not tested"}
