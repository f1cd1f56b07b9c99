"""The scan benchmark runs end to end on a tiny grid and writes a labelled table."""
import csv

from dsflib import bench


def test_bench_writes_rows_for_every_shape_method_and_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "SHAPES", {"tiny": dict(batch=1, heads=2, dk=4, dv=3, per_key=False),
                                          "tiny_vec": dict(batch=1, heads=2, dk=4, dv=1, per_key=True)})
    out = tmp_path / "scan.csv"
    assert bench.main(["--lengths", "8", "20", "--repeats", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 2 * len(bench.METHODS) * 2
    assert {r["pass_"] for r in rows} == {"fwd", "fwd+bwd"}
    assert all(float(r["seconds"]) > 0 and r["device"].startswith("cpu") and r["commit"] for r in rows)
    table = bench.speedups(bench.run([8], 1))
    assert all(r["speedup"] > 0 for r in table) and len(table) == 2 * 2
