"""The verdicts on the paper's WikiText claims (C9: normalized attention closes part of the gap to softmax
attention; C10: it closes 25 % of the gap), decided by dsflib.experiments.wikitext.paper_verdicts from
synthetic result rows: every outcome with its reason category, the positive control (softmax attention
better than linear attention), C10's 0.25 ± 0.10, one seed with and without a seed spread pooled over the
other models, diverged and stuck models, learning-rate sweeps, stored results."""
import math

import pytest

from dsflib.claims.wikitext import FRACTION_MARGIN, PAPER_FRACTION
from dsflib.experiments import wikitext as exp
from dsflib.sweep import append_row, run_id
from dsflib.verdicts import CONTRADICTED, INCONCLUSIVE, NOT_TESTED, SUPPORTED, verdict_markdown

UNIGRAM = 800.0  # the did-not-learn level of the synthetic rows


def rows_for(ppl: dict[str, list[float]], *, lr=3e-3, unigram=UNIGRAM, device="cpu (test)") -> list[dict]:
    """One row per model and seed: ``ppl[model][seed]`` is the training perplexity."""
    return [{"model": model, "seed": seed, "train_ppl": value, "lr": lr, "unigram_ppl": unigram,
             "vocab_size": 4096, "device": device}
            for model, values in ppl.items() for seed, value in enumerate(values)]


def outcomes(verdicts) -> dict[str, str]:
    assert [v.claim.id for v in verdicts] == ["C9", "C10"]
    return {v.claim.id: v.outcome for v in verdicts}


def categories(verdicts) -> dict[str, str]:
    return {v.claim.id: v.category for v in verdicts}


def verdicts_of(ppl, **kwargs):
    return exp.paper_verdicts("ci", rows_for(ppl, **kwargs))


# three seeds, spread 1: linear 300, softmax 200
LIN, SOFT = [299.0, 300.0, 301.0], [199.0, 200.0, 201.0]
GAP_CONTROL = "softmax better than linear attention (a gap to close)"


def near(ppl: float) -> list[float]:
    """Three seeds with a spread of 0.5 perplexity around ``ppl``."""
    return [ppl - 0.5, ppl, ppl + 0.5]


def test_gap_fraction_is_the_share_of_the_linear_softmax_gap_closed():
    assert exp.gap_fraction(300, 275, 200) == pytest.approx(0.25)
    assert exp.gap_fraction(300, 300, 200) == 0 and exp.gap_fraction(300, 200, 200) == 1
    assert math.isnan(exp.gap_fraction(300, 250, 300))


def test_normalized_closing_a_quarter_of_the_gap_supports_both_claims():
    v = verdicts_of({"linear": LIN, "normalized": [274.0, 275.0, 276.0], "softmax": SOFT})
    assert outcomes(v) == {"C9": SUPPORTED, "C10": SUPPORTED}
    assert categories(v) == {"C9": "decided", "C10": "decided"}
    assert v[0].counts == "2/0/0 of 2" and v[1].counts == "1/0/0 of 1"
    assert all(x.controls == f"{GAP_CONTROL}: passed" and x.quantifier == "all" for x in v)
    assert "fraction of the gap closed" in v[1].numbers and "0.250" in v[1].numbers
    assert "TOST, margin ±0.1" in v[1].numbers
    assert all(x.profile == "ci" and x.seeds == "0, 1, 2" and x.device == "cpu (test)" for x in v)
    assert all("training perplexity" in x.note and "lower is better" in x.note for x in v)
    assert "unigram perplexity of the training tokens" in v[0].note


def test_half_the_gap_supports_c9_and_contradicts_c10():
    v = verdicts_of({"linear": LIN, "normalized": [249.0, 250.0, 251.0], "softmax": SOFT})
    assert outcomes(v) == {"C9": SUPPORTED, "C10": CONTRADICTED}
    assert "0.500" in v[1].numbers


def test_normalized_worse_than_linear_contradicts_both():
    v = verdicts_of({"linear": LIN, "normalized": [319.0, 320.0, 321.0], "softmax": SOFT})
    assert outcomes(v) == {"C9": CONTRADICTED, "C10": CONTRADICTED}


def test_normalized_better_than_softmax_closes_more_than_the_gap():
    v = verdicts_of({"linear": LIN, "normalized": [179.0, 180.0, 181.0], "softmax": SOFT})
    assert outcomes(v) == {"C9": CONTRADICTED, "C10": CONTRADICTED}


@pytest.mark.parametrize("norm, outcome", [(283.0, SUPPORTED), (267.0, SUPPORTED), (290.0, CONTRADICTED),
                                           (260.0, CONTRADICTED), (265.0, INCONCLUSIVE)])
def test_c10_is_the_fraction_within_a_quarter_plus_or_minus_a_tenth(norm, outcome):
    # fractions 0.17 and 0.33 lie inside 0.25 ± 0.10, 0.10 and 0.40 outside; 0.35 sits on the edge: its
    # interval crosses it
    assert (PAPER_FRACTION, FRACTION_MARGIN) == (0.25, 0.10)
    v = verdicts_of({"linear": near(300.0), "normalized": near(norm), "softmax": near(200.0)})
    assert outcomes(v) == {"C9": SUPPORTED, "C10": outcome}
    assert f"= {(300.0 - norm) / 100.0:.3f} (paper: 0.25)" in v[1].numbers
    assert v[1].category == ("inside the noise" if outcome == INCONCLUSIVE else "decided")


def test_differences_inside_the_seed_spread_are_inconclusive():
    # a clear linear-softmax gap (the control passes), but normalized attention's seeds spread by 75
    v = verdicts_of({"linear": near(300.0), "normalized": [200.0, 275.0, 350.0], "softmax": near(200.0)})
    assert outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE}
    assert categories(v) == {"C9": "inside the noise", "C10": "inside the noise"}
    assert all(x.controls == f"{GAP_CONTROL}: passed" for x in v)
    assert "contains 0" in v[0].numbers and "crosses ±0.1" in v[1].numbers
    assert "= 0.250 (paper: 0.25)" in v[1].numbers  # right on the paper's figure, but not known to be


def test_the_gap_to_close_is_the_positive_control():
    # linear and softmax attention within each other's noise: there is no gap to close, whatever
    # normalized attention does
    wide = {"linear": [200.0, 300.0, 400.0], "normalized": near(275.0), "softmax": [100.0, 200.0, 300.0]}
    v = verdicts_of(wide)
    assert outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE}
    assert categories(v) == {"C9": "controls failed", "C10": "controls failed"}
    assert all(x.controls == f"{GAP_CONTROL}: FAILED" for x in v)
    assert all(x.numbers.startswith(f"controls failed: {GAP_CONTROL} (inconclusive:") for x in v)


def test_a_model_that_did_not_learn_makes_both_inconclusive():
    # normalized attention above the unigram perplexity (800) on every seed
    v = verdicts_of({"linear": near(300.0), "normalized": near(901.0), "softmax": near(200.0)})
    assert outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE}
    assert categories(v) == {"C9": "did not learn", "C10": "did not learn"}
    assert "did not leave its no-learning level: normalized attention (exp) (0 of 3 seeds)" in v[0].numbers
    assert "not below the unigram perplexity: normalized attention (exp) (0 of 3 seeds)" in v[1].numbers
    # linear attention stuck: the control (softmax better than linear) cannot be shown either
    v = verdicts_of({"linear": near(901.0), "normalized": near(275.0), "softmax": near(200.0)})
    assert categories(v) == {"C9": "controls failed", "C10": "controls failed"}
    assert all("did not leave its no-learning level: linear attention" in x.numbers for x in v)
    # one of three seeds below the level is no majority: did not learn; two are: it learned (and the stray
    # seed's spread leaves the comparisons inside the noise)
    v = verdicts_of({"linear": near(300.0), "normalized": [275.0, 901.0, 902.0], "softmax": near(200.0)})
    assert categories(v)["C9"] == "did not learn" and "(1 of 3 seeds)" in v[0].numbers
    v = verdicts_of({"linear": near(300.0), "normalized": [274.0, 276.0, 902.0], "softmax": near(200.0)})
    assert categories(v)["C9"] == "inside the noise"


def test_without_a_unigram_level_the_vocabulary_size_is_the_floor():
    def without_unigram(ppl):
        return [{k: v for k, v in r.items() if k != "unigram_ppl"} for r in rows_for(ppl)]

    # 5000 is above the vocabulary size 4096: did not learn
    v = exp.paper_verdicts("ci", without_unigram({"linear": near(300.0), "normalized": near(5000.0),
                                                  "softmax": near(200.0)}))
    assert categories(v) == {"C9": "did not learn", "C10": "did not learn"}
    assert "vocabulary size" in v[0].note and "did-not-learn level 4096.0" in v[0].note
    # 4000 is below it (but above the 800 of the unigram rows): learned, and clearly worse than linear
    v = exp.paper_verdicts("ci", without_unigram({"linear": near(300.0), "normalized": near(4000.0),
                                                  "softmax": near(200.0)}))
    assert outcomes(v) == {"C9": CONTRADICTED, "C10": CONTRADICTED}
    assert categories(verdicts_of({"linear": near(300.0), "normalized": near(4000.0),
                                   "softmax": near(200.0)}))["C9"] == "did not learn"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "", "nan"])
def test_a_diverged_model_makes_both_inconclusive(bad):
    v = verdicts_of({"linear": [bad], "normalized": [275.0], "softmax": [200.0]})
    assert outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE}
    assert all("diverged on every seed: linear attention" in x.numbers for x in v)


def test_a_missing_model_is_not_tested():
    v = verdicts_of({"linear": LIN, "softmax": SOFT, "s6": [150.0, 151.0, 152.0]})
    assert outcomes(v) == {"C9": NOT_TESTED, "C10": NOT_TESTED}
    assert all("not run: normalized attention (exp)" in x.numbers for x in v)


def test_no_rows_or_only_s6_is_not_tested():
    for rows in ([], rows_for({"s6": [150.0]})):
        v = exp.paper_verdicts("paper", rows)
        assert outcomes(v) == {"C9": NOT_TESTED, "C10": NOT_TESTED}
        assert all(x.profile == "paper" and "no stored WikiText runs" in x.numbers for x in v)


def test_one_seed_is_inconclusive_however_large_the_differences():
    v = verdicts_of({"linear": [300.0], "normalized": [275.0], "softmax": [200.0]})
    assert outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE}
    # no model has two seeds, so there is no spread to pool: neither the parts nor the control (softmax
    # better than linear) can be judged, and the verdict says so
    assert all("one seed and no seed-spread estimate" in x.numbers for x in v)
    assert all(f"controls not evaluable: {GAP_CONTROL} (too few seeds: one seed and no seed-spread estimate"
               in x.numbers for x in v)
    assert all(x.category == "too few seeds" for x in v)
    assert all(x.seeds == "0" for x in v)
    assert "**inconclusive**" in verdict_markdown(v)


def test_a_spread_pooled_over_the_other_models_judges_a_single_seed():
    # linear and softmax attention ran three seeds (spread 0.5), normalized attention one: its measure takes
    # the spread pooled over the three models and both claims are decided
    ppl = {"linear": near(300.0), "normalized": [275.0], "softmax": near(200.0)}
    v = verdicts_of(ppl)
    assert outcomes(v) == {"C9": SUPPORTED, "C10": SUPPORTED}
    assert categories(v) == {"C9": "decided", "C10": "decided"}
    assert "normalized attention (exp) 275.000 (1 seed; seed spread 0.500 pooled over" in v[0].numbers
    # the same single seed beside a pooled spread of 20: the linear-softmax gap of 100 still shows, the
    # single seed's step of 25 is inside the noise
    ppl = {"linear": [280.0, 300.0, 320.0], "normalized": [275.0], "softmax": [180.0, 200.0, 220.0]}
    v = verdicts_of(ppl)
    assert all(x.controls == f"{GAP_CONTROL}: passed" for x in v)
    assert outcomes(v)["C9"] == INCONCLUSIVE and v[0].category == "inside the noise"


def test_linear_beating_softmax_fails_the_control():
    # softmax attention worse than linear: no gap in the claim's direction, so neither claim can be asked
    v = verdicts_of({"linear": SOFT, "normalized": [249.0, 250.0, 251.0], "softmax": LIN})
    assert outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE}
    assert categories(v) == {"C9": "controls failed", "C10": "controls failed"}
    assert all(x.numbers.startswith(f"controls failed: {GAP_CONTROL} (contradicted:") for x in v)
    # the same three perplexities the right way round decide C9
    v = verdicts_of({"linear": LIN, "normalized": [249.0, 250.0, 251.0], "softmax": SOFT})
    assert outcomes(v)["C9"] == SUPPORTED


def test_the_best_learning_rate_per_model_and_seed_counts():
    rows = rows_for({"linear": LIN, "normalized": [274.0, 275.0, 276.0], "softmax": SOFT})
    rows += rows_for({"linear": [500.0] * 3, "normalized": [float("nan")] * 3, "softmax": [700.0] * 3}, lr=1e-2)
    v = exp.paper_verdicts("ci", rows)
    assert outcomes(v) == {"C9": SUPPORTED, "C10": SUPPORTED}
    assert "best of the learning rates 0.003, 0.01" in v[0].note
    measures = exp.ppl_measures(rows)
    assert measures["normalized"].values == (274.0, 275.0, 276.0) and not measures["softmax"].higher_is_better
    assert measures["linear"].floor == UNIGRAM


def test_stored_results_of_the_profile_are_read_and_others_ignored(tmp_path):
    path = tmp_path / "runs.csv"
    ppl = {"softmax": 200.0, "linear": 300.0, "normalized": 275.0, "s6": 250.0}
    for config in exp.grid("ci", seed=0):
        append_row(path, {"run_id": run_id(config), **config, "train_ppl": ppl[config["model"]],
                          "unigram_ppl": UNIGRAM, "device": "cpu (stored)"})
    stray = exp.grid("ci", seed=0, models=["normalized"], steps=7)[0]  # not the profile's settings
    append_row(path, {"run_id": run_id(stray), **stray, "train_ppl": 100.0, "device": "elsewhere"})
    v = exp.paper_verdicts("ci", results_path=path)
    assert outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE}  # one seed
    assert all(x.device == "cpu (stored)" and x.seeds == "0" for x in v)
    assert "normalized attention (exp) 275.000" in v[0].numbers and "S6" not in v[0].numbers
    assert outcomes(exp.paper_verdicts("ci", results_path=tmp_path / "none.csv")) == {"C9": NOT_TESTED,
                                                                                      "C10": NOT_TESTED}


def test_the_gpu_profile_reads_its_three_seeds_and_says_it_is_a_stand_in(tmp_path):
    path = tmp_path / "runs.csv"
    ppl = {"softmax": [199.0, 200.0, 201.0], "linear": LIN, "normalized": [274.0, 275.0, 276.0]}
    for seed in exp.seeds_of("gpu"):
        for config in exp.grid("gpu", seed=seed):
            append_row(path, {"run_id": run_id(config), **config, "train_ppl": ppl[config["model"]][seed],
                              "unigram_ppl": UNIGRAM, "device": "cuda (NVIDIA H200)"})
    v = exp.paper_verdicts("gpu", results_path=path)
    assert outcomes(v) == {"C9": SUPPORTED, "C10": SUPPORTED}  # three seeds give a noise level
    assert all(x.profile == "gpu" and x.seeds == "0, 1, 2" and x.device == "cuda (NVIDIA H200)" for x in v)
    assert all(x.scale == exp.SCALES["gpu"] and "GPU stand-in" in x.scale and "WikiText-2" in x.scale for x in v)


def test_rows_are_checked():
    with pytest.raises(ValueError, match="train_ppl"):
        exp.paper_verdicts("ci", [{"model": "linear", "seed": 0}])
    with pytest.raises(ValueError, match="model"):
        exp.paper_verdicts("ci", [{"model": "gpt", "seed": 0, "train_ppl": 3.0}])
    with pytest.raises(ValueError, match="profile"):
        exp.paper_verdicts("big", [])


def store(path, profile, ppl: dict[str, list[float]], seeds, *, device="cpu (stored)"):
    """Store one row per grid config of ``profile`` at each of ``seeds``: ``ppl[model][i]`` for ``seeds[i]``."""
    for i, seed in enumerate(seeds):
        for config in exp.grid(profile, seed=seed):
            if config["model"] in ppl:
                append_row(path, {"run_id": run_id(config), **config, "train_ppl": ppl[config["model"]][i],
                                  "unigram_ppl": UNIGRAM, "device": device})


def test_the_ci_profile_reads_both_of_its_seeds(tmp_path):
    path = tmp_path / "runs.csv"
    ppl = {"softmax": [200.0, 202.0], "linear": [300.0, 302.0], "normalized": [275.0, 277.0], "s6": [150.0, 152.0]}
    store(path, "ci", ppl, exp.seeds_of("ci"))
    v = exp.paper_verdicts("ci", results_path=path)
    assert outcomes(v) == {"C9": SUPPORTED, "C10": SUPPORTED}  # two seeds give a noise level
    assert all(x.seeds == "0, 1" for x in v)
    assert "normalized attention (exp) 276.000" in v[0].numbers and "S6" not in v[0].numbers
    assert f"trained {exp.PROFILES['ci']['steps']} steps on WikiText-2's validation split" in v[0].scale
    assert "CPU proxy" in v[0].scale and "not the paper's 70M models on WikiText-103" in v[0].scale
    # only seed 0 of the profile stored: one seed, so no noise level, whatever the differences
    only0 = tmp_path / "only0.csv"
    store(only0, "ci", {m: vs[:1] for m, vs in ppl.items()}, [0])
    v = exp.paper_verdicts("ci", results_path=only0)
    assert outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE} and all(x.seeds == "0" for x in v)
    assert all("one seed and no seed-spread estimate" in x.numbers for x in v)


def test_two_seeds_whose_spread_swallows_the_differences_are_inconclusive(tmp_path):
    path = tmp_path / "runs.csv"
    # linear-softmax gap 100, but normalized's two seeds 80 apart: std 56.6 > its steps of 25 and 75
    store(path, "ci", {"softmax": [200.0, 202.0], "linear": [300.0, 302.0], "normalized": [235.0, 315.0]}, [0, 1])
    v = exp.paper_verdicts("ci", results_path=path)
    assert outcomes(v)["C9"] == INCONCLUSIVE and v[0].category == "inside the noise"
    # C10 is an "equals 25 %" claim, decided by TOST: a fraction of 0.26 whose interval is far wider than
    # ±0.10 is not shown to be 25 %
    assert outcomes(v)["C10"] == INCONCLUSIVE and v[1].category == "inside the noise"
    assert "= 0.260 (paper: 0.25)" in v[1].numbers and "crosses ±0.1" in v[1].numbers
    # a linear-softmax gap inside the two seeds' spread: the control fails
    wide = tmp_path / "wide.csv"
    store(wide, "ci", {"softmax": [200.0, 260.0], "linear": [250.0, 310.0], "normalized": [235.0, 236.0]}, [0, 1])
    v = exp.paper_verdicts("ci", results_path=wide)
    assert outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE}
    assert categories(v) == {"C9": "controls failed", "C10": "controls failed"}
    # the same means with a narrow spread decide both
    narrow = tmp_path / "narrow.csv"
    store(narrow, "ci", {"softmax": [200.0, 202.0], "linear": [300.0, 302.0], "normalized": [274.0, 276.0]}, [0, 1])
    assert outcomes(exp.paper_verdicts("ci", results_path=narrow)) == {"C9": SUPPORTED, "C10": SUPPORTED}


def test_stored_seeds_outside_the_profiles_seeds_count_only_when_asked_for(tmp_path):
    path = tmp_path / "runs.csv"
    store(path, "ci", {"softmax": [200.0, 202.0], "linear": [300.0, 302.0], "normalized": [274.0, 276.0]}, [0, 1])
    store(path, "ci", {"softmax": [400.0], "linear": [100.0], "normalized": [250.0]}, [5])  # e.g. a CLI --seed 5
    v = exp.paper_verdicts("ci", results_path=path)
    assert outcomes(v) == {"C9": SUPPORTED, "C10": SUPPORTED} and all(x.seeds == "0, 1" for x in v)
    v = exp.paper_verdicts("ci", results_path=path, seeds=[0, 1, 5])
    assert all(x.seeds == "0, 1, 5" for x in v) and outcomes(v)["C9"] == INCONCLUSIVE  # seed 5 widens the spread
    v = exp.paper_verdicts("ci", results_path=path, seeds=[5])
    assert all(x.seeds == "5" for x in v) and outcomes(v) == {"C9": INCONCLUSIVE, "C10": INCONCLUSIVE}
    with pytest.raises(ValueError, match="seeds"):
        exp.paper_verdicts("ci", results_path=path, seeds=[])
