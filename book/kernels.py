# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Kernels: the scan on a GPU
#
# Every model in this book reduces to one structured recurrence per head ({doc}`dsf`,
# {mod}`dsflib.scan`):
#
# $$
# S_i = \operatorname{diag}(a_i)\, S_{i-1} + k_i v_i^\top, \qquad y_i = S_i^\top q_i, \qquad
# a_i = e^{\log a_i} \in (0, 1]^{d_k},
# $$ (eq-kernels-scan)
#
# with $q_i, k_i \in \mathbb{R}^{d_k}$, $v_i \in \mathbb{R}^{d_v}$ and a $d_k \times d_v$ state. Three
# layouts of the decay cover the book, and `dsflib.kernels` has a Triton
# {cite:p}`tillet2019triton` kernel for each, plus one for S6's compact inputs:
#
# | layout | decay `log_a` | state per head | models | kernel |
# |---|---|---|---|---|
# | scalar decay | $(b, L, H)$: $a_i = \alpha_i \mathbf{1}$ | $d_k \times d_v$ matrix | linear attention, SSD ({doc}`ssd`), RetNet, mLSTM | `chunked_scan` |
# | per-key decay, $d_v = 1$ | $(b, L, H, d_k)$ | vector of $d_k$ entries | qLSTM, RG-LRU | `diag_scan` |
# | per-key decay, $d_v > 1$ | $(b, L, H, d_k)$ | $d_k \times d_v$ matrix | GLA ({doc}`gla`) | `gla_scan` |
# | S6, compact | $\Delta$ $(b, L, d)$, $A$ $(d, n)$ | $n$ entries per channel | S6 / Mamba-1 ({doc}`s6`) | `s6_scan` |
#
# `dsflib.kernels.api.linear_scan` validates the inputs and picks the kernel by the shape of `log_a`
# and $d_v$; inputs no kernel covers (float64, sizes beyond a kernel's limits) raise
# `NotImplementedError`, and the dispatcher falls back to the torch paths. The S6 layer calls
# `s6_scan` itself on CUDA, with $u, \Delta, A, B, C$ as they are. This chapter explains why each kernel is built the way it
# is, works out how fast the two benchmark problems *could* run on an H100 (arithmetic from
# assumed hardware rates, not measurement), shows whatever GPU measurements are stored, and checks
# the kernels' correctness on this machine in Triton's CPU interpreter.

# %% tags=["parameters"]
# "ci": tiny ragged shapes in the Triton interpreter; "paper": larger shapes
profile = "ci"
seed = 0

# %%
# The interpreter must be chosen before triton (or dsflib.kernels) is first imported.
# On a machine with CUDA the real, compiled kernels run instead.
import os

import torch

on_gpu = torch.cuda.is_available()
if not on_gpu:
    os.environ["TRITON_INTERPRET"] = "1"

# %%
import importlib.util
from pprint import pprint

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

assert importlib.util.find_spec("triton") is not None, (
    "this chapter runs the Triton kernels (on CPU in the interpreter): "
    "install triton, e.g. pip install -e '.[kernels]'")

from dsflib.kernels import interpret_mode
from dsflib.kernels.api import linear_scan
from dsflib.kernels.s6_scan import s6_scan
from dsflib.kernels.bench import NOTE_FLOORS_US, SHAPES, dsf_bytes, mamba_bytes

from dsflib.env import REPO_ROOT, run_info, run_label, select_profile
from dsflib.plotting import book_style, caption
from dsflib.scan import linear_scan_recurrent, selective_scan
from dsflib.tables import save_table, show_table

book_style()
settings = select_profile(profile, {
    "ci": dict(scalar=dict(batch=1, length=37, heads=2, dk=20, dv=24),
               diagonal=dict(batch=1, length=29, heads=3, dk=5, dv=1),
               gla=dict(batch=1, length=37, heads=2, dk=20, dv=24),
               s6=dict(batch=1, length=29, d=5, n=3)),
    "paper": dict(scalar=dict(batch=2, length=203, heads=4, dk=64, dv=64),
                  diagonal=dict(batch=2, length=301, heads=8, dk=16, dv=1),
                  gla=dict(batch=2, length=203, heads=4, dk=64, dv=64),
                  s6=dict(batch=2, length=301, d=64, n=16)),
})
device = "cuda" if on_gpu else "cpu"
info = run_info(profile, seed)
label = run_label(info)
print(label)
where = ("compiled on " + torch.cuda.get_device_name() if on_gpu
         else "in the Triton CPU interpreter")
print(f"kernels run {where}",
      f"(TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '0')})")
assert interpret_mode() == (not on_gpu)
pprint(settings, width=88)

# %% [markdown]
# ## Why each algorithm
#
# {doc}`dsf` compares three evaluations of {eq}`eq-kernels-scan`: recurrent ($L$ sequential steps,
# $O(L d_k d_v)$ work), quadratic (one big masked matrix product, $O(L^2)$) and chunked. A GPU kernel
# wants two things at once: as little traffic to HBM (the GPU's main memory) as possible, and its
# arithmetic on the tensor cores, which only do matrix products. The two layouts get different answers.
#
# ### Scalar decay: the chunked scan
#
# With one scalar $\alpha_i$ per head, the decay between tokens $j \le i$ is a single number
# $\prod_{j < s \le i} \alpha_s$ shared by the whole $d_k \times d_v$ state, so the quadratic form
# inside a chunk of $C$ tokens is a pair of matrix products. Write
# $G_i = \sum_{s \le i} \log \alpha_s$ for the cumulative log-decay *from the start of the chunk*.
# For one chunk with incoming state $S_{\text{in}}$:
#
# $$
# \begin{aligned}
# Y &= \big((Q K^\top) \circ \mathcal{D}\big) V + \big(Q \circ e^{G}\big) S_{\text{in}}, \qquad
# \mathcal{D}_{ij} = e^{\,\sum_{j < s \le i} \log \alpha_s}\,[i \ge j],\\
# S_{\text{out}} &= e^{G_{\text{last}}} S_{\text{in}} + \big(K \circ e^{\sum_{s > j} \log \alpha_s}\big)^\top V .
# \end{aligned}
# $$ (eq-kernels-chunk)
#
# $QK^\top$ ($C \times C$), its product with $V$, $Q S_{\text{in}}$ and $K^\top V$ are `tl.dot`s on the
# tensor cores: the intra-chunk part. One program walks all chunks of one head in order and keeps the
# state in registers: the inter-chunk part is this *state passing*, $L/C$ sequential steps instead of
# $L$. Nothing of size $L \times d_k \times d_v$ is ever written to memory. The kernel's loop over
# the chunks of one head is {eq}`eq-kernels-chunk` line by line: `scores` is
# $(QK^\top) \circ \mathcal{D}$, `q_in` is $Q \circ e^{G}$, the two `tl.dot`s into `b_y` are
# $Y$, and the last line is $S_{\text{out}}$ (`_chunk_decays` returns $G$, the decays to the chunk
# end, $G_{\text{last}}$ and $\mathcal{D}$):
#
# ```{literalinclude} ../kernels/chunked_scan.py
# :pyobject: _fwd
# :start-at: for c in range(
# :end-before: if STORE_HT:
# :dedent: 4
# :caption: `kernels/chunked_scan.py`, `_fwd` — the loop over chunks
# ```
#
# **Chunk-local segment sums.** Every exponent in {eq}`eq-kernels-chunk` is a sum of log-decays
# between two tokens of the same chunk, hence $\le 0$, so every factor is in $(0, 1]$ and nothing
# overflows. The causal mask sets the exponent to $-\infty$ *before* the `exp` (masking after would
# first compute $e^{+\text{large}}$ above the diagonal and multiply infinity by zero). The kernel forms
# each segment sum $\sum_{j < s \le i} \log \alpha_s$ as a masked cumulative sum of the log-decays
# between $j$ and $i$, rather than as the difference $G_i - G_j$ of two prefix sums. The difference is
# mathematically equal, but it is worse in floating point: $G_i$ and $G_j$ carry rounding errors
# proportional to their own size, $|G|\,\varepsilon$, and subtracting two large, nearly equal numbers
# keeps that absolute error while the true result (two neighbouring tokens' decay) can be tiny:
# catastrophic cancellation. It can also come out slightly *positive*. With global prefix sums
# (the log-space scan of {cite:t}`heinsen2023scan`, {doc}`dsf`'s quadratic form without chunks) $|G|$ grows linearly in $L$
# and so does the error. Resetting $G$ every chunk bounds $|G|$ by $C$ terms, and summing the segment
# directly removes the cancellation; `min(·, 0)` guards the exponent anyway.
#
# ### Per-key decay: the vector-state diagonal scan
#
# In the S6 family every key has its own decay, $a_i \in (0, 1]^{d_k}$, and $d_v = 1$: the state
# of a head is a vector, $s_{i,n} = a_{i,n} s_{i-1,n} + k_{i,n} v_i$, $y_i = \sum_n q_{i,n} s_{i,n}$. The
# decay between two tokens is now a different number for each key, so the intra-chunk term would be a
# $C \times C \times d_k$ tensor, not a matrix product: there is nothing for the tensor cores to do.
# The kernel therefore keeps the states of a block of heads (all $d_k$ keys each) in registers and
# walks the sequence one token at a time, reading one row of `q`, `k`, `log_a`, `v` per step and
# writing one `y`. The expanded state, of shape $(b, L, d, n)$ in Mamba's notation, is never
# materialized: a framework-level scan that writes it (and reads it back) moves tens of GB at the
# benchmark size, two orders of magnitude more than the inputs. Sequential over $L$ is cheap here
# because the work per step is elementwise and the parallelism comes from $b \times H$ (thousands of
# channels). The loop over tokens is the recurrence itself, one line for the state update and one
# for the read-out:
#
# ```{literalinclude} ../kernels/diag_scan.py
# :pyobject: _fwd
# :start-at: for _ in range(0, L):
# :end-before: if STORE_HT:
# :dedent: 4
# :caption: `kernels/diag_scan.py`, `_fwd` — the loop over tokens
# ```
#
# ### S6 without the expansion: the compact kernel
#
# Fed through `linear_scan`, S6 must first expand $C_t$ into a per-channel $q$, $\Delta_t B_t$ into a
# per-channel $k$ and $\Delta_t A$ into `log_a`, all of shape $(b, L, d, n)$ (the section on floors
# below counts what that costs). `s6_scan` takes the layer's own inputs instead: $u, \Delta$ of shape
# $(b, L, d)$, $A$ $(d, n)$ and $B, C$ $(b, L, n)$, and forms $e^{\Delta A}$ and $\Delta u B$ in
# registers, so the only tensors in memory are the compact inputs and $y$:
#
# ```{literalinclude} ../kernels/s6_scan.py
# :pyobject: _fwd
# :start-at: for _ in range(0, L):
# :dedent: 4
# :caption: `kernels/s6_scan.py`, `_fwd` — the loop over tokens, on compact inputs
# ```
#
# ### Per-key decays with a matrix state: GLA
#
# GLA's decays are per key, like S6's, but its state is a $d_k \times d_v$ matrix, like linear
# attention's. `gla_scan` is chunked like `chunked_scan`, but the decay between two tokens of a
# chunk is a different number for each key, so the intra-chunk scores are a
# $(C, C, d_k)$ product-sum, not one matrix product. The per-key segment sums are accumulated from
# the log-decays between the two tokens and masked before the `exp`, so every exponent is $\le 0$:
#
# ```{literalinclude} ../kernels/gla_scan.py
# :pyobject: _chunk
# :dedent: 0
# :caption: `kernels/gla_scan.py`, `_chunk` — per-key decays of one chunk
# ```
#
# ### What backward stores and what it recomputes
#
# No kernel saves activations for the backward pass; all **recompute** from the inputs (the
# final state is kept only when the caller asked for it):
#
# * `chunked_scan` runs three backward launches: a forward sweep that recomputes the state chunk by
#   chunk and gives $dq$; a reverse sweep carrying the adjoint state $R = \partial \mathcal{L}/\partial S$
#   that gives $dk$ and the gradient of the initial state; a reverse sweep over value blocks for $dv$.
# * `diag_scan` runs the forward again to get $s_i$ and $dq_i = dy_i\, s_i$, then a reverse sweep with the
#   adjoint $\lambda_i = q_i\, dy_i + a_{i+1} \lambda_{i+1}$ for $dk$, $dv$ and the initial state.
#
# `gla_scan` and `s6_scan` follow the same two-sweep plan (for S6 the decay gradient is turned into
# $d\Delta$ and $dA$ in registers, so no $(b, L, d, n)$ gradient is written either).
# All get the decay gradient without ever needing $s_{i-1}$ in the reverse sweep, from the identity
# $\partial \mathcal{L}/\partial G^{\text{global}}_i = q_i \cdot dq_i - k_i \cdot dk_i$ followed by a
# reverse cumulative sum over time. (Recovering $s_{i-1}$ from $s_i$ would mean dividing by $a_i$,
# unstable when decays are small; storing states is what the recomputation avoids.) Mamba's selective
# scan makes the same choice: its intermediate states "are not stored but recomputed in the
# backward pass" {cite:p}`gu2023mamba`. Recomputing costs one extra read of the inputs; storing
# the states costs memory proportional to $L$.

# %% [markdown]
# ## How fast could it be? The floors
#
# The benchmark script `dsflib.kernels.bench` times two problems of fixed size (its `SHAPES`),
# in bf16:
#
# * **diag** (S6 / Mamba-1): $B = 8$, $L = 4096$, $d = H = 2048$ channels, $n = d_k = 16$ states,
#   $d_v = 1$;
# * **chunked** (scalar decay): $B = 8$, $H = 16$, $L = 4096$, $d_k = d_v = 128$.
#
# A kernel cannot beat the time it takes to read its inputs and write its outputs once. The cell below
# counts those bytes with the benchmark's own functions (`dsf_bytes` for the dsflib layout, `mamba_bytes`
# for Mamba's compact layout, where $B_t$, $C_t$ are shared by all channels and $\Delta_t$ and $u_t$ are
# per channel) and divides by an HBM bandwidth. The hardware rates of this section are
# **assumptions of the arithmetic**, round figures for an NVIDIA H100 SXM, each below the
# data-sheet peak {cite:p}`nvidia2023h100` that real kernels rarely reach:
#
# * HBM bandwidth: we assume **3.0 TB/s** (data sheet: 3.35 TB/s);
# * FP32 CUDA cores: **67 TFLOP/s** (the data-sheet figure);
# * dense bf16 tensor cores: we assume **800 TFLOP/s** (data sheet: about 990 TFLOP/s dense);
# * `exp2` on the special function units: we assume **3.9·10¹² per second**, which is 16 results
#   per SM per clock {cite:p}`nvidia2024cuda` on 132 SMs at about 1.85 GHz.
#
# The cell compares the result with the reference floors stored in the benchmark
# (`NOTE_FLOORS_US`), the same arithmetic with compute included: the larger of the memory time and
# the compute time. The backward reads $q, k, v, \log a, dy$ and writes $dq, dk, dv, d\log a$.
#
# **Everything in this section is arithmetic from problem sizes and these assumed rates. None of
# it is a measurement.**

# %%
# assumed H100 rates (see the list above): arithmetic inputs, not measurements
BANDWIDTH = 3.0e12  # B/s of HBM traffic
PEAK_FP32 = 67e12  # FLOP/s, FP32 CUDA cores
PEAK_TENSOR = 800e12  # FLOP/s, dense bf16 tensor cores
SFU_EXP = 3.9e12  # exp2 per second on the special function units
CHUNK = 64  # chunk length of the FLOP count below (and of the kernel's forward)
bf16 = torch.bfloat16


rows = []
for kind in ("chunked", "diag"):
    shape = SHAPES[kind]
    for pass_ in ("fwd", "fwd+bwd"):
        layouts = [("dsflib", dsf_bytes(kind, shape, bf16, pass_))]
        if kind == "diag":
            layouts.append(("Mamba compact", mamba_bytes(shape, bf16, pass_)))
        for layout, nbytes in layouts:
            rows.append(dict(problem=kind, pass_=pass_, layout=layout, MB=nbytes / 1e6,
                             hbm_floor_us=nbytes / BANDWIDTH * 1e6,
                             reference_floor_us=NOTE_FLOORS_US[(kind, pass_)]))
floors = pd.DataFrame(rows)
save_table(floors, "hbm_floors")
show_table(floors, digits=6,
           caption="HBM floors = bytes / 3.0e12 B/s (arithmetic; not measured)")


def hbm_us(nbytes):
    return nbytes / BANDWIDTH * 1e6


ck, dg = SHAPES["chunked"], SHAPES["diag"]
chunked_fwd_us = hbm_us(dsf_bytes("chunked", ck, bf16, "fwd"))
chunked_bwd_us = hbm_us(dsf_bytes("chunked", ck, bf16, "fwd+bwd")
                        - dsf_bytes("chunked", ck, bf16, "fwd"))
mamba_fwd_us = hbm_us(mamba_bytes(dg, bf16, "fwd"))
mamba_bwd_us = hbm_us(mamba_bytes(dg, bf16, "fwd+bwd") - mamba_bytes(dg, bf16, "fwd"))
ref = NOTE_FLOORS_US
ref_chunked_bwd = ref[("chunked", "fwd+bwd")] - ref[("chunked", "fwd")]
ref_diag_bwd = ref[("diag", "fwd+bwd")] - ref[("diag", "fwd")]
show_table(pd.DataFrame([
    ("chunked forward", chunked_fwd_us, ref[("chunked", "fwd")]),
    ("chunked backward", chunked_bwd_us, ref_chunked_bwd),
    ("diag forward, Mamba layout (reference: exp on the SFU)", mamba_fwd_us,
     ref[("diag", "fwd")]),
    ("diag backward, Mamba layout", mamba_bwd_us, ref_diag_bwd),
], columns=["pass", "from the bytes [µs]", "reference floor [µs]"]), digits=4)
assert abs(chunked_fwd_us - ref[("chunked", "fwd")]) < 1.0
assert abs(chunked_bwd_us - ref_chunked_bwd) < 1.5
assert abs(mamba_fwd_us - 135.0) < 0.5 and ref[("diag", "fwd")] >= mamba_fwd_us
assert abs(mamba_bwd_us - ref_diag_bwd) < 0.5

# %% [markdown]
# Three things stand out.
#
# * **chunked** is bounded by memory: the bytes alone give the reference floors, 179 µs forward and
#   313 µs backward.
# * **diag** in Mamba's compact layout {cite:p}`gu2023mamba` needs only 135 µs of HBM traffic, but
#   its reference forward floor is 280 µs: one `exp` per state entry ($1.07 \cdot 10^9$ of them) at
#   the assumed SFU rate takes ≈275 µs, more than the memory traffic.
# * **diag in the dsflib layout** is a different problem. `dsflib` expands $C_t$ into a per-channel $q$,
#   $\Delta_t B_t$ into a per-channel $k$ and $\Delta_t A$ into a per-key `log_a`, all of shape
#   $(b, L, H, d_k)$: 16 times the size of $u$. Reading those costs ≈2.2 ms in bf16 before any
#   arithmetic. A kernel fed the expanded tensors cannot approach Mamba's floor. A benchmark row for
#   `kernel` on `diag` has to be read against the *layout* floor, and closing the gap means a kernel
#   that takes the compact inputs.
#
# The roofline model {cite:p}`williams2009roofline` puts the same numbers on one chart. Attainable
# throughput is $\min(\text{peak}, I \cdot \text{bandwidth})$ for arithmetic intensity $I$ = FLOP
# per byte of HBM traffic. The FLOP counts:
#
# * diag: we assume $\approx 9$ FLOP per state entry (an estimate for the discretisation, the
#   update $a \cdot s + k v$ and the read-out $q \cdot s$ together) on FP32 CUDA cores, no
#   tensor cores;
# * chunked: $4 d_k d_v + 2C(d_k + d_v)$ FLOP per token and head, with $C = 64$, on tensor cores,
#   counted from {eq}`eq-kernels-chunk`: $2 C d_k$ for $QK^\top$, $2 C d_v$ for its product with
#   $V$, $2 d_k d_v$ each for $Q S_{\text{in}}$ and $K^\top V$.

# %%
diag_entries = dg["batch"] * dg["length"] * dg["heads"] * dg["dk"]
diag_flop = 9 * diag_entries
chunked_flop = (ck["batch"] * ck["length"] * ck["heads"]
                * (4 * ck["dk"] * ck["dv"] + 2 * CHUNK * (ck["dk"] + ck["dv"])))
points = [
    ("chunked (tensor cores)", chunked_flop, dsf_bytes("chunked", ck, bf16, "fwd"),
     PEAK_TENSOR),
    ("diag, Mamba compact layout", diag_flop, mamba_bytes(dg, bf16, "fwd"), PEAK_FP32),
    ("diag, dsflib layout", diag_flop, dsf_bytes("diag", dg, bf16, "fwd"), PEAK_FP32),
]
roof = []
for name, flop, nbytes, peak in points:
    intensity = flop / nbytes
    attainable = min(peak, intensity * BANDWIDTH)
    roof.append(dict(problem=name, GFLOP=flop / 1e9, MB=nbytes / 1e6,
                     FLOP_per_B=intensity,
                     ridge=peak / BANDWIDTH,
                     bound="memory" if intensity < peak / BANDWIDTH else "compute",
                     time_floor_us=max(nbytes / BANDWIDTH, flop / peak) * 1e6,
                     attainable_TFLOPs=attainable / 1e12))
roof = pd.DataFrame(roof)
save_table(roof, "roofline")
print("forward pass, bf16 I/O; assumed H100 rates (arithmetic, not measured)")
sfu_us = diag_entries / SFU_EXP * 1e6
print(f"diag also needs {diag_entries:.3g} exp -> {sfu_us:.0f} us "
      f"on the SFU at {SFU_EXP:.1e}/s")
show_table(roof.rename(columns={"FLOP_per_B": "FLOP/B", "time_floor_us": "floor [µs]",
                                 "attainable_TFLOPs": "TFLOP/s"}), digits=4)
assert roof.loc[0, "bound"] == "memory" and abs(roof.loc[0, "FLOP_per_B"] - 96) < 1.5
assert abs(roof.loc[1, "FLOP_per_B"] - 23.9) < 0.2

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Roofline of the assumed H100 rates for the forward pass (arithmetic, not a measurement): attainable throughput min(peak, intensity × bandwidth) for the bf16 tensor cores and the FP32 CUDA cores, and the three problems at their arithmetic intensity, each labelled with its time floor.", "name": "fig-kernels-roofline"}, "image": {"alt": "Log-log roofline chart with two rooflines and three points for the chunked and diagonal problems"}}
fig, ax = plt.subplots(figsize=(7.5, 4.6))
x = np.logspace(-1, 3.5, 300)
ax.plot(x, np.minimum(PEAK_TENSOR, x * BANDWIDTH) / 1e12, color="0.2",
        label="bf16 tensor cores, 800 TFLOP/s")
ax.plot(x, np.minimum(PEAK_FP32, x * BANDWIDTH) / 1e12, color="0.55", ls="--",
        label="FP32 CUDA cores, 67 TFLOP/s")
markers = ["o", "s", "^"]
offsets = [(-12, 10), (10, -34), (8, -14)]
extra = ["", f" (ALU)\nexp on SFU: ≥ {diag_entries / SFU_EXP * 1e6:.0f} µs", ""]
for (_, r), m, off, more in zip(roof.iterrows(), markers, offsets, extra):
    point = (r["FLOP_per_B"], r["attainable_TFLOPs"])
    ax.plot(*point, m, ms=9, label=r["problem"])
    text = f"{r['FLOP_per_B']:.1f} FLOP/B\n≥ {r['time_floor_us']:.0f} µs{more}"
    ax.annotate(text, point,
                textcoords="offset points", xytext=off, fontsize=8,
                ha="left" if off[0] > 0 else "right")
ax.text(0.12, 0.12 * BANDWIDTH / 1e12 * 1.6, "HBM 3.0 TB/s", rotation=31, fontsize=8,
        color="0.3")
ax.set(xscale="log", yscale="log",
       xlabel="arithmetic intensity [FLOP / byte of HBM traffic]",
       ylabel="attainable throughput [TFLOP/s]", ylim=(0.2, 2000), xlim=(0.1, 3000),
       title="H100 roofline, forward pass: assumed rates, not measured")
ax.legend(fontsize=8, loc="lower right")
caption(fig, label)
plt.show()

# %% [markdown]
# In {numref}`fig-kernels-roofline` the chunked problem sits left of the tensor-core ridge
# (267 FLOP/B), so a perfect kernel is limited by
# HBM, not by the tensor cores. The compact S6 problem sits almost exactly on the FP32 ridge (22 FLOP/B),
# and its `exp` count pushes its floor to about twice its memory time. The dsflib layout of the same
# problem moves the point far to the left, deep in the memory-bound region.
#
# ## Stored GPU results
#
# Speed can only be measured on a GPU. On a machine with an NVIDIA GPU,
# `python -m dsflib.kernels.bench` gates and then times every method: the kernels, the torch paths,
# `mamba_ssm.selective_scan_fn` and `fla.chunk_simple_gla` where installed. It writes one CSV row per
# (problem, method, pass), with the device, versions and date. The book reads such CSVs from
# `book/results/kernels_bench*.csv`. The next cell shows them if any are present (with the times
# per method as a figure), and says so plainly if none are.

# %% mystnb={"figure": {"caption": "Stored GPU benchmark times per method and pass (log scale), with the benchmark's reference floors as vertical lines; the device and date of the measurement are in each panel's title.", "name": "fig-kernels-gpu"}, "image": {"alt": "Horizontal bar charts of benchmark times per method with vertical floor lines"}}
RESULTS = REPO_ROOT / "book" / "results"
BENCH_COMMAND = ("python -m dsflib.kernels.bench --dtype bf16 "
                 "--out book/results/kernels_bench.csv")


def show_gpu_results(paths):
    """Show the stored benchmark rows and plot them; return the table (or None)."""
    if not paths:
        print("No GPU results are stored yet: GPU speed is unmeasured.")
        print(f"(no file matches {RESULTS.relative_to(REPO_ROOT)}/kernels_bench*.csv)")
        print("To produce them, run on a machine with an NVIDIA GPU,")
        print("from the repository root:")
        print(f"    {BENCH_COMMAND}")
        return None
    bench = pd.concat([pd.read_csv(p).assign(file=p.name) for p in paths],
                      ignore_index=True)
    failed = bench[bench["pass_"] == "-"]
    ok = bench[bench["pass_"] != "-"].copy()
    ok["us"] = 1e3 * ok["ms"].astype(float)
    for (dev, date), _ in ok.groupby(["device", "date"]):
        print(f"measured on {dev}, {date} UTC")
    cols = ["kind", "method", "pass_", "dtype", "us", "GBps", "layout_floor_us",
            "note_floor_us", "max_rel_err", "status"]
    show_table(ok[cols], digits=3)
    if len(failed):
        show_table(failed[["kind", "method", "status"]],
                   caption="methods that did not run")
    kinds = list(dict.fromkeys(ok["kind"]))
    fig, axes = plt.subplots(len(kinds), 1, figsize=(7.5, 4.2 * len(kinds)),
                             squeeze=False)
    for ax, kind in zip(axes[:, 0], kinds):
        part = ok[ok["kind"] == kind].pivot_table(index="method", columns="pass_",
                                                  values="us", aggfunc="median")
        part.plot.barh(ax=ax, logx=True)
        for pass_, ls in (("fwd", "--"), ("fwd+bwd", ":")):
            if (kind, pass_) in NOTE_FLOORS_US:  # gla has no reference floor
                ax.axvline(NOTE_FLOORS_US[(kind, pass_)], color="k", ls=ls, lw=1,
                           label=f"reference floor, {pass_}")
        devices = ", ".join(sorted(set(ok.loc[ok["kind"] == kind, "device"])))
        dates = ", ".join(sorted(set(ok.loc[ok["kind"] == kind, "date"].str[:10])))
        ax.set(xlabel="time [µs], median of do_bench", ylabel="",
               title=f"{kind}: {devices}, {dates}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    caption(fig, "measured by dsflib.kernels.bench (device and date from the CSV rows; "
                 f"see titles)\nbook run: {label}")
    plt.show()
    return ok


gpu_csvs = sorted(RESULTS.glob("kernels_bench*.csv"))
gpu_results = show_gpu_results(gpu_csvs)
assert (gpu_results is None) == (not gpu_csvs)

# %% [markdown]
# ## Correctness in the interpreter
#
# What *can* be checked without a GPU is that the kernels compute the right numbers. Triton's CPU
# interpreter (`TRITON_INTERPRET=1`, set at the top of this chapter when no CUDA device is present)
# runs the same kernel source on NumPy, one program instance at a time. It is far too slow to say
# anything about speed. NumPy has no bfloat16 type, so the interpreter is no reference for bf16
# arithmetic, and the check uses float32 inputs. On a CUDA machine the same cell runs the compiled
# kernels instead.
#
# For each layout the inputs are float32 leaves with `requires_grad`. The kernel computes $y$ and,
# through its backward, the gradients of a random linear function of $y$ with respect to
# $q, k, v, \log a$. The reference is `dsflib.scan.linear_scan_recurrent` in float64 on the same values.
# The shapes are deliberately *ragged*: $L$ is not a multiple of the chunk or block length, and
# $d_k, d_v, H$ are not powers of two, so the masking of partial tiles is exercised. The error reported
# is the maximum absolute difference divided by the maximum absolute reference value: it does not
# depend on the scale of the inputs.

# %%
def random_inputs(shape, per_key, gen):
    b, L, H, dk, dv = (shape[x] for x in ("batch", "length", "heads", "dk", "dv"))
    q = torch.randn(b, L, H, dk, generator=gen)
    k = torch.randn(b, L, H, dk, generator=gen) / dk**0.5
    v = torch.randn(b, L, H, dv, generator=gen)
    # decays in [0.61, 1]
    log_a = -0.5 * torch.rand(*((b, L, H, dk) if per_key else (b, L, H)), generator=gen)
    dy = torch.randn(b, L, H, dv, generator=gen)
    return (q, k, v, log_a), dy


checks = []
gen = torch.Generator().manual_seed(seed)
kernels = {"scalar": "chunked_scan", "diagonal": "diag_scan", "gla": "gla_scan"}
for layout, per_key in (("scalar", False), ("diagonal", True), ("gla", True)):
    shape = settings[layout]
    inputs, dy = random_inputs(shape, per_key, gen)
    x32 = [t.clone().to(device).requires_grad_() for t in inputs]
    # the same values, as separate float64 leaves
    x64 = [t.double().requires_grad_() for t in inputs]
    y = linear_scan(*x32)
    y.backward(dy.to(device))
    y_ref = linear_scan_recurrent(*x64)
    y_ref.backward(dy.double())
    assert y.dtype == torch.float32 and y.shape == y_ref.shape
    kernel = kernels[layout]
    grads = [(f"d{n}", a.grad, r.grad)
             for n, a, r in zip(("q", "k", "v", "log_a"), x32, x64)]
    for name, out, ref in [("y", y, y_ref)] + grads:
        err = (out.detach().cpu().double() - ref.detach()).abs().max().item()
        scale = ref.abs().max().item()
        checks.append(dict(layout=layout, kernel=kernel,
                           shape=" ".join(f"{k}={v}" for k, v in shape.items()),
                           quantity=name, max_abs_err=err, max_abs_ref=scale,
                           rel_err=err / scale))


def s6_inputs(shape, gen):
    b, L, d, n = (shape[x] for x in ("batch", "length", "d", "n"))
    return [torch.randn(b, L, d, generator=gen),  # u
            torch.nn.functional.softplus(torch.randn(b, L, d, generator=gen)),  # delta
            -2 * torch.rand(d, n, generator=gen),  # A <= 0
            torch.randn(b, L, n, generator=gen), torch.randn(b, L, n, generator=gen)]


# S6's compact kernel against the float64 selective scan of the expanded layout
shape = settings["s6"]
inputs = s6_inputs(shape, gen)
x32 = [t.clone().to(device).requires_grad_() for t in inputs]
x64 = [t.double().requires_grad_() for t in inputs]
y = s6_scan(*x32)
dy = torch.randn(y.shape, generator=gen)
y.backward(dy.to(device))
u, delta, A, B, C = x64
y_ref = selective_scan(C, B, delta * u, delta[..., None] * A)
y_ref.backward(dy.double())
for name, out, ref in [("y", y, y_ref)] + [
        (f"d{n}", a.grad, r.grad)
        for n, a, r in zip(("u", "delta", "A", "B", "C"), x32, x64)]:
    err = (out.detach().cpu().double() - ref.detach()).abs().max().item()
    scale = ref.abs().max().item()
    checks.append(dict(layout="S6 compact", kernel="s6_scan",
                       shape=" ".join(f"{k}={v}" for k, v in shape.items()),
                       quantity=name, max_abs_err=err, max_abs_ref=scale,
                       rel_err=err / scale))
checks = pd.DataFrame(checks)
save_table(checks, "kernel_correctness")
print(f"kernel (float32) vs the float64 recurrence, run {where}")
print(label)
show_table(checks.drop(columns="shape"), digits=3,
           caption="shapes: the settings printed at the top of the page")
worst = checks["rel_err"].max()
print(f"largest relative error: {worst:.1e} "
      f"({'within' if worst < 1e-5 else 'OUTSIDE'} the bound 1e-5 of the check)")
assert (checks["rel_err"] < 1e-5).all(), checks
assert checks["max_abs_err"].map(np.isfinite).all()

# %% [markdown]
# The line under the table states whether all four kernels and their backward passes agree with
# the float64 recurrence within the bound of the check ($10^{-5}$ relative, float32 rounding), on
# shapes whose tiles are only partly filled; the page fails to build if they do not.
#
# ## What is verified and what is not
#
# **Verified:**
#
# * **Correctness of the kernel source.** All four kernels, forward and backward, were checked against
#   the float64 recurrence in float32, on ragged shapes, in the Triton interpreter (this page), and
#   more widely by the tests in `tests/`. This covers the kernels' logic, their masking and the
#   recomputation-based gradients, including the decay gradient.
# * **Compilation.** `chunked_scan` and `diag_scan` were compiled for an H100 (sm_90) during
#   development: the docstring of `chunked_scan` reports the register spills of that bf16 compile,
#   which is why its backward is split into two launches. `gla_scan` and `s6_scan` have run only in
#   the interpreter so far (no GPU was available when they were written): their compilation, register
#   use and speed on a GPU are untested. This page compiles nothing when it runs in the interpreter. On a CUDA machine
#   the correctness cell above compiles and runs the real kernels.
# * **The floors above — as arithmetic.** They are not measurements: bytes and FLOPs of each
#   problem divided by the assumed hardware rates. What the page checks (its asserts) is that this
#   arithmetic reproduces the benchmark's reference floors: 179 µs and 313 µs for the chunked
#   problem, 135 µs of HBM but ≈280 µs including `exp` for the compact S6 problem; the expanded
#   dsflib layout of the S6 problem needs ≈2.2 ms of HBM traffic.
#
# **Not verified:**
#
# * **GPU speed.** Unless the "Stored GPU results" section shows a table, there is no measurement of
#   how close either kernel comes to its floor, or how it compares with `mamba_ssm` or `fla`.
# * **bf16 and fp16 numerics on hardware.** The interpreter is no reference for bf16 (NumPy has no
#   bfloat16 type), so this page checks float32 only. The benchmark's correctness gate (kernel vs. the fp32 recurrence, relative error
#   ≤ 5·10⁻² in bf16) is the first check of low-precision inputs, and it runs only on a GPU.
# * **TF32.** With `torch.set_float32_matmul_precision("high")` the kernels use TF32 `tl.dot`. The
#   interpreter does not emulate TF32.
# * **Autotuning.** Every kernel launches one configuration chosen from the shape by default, so
#   the first call costs one compile (the benchmark reports it as `first_call_s`);
#   `DSFLIB_KERNELS_AUTOTUNE=1` opts into autotuning on a GPU. The interpreter never autotunes.
