"""Property-based tests of the public API (hypothesis): random shapes (L = 0 and 1, chunk remainders),
dtypes, devices (cpu, meta), contiguity and non-finite values. Every case either returns the right
result (checked against the float64 recurrence where one applies) or raises ``TypeError`` /
``ValueError`` naming the argument at fault.

Under ``CI=true`` the examples are few, bounded and derandomized (a fixed seed), so the suite costs
seconds; locally hypothesis explores more (``HYPOTHESIS_PROFILE=thorough`` for many more).
"""
from __future__ import annotations

import os
import re
import warnings

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the project's test extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dsflib import apply_phi, materialize_phi, random_dsf, recurrence  # noqa: E402
from dsflib.data.mqar import IGNORE_INDEX, MQARConfig, generate_mqar  # noqa: E402
from dsflib.models import MIXERS, build_mixer  # noqa: E402
from dsflib.scan import linear_scan  # noqa: E402
from dsflib.sweep import TornRowWarning, append_row, read_results  # noqa: E402
from dsflib.verify import verify_layer  # noqa: E402

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=20, derandomize=True, **_common)
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("thorough", max_examples=400, **_common)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))

F64 = torch.float64
ARGS = ("q", "k", "v", "log_a", "initial_state", "backend", "chunk_size")


def _names_an_argument(err: Exception, names=ARGS) -> bool:
    return any(re.search(rf"\b{n}\b", str(err)) for n in names)


# --------------------------------------------------------------------------- linear_scan

@st.composite
def scan_inputs(draw):
    b = draw(st.integers(0, 2))
    L = draw(st.sampled_from([0, 1, 2, 5, 16, 17, 33]))  # empty, one token, chunk remainders
    H, dk, dv = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    per_key = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, L, H, dk, generator=g, dtype=F64) for _ in range(2))
    v = torch.randn(b, L, H, dv, generator=g, dtype=F64)
    log_a = -torch.rand((b, L, H, dk) if per_key else (b, L, H), generator=g, dtype=F64)
    h0 = torch.randn(b, H, dk, dv, generator=g, dtype=F64) if draw(st.booleans()) else None
    return q, k, v, log_a, h0


@given(scan_inputs(),
       st.sampled_from(["auto", "chunked", "parallel", "sequential", "recurrent"]),
       st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
       st.sampled_from([None, 1, 3, 8]),
       st.booleans())
def test_linear_scan_matches_the_float64_recurrence_or_names_the_argument(inputs, backend, dtype, chunk, transpose):
    q, k, v, log_a, h0 = inputs
    ref, ref_state = linear_scan(q, k, v, log_a, initial_state=h0, return_final_state=True, backend="recurrent")
    args = [t.to(dtype) for t in (q, k, v, log_a)]
    if transpose:  # the same values in non-contiguous storage
        args = [t.transpose(0, 1).contiguous().transpose(0, 1) for t in args]
    state0 = None if h0 is None else h0.to(dtype)
    try:
        y, state = linear_scan(*args, initial_state=state0, return_final_state=True, backend=backend,
                               chunk_size=chunk)
    except (TypeError, ValueError) as err:
        assert _names_an_argument(err), err
        return
    assert y.shape == ref.shape and state.shape == ref_state.shape
    tol = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 3e-2, torch.bfloat16: 1e-1}[dtype]
    scale = max(1.0, ref.abs().max().item() if ref.numel() else 1.0)
    if ref.numel():
        assert (y.double() - ref).abs().max().item() <= tol * scale, backend
    if ref_state.numel():
        assert (state.double() - ref_state).abs().max().item() <= tol * max(1.0, ref_state.abs().max().item())


@given(scan_inputs(), st.sampled_from(["int", "nan_log_a", "inf_q", "positive_log_a", "meta", "mixed_dtype",
                                       "bad_shape", "bad_backend", "bad_chunk"]))
def test_linear_scan_rejects_bad_input_by_name(inputs, fault):
    q, k, v, log_a, h0 = inputs
    kwargs = {}
    if fault == "int":
        q = q.long()
    elif fault == "nan_log_a":
        log_a = log_a.clone().fill_(float("nan"))
    elif fault == "inf_q":
        q = q.clone().fill_(float("inf"))
    elif fault == "positive_log_a":
        log_a = log_a.abs() + 0.1
    elif fault == "meta":
        q, k, v, log_a = (t.to("meta") for t in (q, k, v, log_a))
        h0 = None
    elif fault == "mixed_dtype":
        v = v.float()
    elif fault == "bad_shape":
        v = v[..., None]
    elif fault == "bad_backend":
        kwargs["backend"] = "fast"
    elif fault == "bad_chunk":
        kwargs["chunk_size"] = 0
    empty = q.numel() == 0 or log_a.numel() == 0
    try:
        y = linear_scan(q, k, v, log_a, initial_state=h0, **kwargs)
    except (TypeError, ValueError) as err:
        assert _names_an_argument(err), err
        return
    # the only faults a scan may accept: values it never sees (empty tensors), or inf in q, whose
    # products are the right non-finite numbers
    assert fault == "inf_q" or (empty and fault in ("nan_log_a", "positive_log_a", "inf_q")), fault
    if fault == "inf_q" and y.numel():
        assert not torch.isfinite(y).all()


# --------------------------------------------------------------------------- mixers and their DSF

@given(st.sampled_from(sorted(MIXERS)), st.integers(1, 2), st.sampled_from([1, 2, 7, 17]), st.integers(0, 99))
@settings(max_examples=12 if IN_CI else 30)
def test_every_mixer_equals_its_dsf_on_random_shapes(name, batch, length, seed):
    torch.manual_seed(seed)
    layer = build_mixer(name, d_model=8, n=2).double()
    u = torch.randn(batch, length, 8, dtype=F64)
    y = layer(u)
    assert y.shape == u.shape and y.dtype == F64 and torch.isfinite(y).all()
    if hasattr(layer, "to_dsf"):
        report = verify_layer(layer, u)
        scale = max(1.0, report.scale)
        assert report.recurrence_vs_phi <= 1e-8 * scale, report  # the DSF's two evaluations agree
        if name != "softmax_attention":  # its DSF is the finite-feature approximation (its chapter)
            assert report.forward_vs_recurrence <= 1e-8 * scale, report


@given(st.sampled_from(sorted(MIXERS)), st.sampled_from(["wide", "2d", "int", "list"]))
@settings(max_examples=12 if IN_CI else 30)
def test_every_mixer_rejects_bad_input_by_name(name, fault):
    layer = build_mixer(name, d_model=8, n=2)
    u = {"wide": torch.randn(1, 3, 9), "2d": torch.randn(3, 8), "int": torch.ones(1, 3, 8, dtype=torch.long),
         "list": [[0.0] * 8]}[fault]
    with pytest.raises((TypeError, ValueError), match=r"\bu\b"):
        layer(u)


# --------------------------------------------------------------------------- the DSF object

@given(st.integers(1, 2), st.sampled_from([1, 2, 5, 9]), st.integers(1, 3), st.integers(1, 3), st.booleans(),
       st.integers(0, 99))
def test_random_dsf_phi_is_causal_and_equals_the_recurrence(batch, length, d, n, scalar, seed):
    dsf = random_dsf(batch, length, d, n, heads=1 if scalar else None, seed=seed, dtype=F64)
    u = torch.randn(batch, length, d, dtype=F64, generator=torch.Generator().manual_seed(seed))
    phi = materialize_phi(dsf)
    assert phi.shape == (batch, length, length, d, d)
    upper = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    assert phi[:, upper].abs().max().item() == 0 if upper.any() else True
    torch.testing.assert_close(apply_phi(phi, u), recurrence(dsf, u), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- data generators

@given(st.integers(1, 8), st.integers(1, 3), st.integers(0, 3), st.integers(0, 99))
def test_mqar_labels_are_the_values_bound_to_each_query(kv, extra, vocab_extra, seed):
    L = 4 * kv + 2 * extra
    V = 2 * kv + 2 + 2 * vocab_extra
    data = generate_mqar(MQARConfig(seq_len=L, num_kv_pairs=kv, vocab_size=V), 3, seed)
    assert data.inputs.shape == data.labels.shape == (3, L) and data.inputs.dtype == torch.long
    for x, y in zip(data.inputs.tolist(), data.labels.tolist()):
        bound = dict(zip(x[0:2 * kv:2], x[1:2 * kv:2]))
        assert len(bound) == kv and all(0 < key < V // 2 <= val < V for key, val in bound.items())
        asked = [(i, lab) for i, lab in enumerate(y) if lab != IGNORE_INDEX]
        assert len(asked) == kv and all(bound[x[i]] == lab for i, lab in asked)


@given(st.integers(-2, 40), st.integers(-1, 12), st.integers(-1, 30))
def test_mqar_config_accepts_only_valid_tasks(L, kv, V):
    try:
        MQARConfig(seq_len=L, num_kv_pairs=kv, vocab_size=V)
    except (TypeError, ValueError) as err:
        assert _names_an_argument(err, ("seq_len", "num_kv_pairs", "vocab_size")), err
        return
    assert L % 2 == 0 and 4 * kv <= L and V // 2 - 1 >= kv >= 1


# --------------------------------------------------------------------------- the sweep table

cells = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                  st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"),
                          max_size=12))


@given(st.lists(st.dictionaries(st.sampled_from(["acc", "loss", "note", "model"]), cells, max_size=4),
                min_size=1, max_size=5),
       st.floats(0.0, 1.0))
def test_results_table_round_trips_and_a_cut_keeps_a_prefix(tmp_path_factory, rows, cut_at):
    path = tmp_path_factory.mktemp("sweep") / "r.csv"
    for i, row in enumerate(rows):
        append_row(path, {"run_id": f"r{i}", **row})
    back = read_results(path)
    assert [r["run_id"] for r in back] == [f"r{i}" for i in range(len(rows))]
    for row, got in zip(rows, back):
        assert all(got[k] == str(v) for k, v in row.items()), (row, got)
    data = path.read_bytes()
    path.write_bytes(data[:int(cut_at * len(data))])  # a crash or a full disk during a write
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornRowWarning)
        try:
            kept = read_results(path)
        except UnicodeDecodeError:  # a cut inside a multi-byte character of the last row
            return
    assert kept == back[:len(kept)]  # every row read back is a finished row, in order
