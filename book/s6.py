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
# # S6: the selective SSM of Mamba
#
# The LTI SSM of {doc}`lti_ssm` applies one fixed bank of filters to every input. Mamba's S6 layer
# {cite:p}`gu2023mamba` keeps
# the per-channel diagonal recurrence but lets the **step size** depend on the current token. One scalar
# per channel and token, $\Delta_{i,c}$, then sets how much of the state survives *and* how strongly the
# token is written in — the "selection" mechanism. In the DSF this turns the constant $A, B, C$ of the
# LTI SSM into input-dependent $A_i, B_i, C_i$, and it gives the transitions a particular shape: every
# eigenvalue of $A_i$ is a reversed sigmoid of a linear function of $u_i$.
#
# ## The layer
#
# `dsflib.models.s6.S6` is the selective scan alone (no input projection, convolution or gate: the
# form of the authors' released MQAR code; for LRA the paper states "we do not implement the
# pre-convolution on the input or the SiLU activations", App. J.2 {cite:p}`sieber2024dsf`). For an input $u_i \in \mathbb{R}^d$,
#
# $$
# \begin{aligned}
# \Delta_i &= \mathrm{softplus}\big(W_{\Delta,\mathrm{up}} W_{\Delta,\mathrm{down}}\, u_i
# + b_\Delta\big) \in \mathbb{R}^d,\\
# b_i &= W_B\, u_i, \quad c_i = W_C\, u_i \in \mathbb{R}^n,\\
# h^{(c)}_i &= e^{\Delta_{i,c} A_c}\, h^{(c)}_{i-1} + \Delta_{i,c}\, b_i\, u_{i,c},\\
# A_c &= -\mathrm{diag}\big(e^{\mathtt{A\_log}_{c,1}}, \dots, e^{\mathtt{A\_log}_{c,n}}\big),\\
# y_i &= W_{out}\,\big[\, c_i^\top h^{(c)}_i + D_c\, u_{i,c} \,\big]_{c=1}^{d}.
# \end{aligned}
# $$ (eq-s6-layer)
#
# The parameters are `W_delta_down` ($r \times d$, with the low rank $r$ = `dt_rank` $= \lceil d/16 \rceil$),
# `W_delta_up` ($d \times r$, its bias is $b_\Delta$), `W_B`, `W_C` ($n \times d$), `A_log` ($d \times n$,
# initialised S4D-real: $A_c = -\mathrm{diag}(1, 2, \dots, n)$), `D` ($d$) and `W_out` ($d \times d$). Each channel
# $c$ carries its own $n$-dimensional state $h^{(c)}_i$; $b_i$ and $c_i$ are shared by all channels. The
# transition is the exact (zero-order-hold) discretisation $e^{\Delta A}$ of the continuous-time rates
# $A_c$, the input term the simpler Euler step $\Delta b$, as in Mamba's kernel. In `dsflib` the
# step sizes, rates and the scan's inputs are computed in one method (the state index $k$ plays the
# role of the key dimension, $c_i$ of the query and $b_i$ of the key):
#
# ```{literalinclude} ../dsflib/models/s6.py
# :pyobject: S6._scan_inputs
# :dedent: 4
# :caption: `dsflib/models/s6.py` — $\Delta_i$, $\log$ of the transitions, $b_i$ and $c_i$
# ```
#
# ## Its DSF form
#
# The paper's DSF form of S6 is eq. 19 (derived in App. E) {cite:p}`sieber2024dsf`: $\Lambda_i = e^{-(\Delta_i\otimes\mathbb{I}_n)\odot A}$,
# $B_i = \Delta_i \otimes b_i$, $C_i = \mathbb{I}_d \otimes c_i^\top$ with $\Delta_i = \mathrm{diag}(\mathrm{softplus}(W_\Delta(W_u u_i)+b_\Delta))$;
# below it is written out for `dsflib`'s layer, whose rates carry the sign ($A_c < 0$) and which adds
# $W_{out}$ and the skip $D$.
#
# Stack the channel states as in every chapter, $h_i = [h^{(1)}_i; \dots; h^{(d)}_i] \in \mathbb{R}^{nd}$.
# The transition acts on block $c$ with the diagonal matrix $e^{\Delta_{i,c} A_c}$; the input term puts
# $\Delta_{i,c}\, u_{i,c}\, b_i$ into block $c$, which is the $c$-th column of $I_d \otimes b_i$ scaled by
# $\Delta_{i,c}$; the read-out takes $c_i^\top$ of block $c$, i.e. applies $I_d \otimes c_i^\top$, and then
# $W_{out}$. So
#
# $$
# \begin{aligned}
# A_i &= \mathrm{blockdiag}_c\big(e^{\Delta_{i,c} A_c}\big) &&\in \mathbb{R}^{nd \times nd} \text{ (diagonal)},\\
# B_i &= (I_d \otimes b_i)\, \mathrm{diag}(\Delta_i) &&\in \mathbb{R}^{nd \times d},\\
# C_i &= W_{out}\, (I_d \otimes c_i^\top) &&\in \mathbb{R}^{d \times nd},\\
# D_i &= W_{out}\, \mathrm{diag}(D) &&\in \mathbb{R}^{d \times d},
# \end{aligned}
# \qquad N = n\,d .
# $$ (eq-s6-dsf)
#
# All four matrices depend on the input through $\Delta_i$, $b_i$ and $c_i$ — only $D_i$ does not. Note the
# **coupling**: $\Delta_i$ enters both $A_i$ (as $e^{\Delta A}$) and $B_i$ (as a factor $\Delta$). Without
# $W_{out}$, every matrix in {eq}`eq-s6-dsf` is block diagonal over channels, so the blocks of $\Phi$
# ({eq}`eq-phi`) are diagonal $d \times d$ matrices,
#
# $$
# \begin{aligned}
# \Phi^{\mathrm{SSM}}_{ij} &= \mathrm{diag}_c\Big( c_i^\top\, e^{A_c \sum_{k=j+1}^{i} \Delta_{k,c}}\,
# b_j\, \Delta_{j,c} \Big) + [i = j]\,\mathrm{diag}(D),\\
# \Phi_{ij} &= W_{out}\, \Phi^{\mathrm{SSM}}_{ij},
# \end{aligned}
# $$ (eq-s6-phi)
#
# and all mixing across channels happens in $W_{out}$.

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes (still cheap here)
seed = 0

# %%
import pprint
import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.models.linear_attention import LinearAttention
from dsflib.models.s6 import S6
from dsflib.plotting import (book_style, caption, phi_block_norms, phi_heatmap,
                              transition_heatmap)
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(batch=2, length=40, d=4, n=4, demo_length=40),
    "paper": dict(batch=4, length=96, d=16, n=16, demo_length=64),
})
info = run_info(profile, seed)
label = run_label(info)
print(textwrap.fill(label, 88))
pprint.pprint(settings, width=88, compact=True)

# %% [markdown]
# In `dsflib` this DSF is built by `to_dsf`, from the same quantities as the forward pass;
# the checks below compare the two:
#
# ```{literalinclude} ../dsflib/models/s6.py
# :pyobject: S6.to_dsf
# :dedent: 4
# :caption: `dsflib/models/s6.py` — `S6.to_dsf`
# ```
#
# ## The layer is its DSF
#
# Mamba initialises $b_\Delta$ so that $\Delta \in [10^{-3}, 10^{-1}]$; every transition is then within a
# few percent of one, and a check at that point would hardly exercise $A_i$. We therefore draw
# $b_\Delta$ with step sizes of order one and perturb the rates `A_log` before comparing the layer with
# the recurrence and with $\Phi u$ of its DSF, in double precision.

# %%
torch.manual_seed(seed)
d, n, L = settings["d"], settings["n"], settings["length"]
layer = S6(d, n=n).double().eval()
with torch.no_grad():
    layer.W_delta_up.bias.normal_(0.0, 0.5)
    layer.A_log.add_(0.3 * torch.randn_like(layer.A_log))
generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(settings["batch"], L, d, generator=generator, dtype=torch.float64)

report = verify_layer(layer, u)
print(*str(report).split(", "), sep="\n")
assert report.ok(1e-9), report
print(f"dt_rank = {layer.dt_rank}, N = n*d = {n}*{d} = {report.N}")

# %% [markdown]
# ## No channel mixing inside the SSM
#
# `to_dsf(u, include_output_projection=False)` returns the DSF of the selective scan alone, before
# $W_{out}$. By {eq}`eq-s6-phi` its $\Phi$ blocks must be exactly diagonal, and the full $\Phi$ must be
# $W_{out}$ times them ({numref}`fig-s6-phi`):

# %%
with torch.no_grad():
    ssm_only = layer.to_dsf(u, include_output_projection=False)
    phi_ssm = dsflib.materialize_phi(ssm_only)  # (b, L, L, d, d)
    phi_full = dsflib.materialize_phi(layer.to_dsf(u))
off = ~torch.eye(d, dtype=torch.bool)
off_max = phi_ssm[..., off].abs().max().item()
diag_max = torch.diagonal(phi_ssm, dim1=-2, dim2=-1).abs().max().item()
projection_error = (phi_full - layer.W_out.weight.detach() @ phi_ssm).abs().max().item()
print(f"before W_out: max |off-diagonal entry of Phi_ij| = {off_max:.1e} "
      f"(max |diagonal entry| = {diag_max:.2f})")
print(f"max |Phi_ij - W_out Phi^SSM_ij| = {projection_error:.1e}")
print(f"max off-diagonal entry with W_out: {phi_full[..., off].abs().max().item():.2f}")
assert off_max == 0.0 and projection_error < 1e-12
assert phi_full[..., off].abs().max() > 1e-3

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The first eight tokens of Φ of S6 (the top-left 8d × 8d corner): before W_out (left) every d × d block Φ_ij is diagonal, so Φ is d interleaved scalar attention matrices, one per channel; W_out (right) fills in the blocks.", "name": "fig-s6-phi"}, "image": {"alt": "Two signed heatmaps of the top-left corner of Phi for S6, eight tokens by eight tokens with d by d blocks: on the left only the diagonal of each block is non-zero, on the right the blocks are full."}}
zoom = min(8, L)  # the first tokens, so that the d x d blocks are visible
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
phi_heatmap(phi_ssm[0, :zoom, :zoom], axes[0],
            title=r"S6 before $W_{out}$: every block $\Phi_{ij}$ diagonal")
phi_heatmap(phi_full[0, :zoom, :zoom], axes[1],
            title=r"S6 with $W_{out}$: $\Phi_{ij} = W_{out}\Phi^{SSM}_{ij}$")
fig.suptitle(f"first {zoom} of L={L} tokens, d={d}", fontsize=10)
fig.tight_layout(rect=(0, 0, 1, 0.95))
caption(fig, label)
plt.show()

# %% [markdown]
# On the left, each $d \times d$ block is a diagonal: $\Phi$ is a set of $d$ interleaved scalar
# "attention matrices", one per channel. On the right, $W_{out}$ fills in the blocks. (The figure
# shows the first tokens only; the check above covers all of $\Phi$.)
#
# ## Transitions are reversed sigmoids
#
# Write $z_{i,c} = (W_{\Delta,\mathrm{up}} W_{\Delta,\mathrm{down}} u_i + b_\Delta)_c$ for the pre-activation of the
# step size, and $\alpha_{c,k} = e^{\mathtt{A\_log}_{c,k}} > 0$ for the rates, so that $A_c = -\mathrm{diag}(\alpha_c)$.
# For any $\alpha > 0$,
#
# $$
# e^{-\alpha\, \mathrm{softplus}(z)} = \big(1 + e^{z}\big)^{-\alpha} = \sigma(-z)^{\alpha},
# $$ (eq-s6-reversed-sigmoid)
#
# since $\mathrm{softplus}(z) = \log(1 + e^z)$ and $1/(1 + e^{z}) = \sigma(-z)$. Hence every diagonal entry
# of $A_i$ — every eigenvalue — is
#
# $$
# (A_i)_{(c,k)} = e^{\Delta_{i,c} A_{c,k}} = \sigma(-z_{i,c})^{\alpha_{c,k}},
# $$ (eq-s6-eigenvalues)
#
# a *reversed* sigmoid of a linear projection of the current token, raised to a learned power. A large
# $z$ closes the gate ($\to 0$), a very negative $z$ opens it ($\to 1$). This is the paper's eq. 23
# {cite:p}`sieber2024dsf` (§4.3, App. I, there for one shared rate $A = a\cdot\mathbb{I}_{nd}$), and it motivates the paper's qLSTM variant:
# "we compare the original qLSTM state transition (8) and the S6-inspired state transition 23" (§4.3;
# {doc}`qlstm`, a later chapter). First the identity itself, on a grid of $z$ and several powers
# ({numref}`fig-s6-reversed-sigmoid`):

# %%
z = torch.linspace(-15.0, 15.0, 3001, dtype=torch.float64)
rows = []
for alpha in (0.25, 0.5, 1.0, 2.0, 4.0, 16.0):
    lhs = torch.exp(-alpha * F.softplus(z))
    rhs = torch.sigmoid(-z) ** alpha
    rel = ((lhs - rhs).abs() / rhs).max().item()
    rows.append(dict(alpha=alpha, max_rel_diff=rel))
    assert rel < 1e-13, (alpha, rel)
show_table(pd.DataFrame(rows).rename(columns={
    "alpha": "α", "max_rel_diff": "max relative |e^(−α softplus z) − σ(−z)^α|"}),
    digits=3, caption="The reversed-sigmoid identity on a grid of z")
ordinary = (torch.exp(-F.softplus(z)) - torch.sigmoid(z)).abs().max().item()
print(f"for contrast, the ordinary sigmoid: max |exp(-softplus(z)) - sigmoid(z)| "
      f"= {ordinary:.2f}")
assert ordinary > 0.5

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The reversed-sigmoid identity: e^{−α softplus(z)} (lines) and σ(−z)^α (markers) coincide for every power α; the transition eigenvalue falls from 1 to 0 as z grows.", "name": "fig-s6-reversed-sigmoid"}, "image": {"alt": "Four decreasing sigmoid-shaped curves of the transition eigenvalue against z, for powers 0.5, 1, 2 and 4, each with hollow markers lying exactly on the curve."}}
z_plot = torch.linspace(-6.0, 6.0, 241, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(7, 3.8))
for color, alpha in zip(sns.color_palette("viridis", 4), (0.5, 1.0, 2.0, 4.0)):
    ax.plot(z_plot, torch.exp(-alpha * F.softplus(z_plot)), color=color, lw=2,
            label=rf"$e^{{-\alpha\,\mathrm{{softplus}}(z)}}$, $\alpha={alpha:g}$")
    ax.plot(z_plot[::12], torch.sigmoid(-z_plot[::12]) ** alpha, "o", color=color,
            ms=4, mfc="none")
ax.plot([], [], "o", color="gray", mfc="none", label=r"$\sigma(-z)^\alpha$ (markers)")
ax.set(xlabel="z", ylabel="transition eigenvalue",
       title="the two sides of the reversed-sigmoid identity")
ax.legend(fontsize=8)
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# And on the layer: the diagonal of every $A_i$ returned by `to_dsf` against
# $\sigma(-z_{i,c})^{\alpha_{c,k}}$, with $z$ computed from the layer's own projections:

# %%
with torch.no_grad():
    system = layer.to_dsf(u)
    z_layer = layer.W_delta_up(layer.W_delta_down(u))  # (b, L, d)
    alpha = torch.exp(layer.A_log)  # (d, n)
    # state index (channel, k):
    predicted = (torch.sigmoid(-z_layer)[..., None] ** alpha).flatten(-2)
eig_error = ((system.A - predicted).abs() / predicted).max().item()
print(f"max relative |A_i - sigmoid(-z_i)^alpha| over {system.A.numel()} eigenvalues: "
      f"{eig_error:.1e}")
assert eig_error < 1e-12

# %% [markdown]
# ## $nd$ decay rates, not one
#
# An attention-type model (see {doc}`linear_attention`) has $A_i = a_i I$: one decay per head and token.
# S6 has $N = nd$ diagonal entries and, since $\Delta_{i,c}$ differs per channel and $\alpha_{c,k}$ per state
# entry, generically $nd$ *different* ones at every token. We count the distinct eigenvalues of each
# $A_i$ for S6 and for a linear attention layer with the same state size:

# %%
torch.manual_seed(seed)
attention = LinearAttention(d, n=n).double()
with torch.no_grad():
    attention_dsf = attention.to_dsf(u)
distinct_s6 = [torch.unique(system.diag_A()[b, i]).numel()
               for b in range(u.shape[0]) for i in range(L)]
distinct_att = [torch.unique(attention_dsf.diag_A()[b, i]).numel()
                for b in range(u.shape[0]) for i in range(L)]
show_table(pd.DataFrame([
    {"model": "S6", "N": system.N, "min distinct eigenvalues per A_i": min(distinct_s6),
     "max": max(distinct_s6)},
    {"model": "linear attention", "N": attention_dsf.N,
     "min distinct eigenvalues per A_i": min(distinct_att), "max": max(distinct_att)},
]), caption="Distinct eigenvalues of $A_i$, over all tokens and sequences")
assert min(distinct_s6) == n * d and max(distinct_att) == 1

# %% [markdown]
# Same state size, but S6 gives every state entry its own, input-dependent time scale, while attention
# moves the whole state with one number. Within one channel the $n$ entries are tied together — they are
# powers $\sigma(-z_{i,c})^{\alpha_{c,k}}$ of one gate — so what varies freely with the input is one scalar
# per channel, $d$ in all, each seen at $n$ time scales.
#
# ## Selectivity: tokens that reset the state, tokens that are skipped
#
# The coupling of $A_i$ and $B_i$ through $\Delta$ is what makes S6 selective. For one channel and one
# state entry, the update is $h_i = e^{-\alpha\Delta_i} h_{i-1} + \Delta_i\, b_i u_i$:
#
# - $\Delta_i \gg 1/\alpha$: the transition is $\approx 0$ and the input weight large — the token **resets**
#   the state and replaces it with itself; everything before it is cut off from everything after it.
# - $\Delta_i \approx 0$: the transition is $\approx 1$ and the input weight $\approx 0$ — the token is
#   **skipped**: the state passes through unchanged, as if the token were not there.
#
# To see both, we hand-set the step-size projection so that the first input coordinate controls $\Delta$:
# $W_{\Delta,\mathrm{down}} = e_1^\top$, positive $W_{\Delta,\mathrm{up}}$ and negative biases, so
# $z_{i,c} = w_c\, u_{i,1} + b_{\Delta,c}$. A background of small random tokens gives moderate steps; two
# tokens with $u_{i,1} = +4$ ("reset" tokens) and one with $u_{i,1} = -4$ (a "skip" token) are planted
# ({numref}`fig-s6-selectivity`).

# %%
torch.manual_seed(seed)
L_demo = settings["demo_length"]
demo = S6(d, n=n, dt_rank=1).double().eval()
with torch.no_grad():
    demo.W_delta_down.weight.zero_()
    demo.W_delta_down.weight[0, 0] = 1.0
    demo.W_delta_up.weight.copy_(2.0 + torch.rand(d, 1, dtype=torch.float64))
    demo.W_delta_up.bias.copy_(torch.linspace(-2.0, 0.0, d))
generator_demo = torch.Generator().manual_seed(seed + 2)
u_demo = 0.5 * torch.randn(1, L_demo, d, generator=generator_demo, dtype=torch.float64)
resets, skip = [L_demo * 3 // 10, L_demo * 7 // 10], L_demo // 2
u_demo[0, resets, 0] = 4.0
u_demo[0, skip, 0] = -4.0

with torch.no_grad():
    delta_demo = F.softplus(demo.W_delta_up(demo.W_delta_down(u_demo)))[0]  # (L, d)
    demo_ssm = demo.to_dsf(u_demo, include_output_projection=False)
    phi_demo = dsflib.materialize_phi(demo_ssm)[0]
A_demo = demo_ssm.A[0].reshape(L_demo, d, n)
reset_deltas = [round(delta_demo[r, 0].item(), 2) for r in resets]
print(f"Delta_(i,1): reset tokens {reset_deltas}, "
      f"skip token {delta_demo[skip, 0].item():.1e}, "
      f"median of the rest {delta_demo[:, 0].median().item():.2f}")
print(f"largest eigenvalue of A_i at the reset tokens: "
      f"{[f'{A_demo[r].max().item():.1e}' for r in resets]}")
print(f"smallest eigenvalue of A_i at the skip token: {A_demo[skip].min().item():.6f}")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Selectivity in channel 1 of the hand-set S6 layer: the step size Δ_{i,1} (top, log scale) and the n eigenvalues σ(−z_{i,1})^{α_{1,k}} of A_i in that channel (bottom); at the reset tokens (red bands) all eigenvalues collapse towards 0, at the skip token (blue band) they all sit at 1.", "name": "fig-s6-selectivity"}, "image": {"alt": "Two stacked plots against the token index: the step size on a log scale with two spikes at the reset tokens and a dip at the skip token, and below four eigenvalue curves that drop to near zero at the red reset bands and rise to one at the blue skip band."}}
fig, axes = plt.subplots(2, 1, figsize=(9, 5.2), sharex=True,
                         gridspec_kw=dict(height_ratios=[1, 2]))
tokens = torch.arange(L_demo)
axes[0].semilogy(tokens, delta_demo[:, 0], "k.-", lw=1)
axes[0].set(ylabel=r"$\Delta_{i,1}$",
            title="selectivity in channel 1: step size and the eigenvalues of $A_i$")
for k in range(n):
    power = demo.A_log[0, k].exp().item()
    axes[1].plot(tokens, A_demo[:, 0, k], ".-", lw=1,
                 label=rf"$k={k + 1}$, $\alpha={power:.0f}$")
axes[1].set(xlabel="token i", ylabel=r"$\sigma(-z_{i,1})^{\alpha_{1,k}}$",
            ylim=(-0.03, 1.03))
axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
for ax in axes:
    for r in resets:
        ax.axvline(r, color="tab:red", alpha=0.4, lw=3)
    ax.axvline(skip, color="tab:blue", alpha=0.4, lw=3)
axes[0].text(resets[0], axes[0].get_ylim()[1], " reset", color="tab:red", va="top",
             fontsize=8)
axes[0].text(skip, axes[0].get_ylim()[1], " skip", color="tab:blue", va="top",
             fontsize=8)
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# At a reset token all $n$ eigenvalues of the channel collapse to nearly zero together (the higher powers
# $\alpha$ even further); at the skip token they all sit at one. In between, the background tokens move the
# transitions up and down continuously — every token is a little of both. In $\Phi$ (before $W_{out}$), a
# reset separates the blocks before it from the outputs after it, and a skipped token's column below the
# diagonal vanishes (its diagonal block keeps only the feed-through $D$); {numref}`fig-s6-reset-skip`
# shows both:

# %%
norms = phi_demo.flatten(-2).norm(dim=-1)  # ||Phi_ij||_F, (L, L)
r0, r1 = resets
# outputs from the first reset on, inputs before it:
across_reset = norms[r0:r1, :r0].max().item()
# the same inputs, read just before the reset:
before_reset = norms[r0 - 1, : r0 - 1].max().item()
skip_column = norms[skip + 1 :, skip].max().item()
neighbour_column = norms[skip + 1 :, skip - 1].max().item()
print(f"max ||Phi_ij|| across the reset at {r0} (j < {r0} <= i < {r1}): "
      f"{across_reset:.1e}")
print(f"  vs {before_reset:.1e} just before it")
print(f"max ||Phi_i,{skip}|| below the diagonal (skipped token): {skip_column:.1e} "
      f"vs {neighbour_column:.1e} for token {skip - 1}")
# two decades down:
assert across_reset < 1e-2 * before_reset and skip_column < 1e-2 * neighbour_column

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The hand-set S6 layer before W_out: eigenvalues of A_i for every state entry (left; dark columns at the reset tokens, a bright column at the skip token) and the log10 block norms of Φ (right; blocks across a reset are cut off, the skipped token's column below the diagonal is empty).", "name": "fig-s6-reset-skip"}, "image": {"alt": "Left: heatmap of transition eigenvalues, state entries by tokens, with dark vertical lines at two reset tokens and a bright line at the skip token. Right: lower-triangular heatmap of log block norms of Phi with dark rectangles below the reset tokens and an empty column at the skip token."}}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
transition_heatmap(demo_ssm, axes[0],
                   title="eigenvalues of $A_i$ (rows: channel-major state entries)")
phi_block_norms(phi_demo, axes[1], title=r"$\log_{10}\|\Phi^{SSM}_{ij}\|_F$: "
                                         "cut at resets, gap at the skip")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# An LTI SSM cannot do either: its $\Phi$ is the same Toeplitz matrix for every input. Attention can do
# something similar only through its normaliser, with one scalar for the whole state ({doc}`equivalences`
# works out exactly when the two coincide).
#
# ## Where this goes next
#
# {doc}`ssd` restricts S6 to one decay per head — Mamba-2's simplification — and {doc}`equivalences` shows
# that SSD is S6 with tied decays and relates both to linear attention. The reversed-sigmoid form of the
# transitions returns in {doc}`qlstm` (a reversed-sigmoid forget gate); {doc}`rglru` uses a sigmoid gate
# too, $\sigma(\Lambda)^{c\, r_i}$ {cite:p}`de2024griffin`, but with the input in the exponent
# instead. The general tools used here
# are in {doc}`dsf`; the time-invariant baseline is {doc}`lti_ssm`.
