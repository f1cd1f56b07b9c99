"""The scan benchmark runs end to end on a tiny grid and writes a labelled table."""
import csv

from dsflib import bench


def test_bench_writes_rows_for_every_shape_method_and_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "SHAPES", {"tiny": dict(batch=1, heads=2, dk=4, dv=3, per_key=False),
                                          "tiny_vec": dict(batch=1, heads=2, dk=4, dv=1, per_key=True)})
    out = tmp_path / "scan.csv"
    assert bench.main(["--lengths", "8", "20", "--repeats", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 2 * (len(bench.METHODS) * 2 + 1)  # + one forward floor row per (shape, length)
    assert sum(r["method"] == "floor" for r in rows) == 4 and all(
        r["pass_"] == "fwd" for r in rows if r["method"] == "floor")
    assert {r["pass_"] for r in rows} == {"fwd", "fwd+bwd"}
    assert all(float(r["seconds"]) > 0 and r["device"].startswith("cpu") and r["commit"] for r in rows)
    table = bench.speedups(bench.run([8], 1))
    assert all(r["speedup"] > 0 for r in table) and len(table) == 2 * 2
    fwd = [r for r in table if r["pass_"] == "fwd"]
    assert all(r["floor"] > 0 and r["loop_over_floor"] > 0 for r in fwd)


def test_state_floor_forms_every_state_update():
    import torch
    q, k, v, log_a = bench.scan_inputs(dict(batch=2, heads=3, dk=4, dv=5, per_key=True), 6)
    out = bench.state_floor(q, k, v, log_a)
    assert out.shape == v.shape
    t = 4  # one step by hand: S = (a+1) * k v^T, y = S^T q
    S = (log_a[0, t, 1].exp() + 1)[:, None] * torch.outer(k[0, t, 1], v[0, t, 1])
    torch.testing.assert_close(out[0, t, 1], S.T @ q[0, t, 1])
