"""The claim rules' shared pieces: the pooled seed spread, the labels of a profile's runs, the quoted
list of untested statements."""
import math

import pytest

from dsflib.claims import UNTESTED, pooled_seed_sd, run_labels, with_pooled_sd
from dsflib.verdicts import Measure


def test_pooled_seed_sd_weights_cells_by_their_degrees_of_freedom():
    a = Measure("a", [0.5, 0.6, 0.7])  # var 0.01, 2 df
    b = Measure("b", [0.2, 0.4])  # var 0.02, 1 df
    one = Measure("c", [0.9])  # no spread: left out
    sd, df = pooled_seed_sd([a, b, one])
    assert df == 3 and sd == pytest.approx(math.sqrt((2 * 0.01 + 1 * 0.02) / 3))
    assert pooled_seed_sd([one]) is None


def test_with_pooled_sd_lets_a_single_seed_cell_be_judged():
    cells = {"x": Measure("x", [0.5, 0.51, 0.52]), "y": Measure("y", [0.9])}
    assert cells["y"].seed_variance() is None
    pooled = with_pooled_sd(cells, "the test cells")
    var, df, source = pooled["y"].seed_variance()
    assert df == 2 and var == pytest.approx(0.01 ** 2) and "pooled over the test cells" in source
    assert with_pooled_sd({"y": cells["y"]}, "nothing") == {"y": cells["y"]}


def test_run_labels_name_seeds_devices_commits_and_dates():
    rows = [dict(seed=1, device="cpu", commit="abc", date="2026-12-01 10:00 UTC"),
            dict(seed="0", device="cpu", commit="abd", date="2026-12-02 10:00 UTC"), dict(seed="nan")]
    labels = run_labels(rows, "ci", "a CPU proxy")
    assert labels == dict(profile="ci", device="cpu", seeds="0, 1", commit="abc, abd", scale="a CPU proxy",
                          date="2026-12-01 10:00 UTC – 2026-12-02 10:00 UTC")


def test_rows_from_other_library_code_are_labelled_not_mixed_silently():
    same = [dict(seed=0, commit="abc", code="f00"), dict(seed=1, commit="abc", code="f00")]
    assert run_labels(same, "ci", "")["commit"] == "abc (code f00)"
    mixed = run_labels(same + [dict(seed=2, commit="abd", code="ba7")], "ci", "")["commit"]
    assert "MIXED: rows from 2 versions" in mixed and "f00" in mixed and "ba7" in mixed
    assert "record no code version" in run_labels(same + [dict(seed=2, commit="x")], "ci", "")["commit"]


def test_untested_statements_are_quoted_with_their_place():
    assert len(UNTESTED) >= 5
    for quote, where, why in UNTESTED:
        assert quote and why and any(s in where for s in ("§", "App."))
