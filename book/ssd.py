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
# # SSD: Mamba-2's scalar-decay SSM
#
# Mamba-2 {cite:p}`dao2024mamba2` simplifies the selective SSM of {doc}`s6` in one place: the transition. Instead of $nd$
# decay factors per token — one per channel and state entry — it uses **one scalar per head**, times the
# identity. This is what allows its "state space duality" (SSD) algorithm: with a scalar decay, the
# layer is a masked attention-like matrix product within chunks, and runs on matrix-multiply hardware.
# In the DSF the restriction is easy to state and to see: $A_i = e^{\Delta_i a}\, I$, the same
# transition *shape* as linear attention, with a different way of computing the scalar.
#
# The paper does not write SSD out in the DSF. It uses SSD as a baseline in its MQAR experiments
# ("we compare S6 and softmax attention to SSD [8], linear attention [14], and normalized attention",
# §4.2) and cites Mamba-2 ([8]) for the restriction itself: "it was shown in [8] that the number of
# parameters in $\Lambda_i$ can be reduced to 1 – similar to attention – without compromising performance"
# (§4.2) {cite:p}`sieber2024dsf`. The DSF form below is therefore ours, derived from S6's eq. 19, and
# checked numerically.
#
# ## The layer
#
# `dsflib.models.ssd.SSD` splits the $d$ channels into $H$ heads of width $p = d/H$ (no input
# projection, convolution or gate, as in the authors' released MQAR code). With $h(c)$ the head of channel $c$ and
# $x^{(h)}_i \in \mathbb{R}^p$ the channels of head $h$ in $u_i$,
#
# $$
# \begin{aligned}
# \Delta_i &= \mathrm{softplus}(W_\Delta\, u_i + b_\Delta) \in \mathbb{R}^H, \qquad
# a_h = -e^{\mathtt{A\_log}_h} < 0,\\
# b_i &= W_B\, u_i, \quad c_i = W_C\, u_i \in \mathbb{R}^n,\\
# S^{(h)}_i &= e^{\Delta_{i,h} a_h}\, S^{(h)}_{i-1} + \Delta_{i,h}\, b_i\, x^{(h)\top}_i
# \in \mathbb{R}^{n \times p},\\
# y_i &= W_{out}\big(\,[\,S^{(h)\top}_i c_i\,]_{h=1}^{H} + D \odot u_i\big),
# \end{aligned}
# $$ (eq-ssd-layer)
#
# with parameters `W_delta` ($H \times d$, bias $b_\Delta$), `A_log` ($H$), `W_B`, `W_C` ($n \times d$), `D` ($d$)
# and `W_out` ($d \times d$). The rates are initialised spread over $a_h \in [-16, -1]$; with a single head,
# $a = -1$ as in the authors' released code. $b_i$ and $c_i$ are shared by all heads. In `dsflib`:
#
# ```{literalinclude} ../dsflib/models/ssd.py
# :pyobject: SSD._scan_inputs
# :lines: 1,4-
# :dedent: 4
# :caption: `dsflib/models/ssd.py` — one decay per head (or per channel with `channel_bias`), docstring omitted
# ```
#
# ## Its DSF form
#
# Column $c$ of $S^{(h)}_i$ is an $n$-vector that only ever sees channel $c$ of the input:
# $S^{(h)}_i[:, c] = e^{\Delta_{i,h} a_h} S^{(h)}_{i-1}[:, c] + \Delta_{i,h}\, b_i\, u_{i,c}$. That is exactly the
# per-channel recurrence of S6 ({eq}`eq-s6-layer`) with the two restrictions
#
# $$
# A_c = a_{h(c)}\, I_n, \qquad \Delta_{i,c} = \Delta_{i,h(c)} .
# $$ (eq-ssd-restriction)
#
# Stacking the columns channel-major, $h_i = [S_i[:, 1]; \dots; S_i[:, d]] \in \mathbb{R}^{nd}$, the S6 matrices
# {eq}`eq-s6-dsf` become
#
# $$
# \begin{aligned}
# A_i &= \mathrm{blockdiag}_h\big(e^{\Delta_{i,h} a_h}\, I_{np}\big) \quad
# \big(H = 1\!: \ A_i = e^{\Delta_i a}\, I_{nd}\big),\\
# B_i &= (I_d \otimes b_i)\, \mathrm{diag}\big(\Delta_{i,h(1)}, \dots, \Delta_{i,h(d)}\big),\\
# C_i &= W_{out}\,(I_d \otimes c_i^\top), \qquad D_i = W_{out}\,\mathrm{diag}(D),
# \end{aligned}
# $$ (eq-ssd-dsf)
#
# with $N = n\,d$. Each head moves its $np$ state entries with one number. Inserting this into $\Phi$
# ({eq}`eq-phi`), the products of transitions collapse to one exponential of a sum, and before $W_{out}$
#
# $$
# \begin{aligned}
# \Phi^{\mathrm{SSM}}_{ij}\Big|_{\text{head } h} &= M^{(h)}_{ij}\, I_p
# + [i = j]\, \mathrm{diag}(D)\big|_{h},\\
# M^{(h)}_{ij} &= (c_i^\top b_j)\; e^{a_h \sum_{k=j+1}^{i} \Delta_{k,h}}\; \Delta_{j,h}
# \quad (j \le i).
# \end{aligned}
# $$ (eq-ssd-phi)
#
# $M^{(h)}$ is an $L \times L$ lower-triangular "attention matrix": scores $c_i^\top b_j$ between a query-like
# $c_i$ and a key-like $b_j$, multiplied by an input-dependent decay mask. Every channel of the head uses
# the same $M^{(h)}$. This is the duality the name refers to, and the form that {doc}`equivalences` sets
# against linear attention.

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
from dsflib.models.s6 import S6
from dsflib.models.ssd import SSD
from dsflib.plotting import (book_style, caption, phi_block_norms, phi_heatmap,
                              transition_heatmap)
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(batch=2, length=48, d=8, n=4, heads=4),
    "paper": dict(batch=4, length=128, d=16, n=16, heads=4),
})
info = run_info(profile, seed)
label = run_label(info)
print(textwrap.fill(label, 88))
pprint.pprint(settings, width=88, compact=True)

# %% [markdown]
# In `dsflib` this DSF is built by `to_dsf`, from the same quantities as the forward pass;
# the checks below compare the two:
#
# ```{literalinclude} ../dsflib/models/ssd.py
# :pyobject: SSD.to_dsf
# :dedent: 4
# :caption: `dsflib/models/ssd.py` — `SSD.to_dsf`
# ```
#
# ## The layer is its DSF
#
# As for S6, we move the step sizes to order one (bias $b_\Delta \sim \mathcal{N}(0, 0.5^2)$) and perturb
# the rates and the skip, so that every term of {eq}`eq-ssd-dsf` matters, and compare the layer with the
# recurrence and with $\Phi u$ in double precision.

# %%
torch.manual_seed(seed)
d, n, H, L = settings["d"], settings["n"], settings["heads"], settings["length"]
layer = SSD(d, n=n, heads=H).double().eval()
with torch.no_grad():
    layer.W_delta.bias.normal_(0.0, 0.5)
    layer.A_log.normal_(0.0, 0.5)
    layer.D.normal_(1.0, 0.5)
generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(settings["batch"], L, d, generator=generator, dtype=torch.float64)

report = verify_layer(layer, u)
print(*str(report).split(", "), sep="\n")
assert report.ok(1e-9), report

# %% [markdown]
# ## One scalar per head
#
# `to_dsf` returns $A$ in the DSF's per-head form, shape `(batch, L, H)` (`dsf.scalar_A` is true);
# head $h$ scales its $N/H = np$ consecutive state entries. We compare it with $e^{\Delta_{i,h} a_h}$ computed from the
# layer's `W_delta` and `A_log`:

# %%
with torch.no_grad():
    system = layer.to_dsf(u)
    delta = F.softplus(layer.W_delta(u))  # (b, L, H)
    a = -torch.exp(layer.A_log)  # (H,)
    expected = torch.exp(delta * a)
scalar_error = (system.A - expected).abs().max().item()
print(f"A: shape {tuple(system.A.shape)}, scalar_A = {system.scalar_A}, "
      f"N = {system.N}, N/H = {system.N // H}")
print(f"max |A_i,h - exp(Delta_i,h a_h)| = {scalar_error:.1e}")
print(f"a = {[round(x, 3) for x in a.tolist()]}")
assert system.scalar_A and system.A.shape == (u.shape[0], L, H) and scalar_error < 1e-14
full = system.diag_A().reshape(u.shape[0], L, H, -1)
assert torch.equal(full, system.A[..., None].expand_as(full))

single = SSD(d, n=n).double()
with torch.no_grad():
    single_dsf = single.to_dsf(u)
    a_single = -torch.exp(single.A_log).item()
    single_expected = torch.exp(F.softplus(single.W_delta(u)) * a_single)
    single_error = (single_dsf.diag_A() - single_expected).abs().max().item()
print(f"one head (default init a = {a_single:g}): "
      f"A_i = exp(Delta_i a) I_{single_dsf.N}, max deviation {single_error:.1e}")
assert a_single == -1.0 and single_error < 1e-14

# %% [markdown]
# ## Per-head attention matrices
#
# By {eq}`eq-ssd-phi`, the blocks of $\Phi$ before $W_{out}$ are diagonal, and below the block diagonal all
# channels of one head carry the same number $M^{(h)}_{ij}$. We check both and then plot $M^{(h)}$ for every
# head ({numref}`fig-ssd-attention`), now for the layer at its **default initialisation** (rates $a_h$ spread over $[-16, -1]$, Mamba's
# step sizes $\Delta \in [10^{-3}, 10^{-1}]$ at zero input).

# %%
torch.manual_seed(seed)
init = SSD(d, n=n, heads=H).double().eval()
p = d // H
with torch.no_grad():
    init_ssm = init.to_dsf(u, include_output_projection=False)
    phi_ssm = dsflib.materialize_phi(init_ssm)[0]  # (L, L, d, d)
off = ~torch.eye(d, dtype=torch.bool)
# Phi_ij[c, c], channels by head:
entries = torch.diagonal(phi_ssm, dim1=-2, dim2=-1).reshape(L, L, H, p)
strict = torch.tril(torch.ones(L, L, dtype=torch.bool), -1)
spread = (entries - entries[..., :1])[strict].abs().max().item()
print(f"before W_out: max off-diagonal |Phi_ij[c, c']| = "
      f"{phi_ssm[..., off].abs().max().item():.1e}")
print(f"max spread of Phi_ij[c, c] within a head (j < i) = {spread:.1e}")
assert phi_ssm[..., off].abs().max() == 0.0
# each entry sums n products, in an order that may depend on the channel: n eps's
eps = torch.finfo(torch.float64).eps
assert spread < 8 * n * eps * max(1.0, entries.abs().max().item())

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The per-head attention matrices M^(h)_ij = (c_i·b_j) e^{a_h ΣΔ} Δ_{j,h} of SSD at its default initialisation (strictly lower part, log10 of the magnitude): the scores are shared by all heads, the decay mask differs per head.", "name": "fig-ssd-attention"}, "image": {"alt": "Four lower-triangular heatmaps, one per head, of the log magnitude of the attention matrix M; the heads differ in how fast the colour darkens away from the diagonal."}}
# (H, L, L): M^(h)_ij for j < i (and M + D on the diagonal)
M = entries[..., 0].permute(2, 0, 1)
fig, axes = plt.subplots(1, H, figsize=(3.2 * H, 3.6), layout="constrained")
for h, ax in enumerate(axes):
    logs = torch.where(strict, M[h].abs().clamp_min(1e-300), torch.nan).log10()
    sns.heatmap(logs.numpy(), ax=ax, cmap="viridis", vmin=-8, vmax=0, square=True,
                cbar=False, xticklabels=L // 4, yticklabels=L // 4)
    ax.set(title=f"head {h + 1}: $a_{h + 1}$ = {-init.A_log[h].exp().item():.0f}",
           xlabel="input token j", ylabel="output token i" if h == 0 else "")
fig.colorbar(axes[-1].collections[0], ax=axes, shrink=0.8,
             label=r"$\log_{10}|M^{(h)}_{ij}|$")
fig.suptitle(r"SSD at initialisation: per-head attention matrices "
             r"$M^{(h)}_{ij} = (c_i^\top b_j)\,e^{a_h\sum\Delta}\,\Delta_{j,h}$ "
             r"(strictly lower part)", fontsize=10)
caption(fig, label)
plt.show()

# %% [markdown]
# The scores $c_i^\top b_j$ are the same for all heads; what differs is the decay mask, whose rate is
# $a_h \Delta_{i,h}$ — the product of the head's rate and its step size, both drawn at initialisation (so the
# order of the heads' memories need not follow $a_h$ alone; the eigenvalue ranges printed in the
# next section say how fast each head forgets on this input). {numref}`fig-ssd-phi` shows $\Phi$
# after $W_{out}$ mixes the channels: its first tokens, where the $d \times d$ blocks are visible,
# and the block norms of all of it.

# %%
with torch.no_grad():
    phi_full = dsflib.materialize_phi(init.to_dsf(u))[0]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Φ of SSD at initialisation after W_out: left the signed first eight tokens (8d × 8d), where W_out fills every d × d block; right the log10 block norms of the whole Φ, lower triangular (causal).", "name": "fig-ssd-phi"}, "image": {"alt": "Left: signed heatmap of the top-left corner of Phi for SSD with full d by d blocks on and below the diagonal. Right: lower-triangular heatmap of log block norms over all tokens."}}
zoom = min(8, L)  # the first tokens, so that the d x d blocks are visible
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
phi_heatmap(phi_full[:zoom, :zoom], axes[0],
            title=rf"SSD: $\Phi$, first {zoom} of L={L} tokens (d={d}, n={n}, H={H})")
phi_block_norms(phi_full, axes[1], title=r"block norms $\log_{10}\|\Phi_{ij}\|_F$")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# ## The transitions over time
#
# $A_i$ is diagonal, so its diagonal entries are its eigenvalues; here there are only $H$ different ones
# per token, $e^{\Delta_{i,h} a_h}$. For one input sequence, at initialisation
# ({numref}`fig-ssd-transitions`):

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The H distinct eigenvalues e^{Δ_{i,h} a_h} of A_i of SSD at initialisation over the first sequence: left one line per head, right the same values as a heatmap (heads × tokens).", "name": "fig-ssd-transitions"}, "image": {"alt": "Left: line plot of each head's transition eigenvalue against the token index, between 0 and 1. Right: heatmap with one row per head and one column per token."}}
A_init = init_ssm.A[0]  # (L, H)
records = [dict(token=i, value=A_init[i, h].item(),
                head=f"head {h + 1} (a = {-init.A_log[h].exp().item():.0f})")
           for h in range(H) for i in range(L)]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6),
                         gridspec_kw=dict(width_ratios=[1.3, 1]))
sns.lineplot(pd.DataFrame(records), x="token", y="value", hue="head", marker="o",
             ms=4, ax=axes[0])
axes[0].set(xlabel="token i", ylabel=r"$e^{\Delta_{i,h} a_h}$", ylim=(0, 1.02),
            title="SSD: the eigenvalue of each head's block of $A_i$")
axes[0].legend(fontsize=8)
transition_heatmap(init_ssm, axes[1])
fig.tight_layout()
caption(fig, label)
plt.show()

# %%
show_table(pd.DataFrame([
    {"head": h + 1, "$a_h$": -init.A_log[h].exp().item(),
     "min over i of $e^{\\Delta_{i,h} a_h}$": A_init[:, h].min().item(),
     "max over i": A_init[:, h].max().item()} for h in range(H)]), digits=3,
    caption="Each head's transition eigenvalue over the first sequence, "
            "at initialisation");

# %% [markdown]
# Each head is selective in the S6 sense — a large $\Delta_{i,h}$ resets all $np$ of its state entries at once,
# a small one lets the token pass unrecorded — but it cannot reset part of its state while keeping the rest.
#
# ## SSD against S6: how rich is the transition?
#
# Both layers have the same state size $N = nd$. They differ in how many numbers describe each $A_i$: S6 has
# $nd$ distinct eigenvalues per token, driven by $d$ input-dependent step sizes and $nd$ learned rates; SSD has
# $H$ of each. Counted on the two DSFs for the same input, with the same $d$ and $n$:

# %%
torch.manual_seed(seed)
s6 = S6(d, n=n).double()
with torch.no_grad():
    s6_dsf = s6.to_dsf(u)


def distinct_eigenvalues(dsf):
    """Number of distinct diagonal entries of A_i, for every sequence and token."""
    A = dsf.diag_A()
    return [torch.unique(A[b, i]).numel()
            for b in range(dsf.batch) for i in range(dsf.length)]


rows = []
models = [(f"SSD (H={H})", layer, system), ("SSD (H=1)", single, single_dsf),
          ("S6", s6, s6_dsf)]
for name, model, dsf in models:
    counts = distinct_eigenvalues(dsf)
    if isinstance(model, SSD):
        steps = model.W_delta.out_features
    else:
        steps = model.W_delta_up.out_features
    rows.append({"model": name, "N = n d": dsf.N,
                 "distinct eigenvalues of A_i (min-max)":
                     f"{min(counts)}-{max(counts)}",
                 "step sizes per token": steps,
                 "learned rates (A_log)": model.A_log.numel()})
table = pd.DataFrame(rows)
show_table(table, caption="How many numbers describe $A_i$")
assert min(distinct_eigenvalues(s6_dsf)) == n * d
assert max(distinct_eigenvalues(system)) <= H
assert max(distinct_eigenvalues(single_dsf)) == 1

# %% [markdown]
# The state is equally large; the transition is much poorer. What SSD loses in per-entry time scales it
# gains in structure: the scalar decay makes {eq}`eq-ssd-phi` an attention-like product that
# Mamba-2 evaluates with matrix multiplications, and in the DSF it puts SSD right next to linear attention,
# whose $A_i = (\eta_{i-1}/\eta_i) I$ has the same shape.
#
# ## The authors' variant: one step bias per channel
#
# The SSD the authors ran on MQAR {cite:p}`arora2024zoology` (`S6_2` in their released code) differs from the layer above in one
# place. It has one rate $a$ and one step projection $w_\Delta$, but it keeps Mamba's step bias with one entry
# per channel:
#
# $$
# \begin{aligned}
# \Delta_{i,c} &= \mathrm{softplus}(w_\Delta^\top u_i + b_c),\\
# A_i &= \mathrm{blockdiag}_c\big(e^{\Delta_{i,c}\, a}\, I_n\big), \qquad
# B_i = (I_d \otimes b_i)\,\mathrm{diag}(\Delta_i) .
# \end{aligned}
# $$ (eq-ssd-s6-2)
#
# So its $A_i$ is *not* one scalar times the identity: the channels' decays differ through their biases,
# which gives up to $d$ distinct eigenvalues per token. (When the $d$ biases are equal it is the one-head SSD above.)
# `SSD(d, n=n, heads=1, channel_bias=True)` is this variant; the default (`channel_bias=False`, one bias
# per head) is unchanged, and the book's experiments use the default. Its DSF has `A` of shape
# `(batch, L, d)`, one scalar per channel:

# %%
torch.manual_seed(seed)
s6_2 = SSD(d, n=n, heads=1, channel_bias=True).double().eval()
with torch.no_grad():
    s6_2.delta_bias.normal_(0.0, 0.5)  # steps of order one, as above
report_s6_2 = verify_layer(s6_2, u)
print("channel_bias=True (the authors' S6_2):")
print(*str(report_s6_2).split(", "), sep="\n")
assert report_s6_2.ok(1e-9)
with torch.no_grad():
    s6_2_dsf = s6_2.to_dsf(u)
    z = s6_2.W_delta(u) + s6_2.delta_bias  # (b, L, d): one projection, d biases
    s6_2_expected = torch.exp(F.softplus(z) * -torch.exp(s6_2.A_log))
    s6_2_error = (s6_2_dsf.A - s6_2_expected).abs().max().item()
    s6_2_counts = distinct_eigenvalues(s6_2_dsf)
    # equal biases: one scalar again
    s6_2.delta_bias.fill_(s6_2.delta_bias.mean().item())
    equal_counts = distinct_eigenvalues(s6_2.to_dsf(u))
print(f"A: shape {tuple(s6_2_dsf.A.shape)}; "
      f"max |A_i,c - exp(Delta_i,c a)| = {s6_2_error:.1e}")
print(f"distinct eigenvalues of A_i: {min(s6_2_counts)}-{max(s6_2_counts)} (d = {d})")
print(f"with all biases equal: {max(equal_counts)}")
assert s6_2_dsf.A.shape == (u.shape[0], L, d) and s6_2_error < 1e-14
assert min(s6_2_counts) == d and max(equal_counts) == 1

# %% [markdown]
# The per-channel bias puts the authors' SSD between the two layers of the table above: one learned rate
# and one step projection like the one-head SSD, but $d$ distinct decays per token like S6's $d$ step sizes
# (though not S6's $nd$ rates). A comparison of "SSD" and S6 trained with the released code therefore
# compares S6 with this variant, not with a transition that has a single parameter.
#
# ## Where this goes next
#
# {doc}`equivalences` makes both relations exact: S6 with tied decays *is* SSD, and linear attention is an
# SSD with a particular, query-dependent $\Delta$ — when that $\Delta$ is a valid step size. The unrestricted
# selective SSM is in {doc}`s6`, the time-invariant one in {doc}`lti_ssm`, the scalar-decay attention
# relatives in {doc}`linear_attention` and {doc}`retnet`.
