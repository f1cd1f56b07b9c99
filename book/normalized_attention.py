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
# # Normalized attention
#
# In {doc}`linear_attention` the transition $A_i = \eta_{i-1}/\eta_i$ is the *only* time variation of
# the memory, and it is a by-product: $\eta_i = \phi(q_i)^\top \sum_{j \le i}\phi(k_j)$ is there to make
# the attention weights sum to one. The DSF view suggests turning it around: treat $\eta_i$ as a
# design choice. The paper's *normalized attention* (eq. 22, §4.2: "Inspired by S6")
# {cite:p}`sieber2024dsf` — S6 being the selective SSM of Mamba {cite:p}`gu2023mamba`, the
# subject of {doc}`s6` — drops the feature map
# and learns the normalizer directly from the current token, $\eta(u_i) = e^{W_\eta u_i}$ with
# $W_\eta \in \mathbb{R}^{1\times d}$; `dsflib` writes it $\eta_i = f(W_\eta u_i + b_\eta)$, with a bias and the
# alternatives $f$ of App. H. The transition then becomes a
# learned, input-selective gate, much like the step size of an SSM, while the read-out remains
# attention's $q_i^\top k_j$.
#
# ## The layer
#
# `dsflib.models.NormalizedAttention`, with $H$ heads, keys and queries of size $n$ per head, $d/H$
# value channels per head and one normalizer per head:
#
# $$
# \begin{aligned}
# q_i &= W_Q u_i,\quad k_i = W_K u_i,\quad v_i = W_V u_i,\\
# y_i &= W_O \Big[\frac{1}{\eta_i} \sum_{j \le i} (q_i^\top k_j)\, v_j\Big]_{\text{heads}},\\
# \eta_i &= f(W_\eta u_i + b_\eta) > 0,
# \end{aligned}
# $$ (eq-normalized-attention-layer)
#
# with $f \in \{\exp, \mathrm{softplus}, \mathrm{sigmoid}\}$ (the argument `norm`). There is no kernel
# (the identity feature map) and no $1/\sqrt{n}$ scale. The authors' released MQAR code implements
# $f = \exp$ only. The paper compares the three, eqs. 22, 29 and 30, on LRA Image
# {cite:p}`tay2021lra` and MQAR {cite:p}`arora2024zoology` ($L = 512$, 64 KV pairs) in App. H,
# Table 2: "All three normalization schemes perform similarly on both
# tasks, however the exponential normalization (22) yields the best performance". The table's numbers
# are not available to us, so this chapter compares what the three choices do to the DSF, not how they
# train. In `dsflib` the normalizer is two short methods:
#
# ```{literalinclude} ../dsflib/models/normalized_attention.py
# :pyobject: NormalizedAttention.normalizer
# :lines: 1,3-
# :dedent: 4
# :caption: `dsflib/models/normalized_attention.py` — $\eta_i = f(W_\eta u_i + b_\eta)$ (docstring omitted)
# ```
#
# ```{literalinclude} ../dsflib/models/normalized_attention.py
# :pyobject: NormalizedAttention._f
# :dedent: 4
# :caption: `dsflib/models/normalized_attention.py` — the three choices of $f$
# ```
#
# ## Its DSF
#
# The derivation is that of {eq}`eq-linear-attention-recurrence` with $\phi = \mathrm{id}$ and the new
# $\eta$. Per head, the normalized memory $S_i = \frac{1}{\eta_i}\sum_{j \le i} v_j k_j^\top$ obeys
# $S_i = \frac{\eta_{i-1}}{\eta_i} S_{i-1} + \frac{1}{\eta_i} v_i k_i^\top$ and is read out as
# $S_i q_i$. Stacked channel-major into $h_i$:
#
# $$
# \begin{aligned}
# A_i &= \frac{\eta_{i-1}}{\eta_i}\, I_N
# = \frac{f(W_\eta u_{i-1} + b_\eta)}{f(W_\eta u_i + b_\eta)}\, I_N,\\
# B_i &= \frac{1}{\eta_i}\big(I_d \otimes k_i\big) W_V,\qquad
# C_i = W_O \big(I_d \otimes q_i^\top\big),\qquad
# D_i = 0,\qquad N = n\,d ,
# \end{aligned}
# $$ (eq-normalized-attention-dsf)
#
# one scalar per head in $A_i$ (with $\eta_{-1} := \eta_0$). For $f = \exp$ the ratio is a single
# exponential and the bias cancels:
#
# $$
# A_i = \exp\!\big(W_\eta (u_{i-1} - u_i)\big)\, I_N \qquad (f = \exp).
# $$ (eq-normalized-attention-exp)
#
# Two things change with respect to linear attention. $A_i$ now depends on *two tokens only*,
# $u_{i-1}$ and $u_i$, not on the query's view of the whole prefix. And the products telescope as
# before, $A_i \cdots A_{j+1} = \eta_j/\eta_i$, against the $1/\eta_j$ of $B_j$:
#
# $$
# \Phi_{ij} = W_O\, \mathrm{blockdiag}_h\!\Big(\frac{q^{(h)\top}_i k^{(h)}_j}{\eta^{(h)}_i}\,
# I_{d/H}\Big)\, W_V, \qquad j \le i .
# $$ (eq-normalized-attention-phi)
#
# The weights no longer sum to one: $\eta_i$ rescales the whole row $i$ by a learned factor of the
# current token, and nothing depends on the distance $i - j$.

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes (still cheap here)
seed = 0

# %%
import dataclasses
import pprint
import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.models.normalized_attention import NORMS, NormalizedAttention
from dsflib.plotting import book_style, caption, phi_figure
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(batch=2, length=32, d=8, n=4, heads=2, logit_scales=[0.5, 1.0, 2.0]),
    "paper": dict(batch=4, length=128, d=16, n=8, heads=4,
                  logit_scales=[0.5, 1.0, 2.0]),
})
info = run_info(profile, seed)
label = run_label(info)
print(textwrap.fill(label, 88))
pprint.pprint(settings, width=88, compact=True)

# %% [markdown]
# In `dsflib` this DSF is built by `to_dsf`, from the same quantities as the forward pass;
# the checks below compare the two:
#
# ```{literalinclude} ../dsflib/models/normalized_attention.py
# :pyobject: NormalizedAttention.to_dsf
# :dedent: 4
# :caption: `dsflib/models/normalized_attention.py` — `NormalizedAttention.to_dsf`
# ```
#
# ## The layer is its DSF, for every $f$
#
# One random layer in double precision; the other two normalizations get *the same* weights
# (including $W_\eta, b_\eta$), so below they differ only in $f$.

# %%
torch.manual_seed(seed)
d, n, heads, L = settings["d"], settings["n"], settings["heads"], settings["length"]
layers = {"exp": NormalizedAttention(d, n=n, heads=heads, norm="exp").double()}
for norm in NORMS[1:]:
    layers[norm] = NormalizedAttention(d, n=n, heads=heads, norm=norm).double()
    layers[norm].load_state_dict(layers["exp"].state_dict())
generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(settings["batch"], L, d, generator=generator, dtype=torch.float64)

print(layers["exp"])
verify_rows = []
for norm, layer in layers.items():
    report = verify_layer(layer, u)
    verify_rows.append({"f": norm, **dataclasses.asdict(report)})
    assert report.ok(1e-9), (norm, report)
    assert (report.N, report.n) == (n * d, n)
show_table(pd.DataFrame(verify_rows).rename(columns={
    "forward_vs_recurrence": "max |forward − recurrence|",
    "forward_vs_phi": "max |forward − Φu|",
    "recurrence_vs_phi": "max |recurrence − Φu|", "scale": "max |y|"}),
    digits=3, caption="The layer against its DSF, three evaluations");

# %% [markdown]
# The outputs are unnormalized sums, so their scale (`max |y|`) grows with $L$; the errors are
# rounding errors at that scale. Next the transition: $A_i = \eta_{i-1}/\eta_i$ with the layer's own
# normalizer for all three $f$; for $\exp$ the closed form {eq}`eq-normalized-attention-exp`; and the
# bias, which cancels for $\exp$ only.

# %%
with torch.no_grad():
    systems = {norm: layer.to_dsf(u) for norm, layer in layers.items()}
    etas = {norm: layer.normalizer(u) for norm, layer in layers.items()}
for norm in NORMS:
    A, eta = systems[norm].A, etas[norm]
    err = ((A[:, 1:] - eta[:, :-1] / eta[:, 1:]).abs().max()).item()
    print(f"f = {norm:8s}: max |A_i - eta_(i-1)/eta_i| = {err:.2e}")
    assert err < 1e-14 and (A > 0).all()
    assert torch.equal(A[:, 0], torch.ones_like(A[:, 0]))

W_eta = layers["exp"].W_eta.weight  # (heads, d)
with torch.no_grad():
    A_formula = torch.exp((u[:, :-1] - u[:, 1:]) @ W_eta.T)
exp_error = (systems["exp"].A[:, 1:] - A_formula).abs().max().item()
print(f"f = exp     : max |A_i - exp(W_eta (u_(i-1) - u_i))| = {exp_error:.2e}")
assert exp_error < 1e-13

# shift the bias by +1 in a copy of each layer:
# A changes for softplus and sigmoid, not for exp
for norm, layer in layers.items():
    shifted = NormalizedAttention(d, n=n, heads=heads, norm=norm).double()
    shifted.load_state_dict(layer.state_dict())
    with torch.no_grad():
        shifted.W_eta.bias.add_(1.0)
        change = (shifted.to_dsf(u).A - systems[norm].A).abs().max().item()
    print(f"f = {norm:8s}: max |A_i(b_eta + 1) - A_i(b_eta)| = {change:.2e}")
    assert (change < 1e-13) if norm == "exp" else (change > 1e-2), (norm, change)

# %% [markdown]
# Finally the blocks: {eq}`eq-normalized-attention-phi` against the materialized $\Phi$ (for $\exp$).

# %%
layer, system = layers["exp"], systems["exp"]
with torch.no_grad():
    phi = dsflib.materialize_phi(system)
    q = layer.W_Q(u).unflatten(-1, (heads, n))
    k = layer.W_K(u).unflatten(-1, (heads, n))
    scores = torch.einsum("bihn,bjhn->bhij", q, k).tril()
    weights = scores / etas["exp"].transpose(1, 2)[..., None]
    W_O = layer.W_O.weight.unflatten(1, (heads, d // heads))  # (d, H, d/H)
    W_V = layer.W_V.weight.unflatten(0, (heads, d // heads))  # (H, d/H, d)
    phi_closed = torch.einsum("bhij,phc,hcq->bijpq", weights, W_O, W_V)
closed_error = (phi - phi_closed).abs().max().item()
row_sums = weights.sum(-1)
print(f"max |Phi_ij - closed form| = {closed_error:.2e}")
print(f"row sums sum_j q_i^T k_j / eta_i: min {row_sums.min().item():.2f}, "
      f"max {row_sums.max().item():.2f} (not a probability distribution)")
assert closed_error < 1e-12

# %% [markdown]
# ## What $\Phi$ looks like
#
# In {numref}`fig-normalized-attention-phi`, each row $i$ of $\Phi$ is the raw inner products $q_i^\top k_j$ scaled by one factor $1/\eta_i$ per head.
# The block norms therefore show horizontal bands (tokens $i$ with small $\eta_i$ read out loudly) on
# top of an otherwise distance-independent pattern: the layer has no built-in forgetting.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Φ of normalized attention (f = exp) at random initialisation: block lower triangular (causal), each block row i the raw scores q_i·k_j scaled by 1/η_i; left the signed Ld × Ld matrix, right the log10 block norms.", "name": "fig-normalized-attention-phi"}, "image": {"alt": "Two heatmaps of Phi for a random normalized attention layer: a signed lower block-triangular matrix, and its log block norms, a lower triangle with horizontal bands."}}
phi_figure(phi[0], label, title=f"Normalized attention, f = exp, random init "
                                f"(L={L}, d={d}, n={n}, heads={heads})")
plt.show()

# %% [markdown]
# ## The transitions $A_i$ for the three normalizations
#
# $A_i$ is a scalar per head times the identity, so that scalar is its eigenvalue. Since every $f$ is
# strictly increasing, $A_i > 1$ exactly when the logit $z_i = W_\eta u_i + b_\eta$ drops,
# $z_i < z_{i-1}$: the *same* tokens for all three $f$, and for a random input about half of them.
# The normalizations differ in how far $A_i$ moves from one. Write
# $\log A_i = \log f(z_{i-1}) - \log f(z_i)$. The slope of $\log f$ is $1$ for $\exp$, and
# $\sigma(z)/\mathrm{softplus}(z)$ resp. $1 - \sigma(z)$, both in $(0, 1)$, for softplus and sigmoid.
# Hence, pointwise for the same logits,
#
# $$
# |\log A_i^{\mathrm{softplus}}| \le |\log A_i^{\exp}|,\qquad
# |\log A_i^{\mathrm{sigmoid}}| \le |\log A_i^{\exp}| .
# $$ (eq-normalized-attention-compression)
#
# Both alternatives behave like $\exp$ for negative logits, and they flatten the transition towards one
# for positive logits (sigmoid saturates at $\eta = 1$). We check this on the input above, for the
# random $W_\eta$ scaled by the factors in the table: larger factors stand for the confident logits a
# trained layer may have.

# %%
stats, scatter = [], []
for scale in settings["logit_scales"]:
    A_scaled = {}
    for norm, layer in layers.items():
        probe = NormalizedAttention(d, n=n, heads=heads, norm=norm).double()
        probe.load_state_dict(layer.state_dict())
        with torch.no_grad():
            probe.W_eta.weight.mul_(scale)
            A_scaled[norm] = probe.to_dsf(u).A[:, 1:]  # A_0 := 1 by convention
            eta = probe.normalizer(u)
        log_A = A_scaled[norm].log()
        stats.append({"W_eta scale": scale, "f": norm,
                      "min A_i": A_scaled[norm].min().item(),
                      "max A_i": A_scaled[norm].max().item(),
                      "mean |log A_i|": log_A.abs().mean().item(),
                      "fraction A_i > 1": (A_scaled[norm] > 1).double().mean().item(),
                      "max eta / min eta": (eta.max() / eta.min()).item()})
    log_exp = A_scaled["exp"].log()
    for norm in ("softplus", "sigmoid"):
        log_f = A_scaled[norm].log()
        # the same tokens have A_i > 1:
        assert torch.equal(log_f > 0, log_exp > 0), norm
        # (eq-normalized-attention-compression):
        assert (log_f.abs() <= log_exp.abs() + 1e-12).all(), norm
        scatter += [dict(scale=f"W_eta x {scale:g}", f=norm, exp=x, other=y)
                    for x, y in zip(log_exp.flatten().tolist(),
                                    log_f.flatten().tolist())]
table = pd.DataFrame(stats)
show_table(table.rename(columns={
    "W_eta scale": "$W_\\eta$ scale", "min A_i": "min $A_i$", "max A_i": "max $A_i$",
    "mean |log A_i|": "mean $\\lvert\\log A_i\\rvert$",
    "fraction A_i > 1": "fraction $A_i > 1$",
    "max eta / min eta": "max $\\eta$ / min $\\eta$"}), digits=3,
    caption=f"$A_i$, $i \\ge 1$, over {A_scaled['exp'].numel()} "
            f"(sequence, token, head) triples; same input and weights")
# identical across f:
assert (table.groupby("W_eta scale")["fraction A_i > 1"].nunique() == 1).all()

# %% [markdown]
# The fraction of expanding steps ($A_i > 1$) is identical across $f$, as it must be (and across the
# scales, which do not change the sign of $z_{i-1} - z_i$), while the spread of
# $A_i$ and the dynamic range of $\eta$ are largest for $\exp$ and shrink for softplus and sigmoid; with
# larger logits the gap widens. In {numref}`fig-normalized-attention-transitions`, on the left, the
# transitions over time for one head; on the right, every
# $\log A_i$ of softplus and sigmoid against that of $\exp$ on the same token: all points lie between the
# diagonal and the horizontal axis, which is {eq}`eq-normalized-attention-compression`.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Left: the transition A_i of head 0 over the first sequence for f = exp, softplus and sigmoid (same weights, log scale). Right: log A_i of softplus and sigmoid against log A_i of exp on the same token, for three scales of W_η; every point lies between the diagonal and the horizontal axis, which is the inequality (eq-normalized-attention-compression) holding on this input.", "name": "fig-normalized-attention-transitions"}, "image": {"alt": "Left: three line plots of A_i against the token index on a log scale, the exp curve swinging furthest from 1. Right: scatter plot of log A_i for softplus and sigmoid against log A_i for exp, all points between the dashed diagonal and the horizontal axis."}}
palette = dict(zip(NORMS, sns.color_palette(n_colors=len(NORMS))))
head_rows = []
for norm in NORMS:
    head_rows += [dict(i=i, A=systems[norm].A[0, i, 0].item(), f=norm)
                  for i in range(1, L)]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.0),
                         gridspec_kw=dict(width_ratios=[1.5, 1]))
sns.lineplot(pd.DataFrame(head_rows), x="i", y="A", hue="f", style="f", markers=True,
             dashes=False, palette=palette, ax=axes[0])
axes[0].axhline(1.0, color="grey", lw=0.8, ls="--")
axes[0].set(yscale="log", xlabel="token i",
            ylabel=r"$A_i = \eta_{i-1}/\eta_i$ (log scale)",
            title=r"transition of head 0, first sequence (random $W_\eta$)")
sns.scatterplot(pd.DataFrame(scatter), x="exp", y="other", hue="f", style="scale",
                s=22, alpha=0.7, palette=palette, ax=axes[1])
lim = max(abs(x) for row in scatter for x in (row["exp"], row["other"]))
axes[1].plot([-lim, lim], [-lim, lim], color="grey", lw=0.8, ls="--")
axes[1].set(xlabel=r"$\log A_i$ with $f=\exp$",
            ylabel=r"$\log A_i$ with softplus / sigmoid",
            title="same logits, three normalizations")
axes[1].legend(fontsize=8)
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# The pointwise inequality says nothing about training by itself, but it names one concrete difference:
# with the same logits, $\exp$ gives the transition (and hence the per-token read-out scale $1/\eta_i$)
# the widest range, and it is the only one of the three whose $A_i$ depends on $u_{i-1} - u_i$ alone,
# free of the bias. The paper reports that "the exponential normalization (22) yields the best performance"
# (App. H) {cite:p}`sieber2024dsf`; whether this range is the reason
# is not something these measurements can tell.
#
# ## Related chapters
#
# - {doc}`linear_attention`: the same DSF with $\eta_i = \phi(q_i)^\top\sum_{j\le i}\phi(k_j)$, where
#   weights sum to one and $A_i$ depends on the query's view of the whole prefix.
# - {doc}`softmax_attention`: the infinite-state original.
# - {doc}`s6`: the other way to make a transition input-selective, a step size $\Delta_i$ per channel
#   with $A_i = \exp(\Delta_i A)$ strictly inside $(0, 1)$.
# - {doc}`dsf`: the framework and $\Phi$.
