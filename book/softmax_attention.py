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
# # Softmax attention
#
# Softmax attention {cite:p}`vaswani2017attention` is the reference every other token mixer in this
# book is measured against, and it
# is the one model that does *not* fit the DSF with a finite state. Writing it in the framework shows
# exactly why: its kernel $e^{q^\top k}$ is separable only with infinitely many features, so $N = \infty$.
# It also shows how to get a finite-state model out of it: truncate the features. This chapter computes
# the exact $\Phi$ of softmax attention, builds finite-state DSFs from truncated Taylor features and from
# random features, and measures how the approximation error and the rank of $\Phi$ depend on the
# state size.
#
# ## The layer
#
# `dsflib.models.SoftmaxAttention` is standard causal multi-head attention. With $H$ heads, queries and
# keys of size $m$ (`head_dim`) and $d/H$ value channels per head:
#
# $$
# \begin{aligned}
# q_i &= W_Q u_i,\quad k_i = W_K u_i \in \mathbb{R}^m\ (\text{per head}),\quad v_i = W_V u_i,\\
# y_i &= W_O \Big[\sum_{j \le i} \frac{e^{q_i^\top k_j/\sqrt{m}}}{\eta_i}\, v_j\Big]_{\text{heads}},\\
# \eta_i &= \sum_{j \le i} e^{q_i^\top k_j / \sqrt{m}} .
# \end{aligned}
# $$ (eq-softmax-attention-layer)
#
# ## Its DSF: an infinite state
#
# The exponential of an inner product is an inner product of infinite feature vectors. With the scaled
# vectors $\tilde q = q/m^{1/4}$, $\tilde k = k/m^{1/4}$ (so that $\tilde q^\top \tilde k = q^\top k/\sqrt{m}$),
#
# $$
# \begin{aligned}
# e^{\tilde q^\top \tilde k} &= \sum_{r=0}^{\infty} \frac{(\tilde q^\top \tilde k)^r}{r!}
# = \phi_\infty(\tilde q)^\top \phi_\infty(\tilde k),\\
# \phi_\infty(x) &= \Big[1,\ x,\ \tfrac{x^{\otimes 2}}{\sqrt{2!}},\
# \tfrac{x^{\otimes 3}}{\sqrt{3!}},\ \dots\Big],
# \end{aligned}
# $$ (eq-softmax-attention-taylor)
#
# because $(x^{\otimes r})^\top (y^{\otimes r}) = (x^\top y)^r$. Softmax attention is therefore
# *separable* attention: its kernel is an inner product $\phi(\tilde q)^\top \phi(\tilde k)$ of
# feature vectors, here with $\phi = \phi_\infty$. A separable kernel puts the layer in the DSF
# {eq}`eq-dsf` of {doc}`dsf` (the paper's eq. (11)). Per head, the normalized sum
# $S_i = \sum_{j \le i} \phi(\tilde k_j)\, v_j^\top / \eta_i$ obeys a recurrence, because
# $\eta_i S_i = \eta_{i-1} S_{i-1} + \phi(\tilde k_i)\, v_i^\top$:
#
# $$
# S_i = \frac{\eta_{i-1}}{\eta_i}\, S_{i-1} + \frac{1}{\eta_i}\,\phi(\tilde k_i)\, v_i^\top,
# \qquad
# y_i = W_O \big[S_i^\top \phi(\tilde q_i)\big]_{\text{heads}} .
# $$ (eq-softmax-attention-state)
#
# Stacking the columns of every head's $S_i$ into the state $h_i$ gives the four DSF matrices — the
# paper's DSF form of separable attention, as its App. B derives it {cite:p}`sieber2024dsf` (the main
# text's eq. (15) prints $1/\eta(q_{i-1}, k_{i-1})$ in $B_i$; App. B's $1/\eta_i$ is the consistent form):
#
# $$
# \begin{aligned}
# A_i &= \frac{\eta_{i-1}}{\eta_i}\, I_\infty, &
# B_i &= \frac{1}{\eta_i}\big(I_d \otimes \phi_\infty(\tilde k_i)\big) W_V,\\
# C_i &= W_O\big(I_d \otimes \phi_\infty(\tilde q_i)^\top\big), &
# D_i &= 0,\qquad N = \infty .
# \end{aligned}
# $$ (eq-softmax-attention-dsf)
#
# The same derivation with a finite feature map is linear attention, the next chapter
# ({doc}`linear_attention`, whose {eq}`eq-linear-attention-dsf` is this form with $N = n d$).
# The state cannot be written down, but $\Phi$ can: the transitions telescope,
# $A_i A_{i-1} \cdots A_{j+1} = \eta_j/\eta_i$, the $\eta_j$ cancels against the $1/\eta_j$ in
# $B_j$, and
#
# $$
# \begin{aligned}
# \Phi_{ij} &= W_O\, \mathrm{blockdiag}_h\big(P^{(h)}_{ij}\, I_{d/H}\big)\, W_V,\\
# P^{(h)}_{ij} &= \frac{e^{q^{(h)\top}_i k^{(h)}_j/\sqrt{m}}}{\eta^{(h)}_i}\quad (j \le i),
# \end{aligned}
# $$ (eq-softmax-attention-phi)
#
# which `layer.phi(u)` returns:
#
# ```{literalinclude} ../dsflib/models/softmax_attention.py
# :pyobject: SoftmaxAttention.phi
# :lines: 1,5-
# :dedent: 4
# :caption: `dsflib/models/softmax_attention.py` — the exact $\Phi$ (docstring omitted)
# ```
#
# **Finite-state approximations** replace $\phi_\infty$ by a finite map and
# keep everything else, including the normalization by the approximate kernel's own $\eta_i$:
#
# - *Taylor features* of order $p$: the first $p+1$ groups of {eq}`eq-softmax-attention-taylor`, of size
#   $n = \sum_{r=0}^{p} m^r$; the kernel becomes $\sum_{r \le p} (\tilde q^\top \tilde k)^r / r!$.
# - *Positive random features* (Performer {cite:p}`choromanski2021performer`): $\phi(x)_r = e^{w_r^\top x - \|x\|^2/2}/\sqrt{R}$ with
#   $w_r \sim \mathcal{N}(0, I_m)$, $n = R$, whose inner products are unbiased estimates of $e^{x^\top y}$.
#
# `layer.to_dsf(u, features=..., ...)` returns the DSF {eq}`eq-softmax-attention-dsf` with such a map:
# $N = n\,d$, exact for the approximate attention it defines (the tests check this against a direct
# masked-matmul evaluation), and approximate for softmax attention itself. The feature maps:
#
# ```{literalinclude} ../dsflib/models/softmax_attention.py
# :pyobject: SoftmaxAttention.feature_maps
# :lines: 1-9,15-
# :dedent: 4
# :caption: `dsflib/models/softmax_attention.py` — finite feature maps (docstring omitted)
# ```
#
# The layer's DSF, which every check below compares with its forward pass, is built from the same
# quantities (`to_dsf`, the code that ran):
#
# ```{literalinclude} ../dsflib/models/softmax_attention.py
# :pyobject: SoftmaxAttention.to_dsf
# :dedent: 4
# :caption: `dsflib/models/softmax_attention.py` — `SoftmaxAttention.to_dsf`
# ```

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes (still cheap here)
seed = 0

# %%
import math
import pprint
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.models.features import taylor_feature_dim
from dsflib.models.softmax_attention import SoftmaxAttention
from dsflib.plotting import book_style, caption, phi_block_norms, phi_heatmap
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(batch=2, length=24, d=8, heads=2,
               small_d=4, small_length=40, qk_scale=0.75, orders=[0, 1, 2, 3, 4],
               rf_features=[16, 64, 256, 1024], rf_seeds=8),
    "paper": dict(batch=4, length=64, d=16, heads=4,
                  small_d=4, small_length=48, qk_scale=0.75, orders=[0, 1, 2, 3, 4],
                  rf_features=[16, 64, 256, 1024, 4096, 8192], rf_seeds=16),
})
info = run_info(profile, seed)
label = run_label(info)
print(textwrap.fill(label, 88))
pprint.pprint(settings, width=88, compact=True)

# %% [markdown]
# ## The exact $\Phi$ is the layer
#
# A random layer in double precision, evaluated with PyTorch's fused attention (`forward`) and with
# the exact blocks {eq}`eq-softmax-attention-phi`. Each head's weights $P^{(h)}_{ij}$ form a probability
# distribution over $j \le i$.

# %%
torch.manual_seed(seed)
d, heads, L = settings["d"], settings["heads"], settings["length"]
layer = SoftmaxAttention(d, heads=heads).double().eval()
generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(settings["batch"], L, d, generator=generator, dtype=torch.float64)

with torch.no_grad():
    y = layer(u)
    phi = layer.phi(u)
    P = layer.attention_weights(u)  # (batch, heads, L, L)
exact_error = (dsflib.apply_phi(phi, u) - y).abs().max().item()
row_sum_error = (P.sum(-1) - 1).abs().max().item()
print(layer)
print(f"Phi blocks {tuple(phi.shape)}; max |Phi u - forward(u)| = {exact_error:.2e} "
      f"(max |y| = {y.abs().max().item():.2e})")
print(f"max |sum_j P_ij - 1| = {row_sum_error:.2e}")
assert exact_error < 1e-12 and row_sum_error < 1e-12

# %% [markdown]
# `verify_layer` compares the layer with the DSF that `to_dsf` returns, here the order-2 Taylor one
# (the default). Its recurrence and its $\Phi u$ agree to rounding, as for any DSF; both differ from
# the layer by the approximation error, which is the subject of the rest of the chapter.

# %%
report = verify_layer(layer, u)
print(*str(report).split(", "), sep="\n")
assert report.recurrence_vs_phi < 1e-12  # the finite DSF is self-consistent
# ...and an approximation of softmax attention, not the layer itself:
assert report.forward_vs_recurrence > 1e-6
assert report.N == taylor_feature_dim(layer.head_dim, 2) * d

# %% [markdown]
# ## What $\Phi$ looks like
#
# {numref}`fig-softmax-attention-phi` shows the exact $\Phi$ of the first sequence. A row is a distribution
# over the prefix, so the first rows (short prefixes) dominate the colour scale. At random initialisation the scores
# $q_i^\top k_j/\sqrt{m}$ are of order one, so each row is only mildly non-uniform; the pairs with the
# largest scores stand out in the block norms.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The exact Φ of softmax attention at random initialisation is block lower triangular (causal); left the signed Ld × Ld matrix, right the log10 Frobenius norm of each d × d block.", "name": "fig-softmax-attention-phi"}, "image": {"alt": "Two heatmaps of the exact Phi of a random softmax attention layer: a signed lower block-triangular matrix, strongest in the first rows, and its block norms on a log scale, a lower triangle."}}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
phi_heatmap(phi[0], axes[0], title=r"exact $\Phi$ ($Ld \times Ld$)")
phi_block_norms(phi[0], axes[1], title=r"block norms $\log_{10}\|\Phi_{ij}\|_F$")
fig.suptitle(f"Softmax attention, random init (L={L}, d={d}, heads={heads}, "
             f"m={layer.head_dim})", fontsize=10)
fig.tight_layout(rect=(0, 0, 1, 0.95))
caption(fig, label)
plt.show()

# %% [markdown]
# ## The transitions $A_i$
#
# The infinite state never has to be formed to know its transition: $A_i = \eta_{i-1}/\eta_i$ is one
# scalar per head (times $I_\infty$), hence its only eigenvalue. `layer.normalizer(u)` computes $\eta_i$ from
# the definition {eq}`eq-softmax-attention-layer` with the layer's projections. $\eta_i$ gains one term per token,
# which pulls $A_i$ below one like the running mean $i/(i+1)$. But every term is re-weighted by the new
# query: when $q_i$ sees the prefix more weakly than $q_{i-1}$ did, $\eta_i < \eta_{i-1}$ and $A_i > 1$.
# We measure rather than assume ({numref}`fig-softmax-attention-transitions`):

# %%
with torch.no_grad():
    eta = layer.normalizer(u)
A_exact = eta[:, :-1] / eta[:, 1:]  # A_1 ... A_{L-1}
fraction_above = (A_exact > 1).double().mean().item()
print(f"exact A_i, i >= 1, over {A_exact.numel()} (sequence, token, head) triples:")
print(f"min {A_exact.min().item():.3f}, max {A_exact.max().item():.3f}, "
      f"fraction > 1: {fraction_above:.3f}")
assert 0 < fraction_above < 1

# consistency with the exact weights: P_ii = exp(q_i^T k_i / sqrt(m)) / eta_i,
# so eta_i P_ii is the diagonal kernel
with torch.no_grad():
    q = layer.W_Q(u).unflatten(-1, (heads, layer.head_dim))
    k = layer.W_K(u).unflatten(-1, (heads, layer.head_dim))
diag_kernel = ((q * k).sum(-1) / math.sqrt(layer.head_dim)).exp()
P_diag = P.diagonal(dim1=-2, dim2=-1).transpose(1, 2)
eta_error = (eta * P_diag - diag_kernel).abs().max().item()
print(f"max |eta_i P_ii - exp(q_i^T k_i / sqrt(m))| = {eta_error:.2e}")
assert eta_error < 1e-12 * diag_kernel.max().item()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The transition scalar A_i = η_{i-1}/η_i of exact softmax attention per head (first sequence, log scale), beside the running mean i/(i+1); values above the dashed line at 1 are tokens whose query sees the prefix more weakly than the previous query did.", "name": "fig-softmax-attention-transitions"}, "image": {"alt": "Line plot on a log scale of the transition A_i against the token index for each head, with the running mean i/(i+1) for comparison and a dashed line at 1."}}
rows = [dict(i=i, A=A_exact[0, i - 1, h].item(), series=f"exact $A_i$, head {h}")
        for i in range(1, L) for h in range(heads)]
rows += [dict(i=i, A=i / (i + 1), series="$i/(i+1)$ (running mean)")
         for i in range(1, L)]
fig, ax = plt.subplots(figsize=(8, 3.8))
sns.lineplot(pd.DataFrame(rows), x="i", y="A", hue="series", style="series",
             markers=True, dashes=False, ax=ax)
ax.axhline(1.0, color="grey", lw=0.8, ls="--")
ax.set(yscale="log", xlabel="token i",
       ylabel=r"$A_i = \eta_{i-1}/\eta_i$ (log scale)",
       title="softmax attention: transition scalar per head (first sequence)")
ax.set_yticks([0.25, 0.5, 1, 2, 4], labels=["0.25", "0.5", "1", "2", "4"])
ax.minorticks_off()
ax.legend(fontsize=8)
caption(fig, label)
plt.show()

# %% [markdown]
# ## Finite states: the Taylor truncation
#
# Truncating {eq}`eq-softmax-attention-taylor` at order $p$ is accurate when $|q^\top k|/\sqrt{m}$ is
# small: the first neglected term is of size $|\tilde q^\top \tilde k|^{p+1}/(p+1)!$. We therefore work with a
# small layer ($d = m = 4$, one head) whose $W_Q, W_K$ are scaled down so that
# $\max |q_i^\top k_j|/\sqrt{m}$ stays below one. Odd orders need this too: their truncated kernel
# could otherwise turn negative, and `to_dsf` refuses that.
#
# Order $p = 0$ is a useful sanity check: $\phi_0 \equiv 1$, every key weighs the same, $\eta_i = i + 1$,
# and the DSF is the running mean of the values, $A_i = i/(i+1)$ exactly.

# %%
small_d, L_small = settings["small_d"], settings["small_length"]
torch.manual_seed(seed)
small = SoftmaxAttention(small_d, heads=1).double().eval()
with torch.no_grad():
    small.W_Q.weight.mul_(settings["qk_scale"])
    small.W_K.weight.mul_(settings["qk_scale"])
m = small.head_dim
generator_small = torch.Generator().manual_seed(seed + 2)
u_small = torch.randn(1, L_small, small_d, generator=generator_small,
                      dtype=torch.float64)
with torch.no_grad():
    q_s = small.W_Q(u_small)
    k_s = small.W_K(u_small)
    phi_exact = small.phi(u_small)
s_max = (q_s @ k_s.transpose(1, 2)).tril().abs().max().item() / math.sqrt(m)
print(f"d = m = {m}, L = {L_small}: max_(j<=i) |q_i^T k_j| / sqrt(m) = {s_max:.3f}")
assert s_max < 1.0

taylor = {}
with torch.no_grad():
    for p in settings["orders"]:
        taylor[p] = small.to_dsf(u_small, "taylor", order=p)
running_mean = torch.tensor([i / (i + 1) for i in range(1, L_small)],
                            dtype=torch.float64)
A0_error = (taylor[0].A[0, 1:, 0] - running_mean).abs().max()
print(f"order 0: max |A_i - i/(i+1)| = {A0_error.item():.2e}")
assert A0_error < 1e-14

approx_rows, phi_taylor = [], {}
for p, system_p in taylor.items():
    phi_taylor[p] = dsflib.materialize_phi(system_p)
    err = (phi_taylor[p] - phi_exact).abs().max().item()
    assert system_p.n == taylor_feature_dim(m, p) == sum(m**r for r in range(p + 1))
    approx_rows.append(dict(p=p, n=system_p.n, N=system_p.N, error=err))
taylor_table = pd.DataFrame(approx_rows)
show_table(taylor_table.rename(columns={"error": "max |Φ_p − Φ|"}), digits=3,
           caption="Order-p Taylor DSF: state size and error of its Φ")
taylor_errors = taylor_table["error"].tolist()
# strictly decreasing in n:
assert all(a > b for a, b in zip(taylor_errors, taylor_errors[1:])), taylor_errors
orders = settings["orders"]
print("error(p) / error(p+1), measured vs (p+2)/s_max:")
for p, a, b in zip(orders, taylor_errors, taylor_errors[1:]):
    print(f"  p={p}: {a / b:.2f} vs {(p + 2) / s_max:.2f}")

# %% [markdown]
# The error falls by a large factor with every order while the state grows by a factor of about $m$.
# From $p = 1$ on, the factor is close to $(p+2)/s_{\max}$, the ratio of consecutive neglected Taylor terms
# $s^{p+1}/(p+1)!$ and $s^{p+2}/(p+2)!$ at $s = s_{\max}$; the first step, from the running mean to
# first order, gains more than that estimate. The transitions converge along with $\Phi$:
# {numref}`fig-softmax-attention-taylor-transitions` shows $A_i$ of the truncated DSFs against the exact
# $\eta_{i-1}/\eta_i$.

# %%
with torch.no_grad():
    eta_small = small.normalizer(u_small)
A_small = (eta_small[0, :-1, 0] / eta_small[0, 1:, 0])
rows = []
for p in settings["orders"][:3]:
    series = f"Taylor p={p} (n={taylor[p].n})"
    rows += [dict(i=i, A=taylor[p].A[0, i, 0].item(), series=series)
             for i in range(1, L_small)]
A_errors = {p: (taylor[p].A[0, 1:, 0] - A_small).abs().max().item()
            for p in settings["orders"]}
print("max_i |A_i(Taylor p) - A_i(exact)|:")
print(textwrap.fill(", ".join(f"p={p}: {e:.2e}" for p, e in A_errors.items()), 88))
assert A_errors[settings["orders"][-1]] < A_errors[0] / 10

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Transitions A_i of the order-p Taylor DSFs of the small layer (p = 0, 1, 2) against the exact η_{i-1}/η_i (thick grey line); order 0 is the running mean i/(i+1).", "name": "fig-softmax-attention-taylor-transitions"}, "image": {"alt": "Line plot of A_i against the token index: a thick grey exact curve and three Taylor approximations of orders 0, 1 and 2, the higher orders lying closer to the exact curve."}}
fig, ax = plt.subplots(figsize=(8, 3.8))
ax.plot(range(1, L_small), A_small.numpy(), color="black", lw=4, alpha=0.35,
        label="exact")
sns.lineplot(pd.DataFrame(rows), x="i", y="A", hue="series", style="series",
             markers=True, dashes=False, ax=ax)
ax.axhline(1.0, color="grey", lw=0.8, ls="--")
ax.set(xlabel="token i", ylabel=r"$A_i$",
       title=rf"transitions of the small layer "
             rf"($\max|q^\top k|/\sqrt{{m}}$ = {s_max:.2f})")
ax.legend(fontsize=8)
caption(fig, label)
plt.show()

# %% [markdown]
# ## Finite states: random features
#
# Random features trade the structured expansion for Monte Carlo: the kernel estimate has a standard
# deviation that shrinks like $1/\sqrt{R}$. We average the error over several draws of the features for
# each $R$ and put both families on one axis, the state size $n$ per channel
# ({numref}`fig-softmax-attention-approximation`).

# %%
rf_rows = []
with torch.no_grad():
    for R in settings["rf_features"]:
        for s in range(settings["rf_seeds"]):
            system_r = small.to_dsf(u_small, "random", num_features=R, seed=s)
            err = (dsflib.materialize_phi(system_r) - phi_exact).abs().max().item()
            assert system_r.n == R
            rf_rows.append(dict(R=R, seed=s, error=err))
rf = (pd.DataFrame(rf_rows).groupby("R")["error"].agg(["mean", "min", "max"])
      .reset_index())
slope = np.polyfit(np.log(rf["R"]), np.log(rf["mean"]), 1)[0]
show_table(rf, digits=3, caption=f"max |Φ_R − Φ| for R random features, "
                                 f"over {settings['rf_seeds']} seeds")
print(f"log-log slope of the mean error against R: {slope:.2f} "
      "(Monte Carlo rate: -0.5)")
assert -0.75 < slope < -0.25, slope
assert rf["mean"].iloc[-1] < rf["mean"].iloc[0] / 4

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Error max |Φ̂ − Φ| of the finite-state approximations of softmax attention against the state expansion n: Taylor features of order p = 0 to 4 and random features with n = R (mean over seeds, band from min to max); both axes logarithmic.", "name": "fig-softmax-attention-approximation"}, "image": {"alt": "Log-log plot of the approximation error against the state expansion n for Taylor features (points labelled p = 0 to 4) and for random features (a line with a shaded min-to-max band)."}}
fig, ax = plt.subplots(figsize=(7.5, 4))
ax.plot(taylor_table["n"], taylor_table["error"], "o-",
        label="Taylor, order p = 0..4")
for _, row in taylor_table.iterrows():
    ax.annotate(f"p={row['p']:.0f}", (row["n"], row["error"]),
                textcoords="offset points", xytext=(5, 4), fontsize=8)
ax.plot(rf["R"], rf["mean"], "s-",
        label=f"random features, n = R (mean of {settings['rf_seeds']} seeds)")
ax.fill_between(rf["R"], rf["min"], rf["max"], alpha=0.2, color="C1",
                label="random features, min to max")
ax.set(xscale="log", yscale="log", xlabel="state expansion n (N = n d)",
       ylabel=r"$\max |\hat\Phi - \Phi|$",
       title=f"finite-state approximations of softmax attention (m={m}, L={L_small})")
ax.legend(fontsize=8)
caption(fig, label)
plt.show()

# %%
taylor_n2 = taylor_table.set_index("p").loc[2]
print(f"Taylor p=2 (n={taylor_n2['n']:.0f}): error {taylor_n2['error']:.3g}")
print(f"random features R={rf['R'].iloc[-1]}: mean error {rf['mean'].iloc[-1]:.3g}")
assert taylor_n2["error"] < rf["mean"].iloc[-1]

# %% [markdown]
# In this regime of small $|q^\top k|$ the Taylor features are far more economical: order 2, with
# $n = 1 + m + m^2$ (the state of Based's second-order expansion {cite:p}`arora2024based`), beats
# the largest number of random features tried (the assertion above checks it on every run).
# The fitted slope of the random-feature curve printed above is asserted to lie between $-3/4$ and
# $-1/4$, around the Monte Carlo rate $-1/2$; at that rate every further digit of accuracy costs a
# hundred times more state.
#
# ## The state is the bottleneck: rank of the past-to-future block
#
# In {doc}`dsf` the block of $\Phi$ that maps the past $u_{<t}$ to the future $y_{\ge t}$ factors through
# $h_{t-1}$, so its rank is at most $N$. For softmax attention there is no finite $N$ and the block is
# generically of full rank. A Taylor DSF is capped. In fact it is capped below $N$: $x^{\otimes r}$ is a
# symmetric tensor with only $\binom{m+r-1}{r}$ distinct entries, so the order-$p$ features span at most
# $\sum_{r \le p}\binom{m+r-1}{r} = \binom{m+p}{p}$ dimensions, and the rank is at most $d\binom{m+p}{p} \le N$
# (table and {numref}`fig-softmax-attention-rank` below).

# %%
t_split = L_small // 2
blocks = {"softmax (exact)": dsflib.past_to_future(phi_exact, t_split)[0]}
for p, phi_p in phi_taylor.items():
    blocks[f"Taylor p={p}"] = dsflib.past_to_future(phi_p, t_split)[0]
full = min(blocks["softmax (exact)"].shape)
rank_rows, sv_rows = [], []
for name, block in blocks.items():
    rank = torch.linalg.matrix_rank(block).item()
    row = {"model": name, "n": "inf", "N": "inf", "d*C(m+p,p)": "-", "rank": rank}
    if name.startswith("Taylor"):
        p = int(name.split("=")[1])
        bound = small_d * math.comb(m + p, p)
        row.update({"n": taylor[p].n, "N": taylor[p].N, "d*C(m+p,p)": bound})
        assert rank <= taylor[p].N and rank == min(bound, full), (name, rank, bound)
    else:
        assert rank == full, rank
    rank_rows.append(row)
    sv_rows += [dict(index=i + 1, value=v.item(), model=name)
                for i, v in enumerate(torch.linalg.svdvals(block))]
show_table(pd.DataFrame(rank_rows).rename(columns={"d*C(m+p,p)": "$d\\binom{m+p}{p}$"}),
           caption=f"Rank of the past-to-future block "
                   f"{tuple(blocks['softmax (exact)'].shape)}, "
                   f"split at t={t_split} (d={small_d}, m={m})");

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Singular values of the past-to-future block of Φ for exact softmax attention (thick grey) and the order-p Taylor DSFs: each Taylor spectrum falls off a cliff to rounding level after d·C(m+p, p) values, the exact spectrum is full but decays steeply.", "name": "fig-softmax-attention-rank"}, "image": {"alt": "Log-scale plot of singular values against their index: a thick grey exact softmax curve decaying smoothly, and Taylor curves of orders 0 to 4 that each drop abruptly at a different index."}}
sv_table = pd.DataFrame(sv_rows)
exact_sv = sv_table[sv_table["model"] == "softmax (exact)"]
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(exact_sv["index"], exact_sv["value"], color="black", lw=4, alpha=0.35,
        label="softmax (exact)")
sns.lineplot(sv_table[sv_table["model"] != "softmax (exact)"], x="index", y="value",
             hue="model", marker="o", markersize=4, ax=ax)
ax.set(yscale="log", ylim=(1e-18, None), xlabel="singular value index",
       ylabel="singular value",
       title=f"past-to-future block of $\\Phi$ (split at t={t_split})")
ax.legend(fontsize=8)
caption(fig, label)
plt.show()

# %% [markdown]
# The exact block has full rank, as many independent directions as the block has columns. The Taylor
# DSFs stop at $d\binom{m+p}{p}$, a cliff to rounding level in the singular values. The exact spectrum
# is full but decays steeply, at a rate set by the size of $q^\top k$, and that decay is what lets a
# small finite state approximate softmax attention well here. Larger scores $|q^\top k|/\sqrt{m}$ make
# the neglected Taylor terms larger, so the same accuracy needs a higher order and a state that grows
# like $m^p$. No finite order is exact for every input: in that sense softmax attention has $N = \infty$.
# The paper's abstract {cite:p}`sieber2024dsf` promises "principled comparisons between softmax attention and other model
# classes, discussing the theoretical conditions under which softmax attention can be approximated". Its
# formal statement is Lemma 1 (§3.2.1, proof in App. C): softmax attention is separable attention with an
# infinite-dimensional feature vector, so "in the DSF, softmax attention requires $n=\infty$" (§4.1). The
# measurements above are our illustration of it, not the paper's.
#
# ## Related chapters
#
# - {doc}`linear_attention`: the finite-state model with the same DSF and $\phi = \mathrm{elu} + 1$,
#   $n = m$.
# - {doc}`normalized_attention`: the paper's variant with a learned, token-local normalizer.
# - {doc}`dsf`: the framework, $\Phi$ and the past-to-future rank bound.
