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
# # A time-invariant SSM: the convolution at the root of the family
#
# Before selective SSMs there were linear time-invariant (LTI) ones: S4 {cite:p}`gu2022s4`, its
# diagonal version S4D {cite:p}`gu2022s4d` and the LRU {cite:p}`orvieto2023lru`. They are the one case in this book where the DSF matrices do **not** depend on the input or
# on the position. Studying it first fixes the baseline against which the later chapters measure
# "time variation": with constant matrices, $\Phi$ is a convolution, and everything an LTI layer can do
# is encoded in one kernel fixed at training time.
#
# ## The layer
#
# `dsflib.models.lti_ssm.LTISSM` runs, independently in each of the $d$ channels $c$, a diagonal linear
# recurrence with an $n$-dimensional state $h^{(c)}_i$, and mixes channels only at the end with
# $W_{out}$:
#
# $$
# \begin{aligned}
# a_{c,k} &= \exp\!\big(-e^{\mathtt{log\_rate}_{c,k}}\, e^{\mathtt{log\_dt}_c}\big) \in (0, 1),
# \qquad k = 1, \dots, n,\\
# h^{(c)}_i &= a_c \odot h^{(c)}_{i-1} + B_c\, u_{i,c}, \\
# y_i &= W_{out}\,\big( [\,C_c^\top h^{(c)}_i + D_c\, u_{i,c}\,]_{c=1}^{d} \big),
# \end{aligned}
# $$ (eq-lti-ssm-layer)
#
# with parameters `log_rate` ($d \times n$), `log_dt` ($d$), `B` and `C` ($d \times n$; row $c$ is
# $B_c, C_c \in \mathbb{R}^n$), `D` ($d$) and `W_out` ($d \times d$). The decay $a_{c,k} = e^{-\lambda_{c,k}\,\Delta_c}$
# is the zero-order-hold discretisation of a continuous rate $\lambda_{c,k} = e^{\mathtt{log\_rate}_{c,k}} > 0$
# with step $\Delta_c = e^{\mathtt{log\_dt}_c}$: once training is over, neither depends on anything.
#
# **Why real-valued.** S4D and the LRU use *complex* diagonal transitions $r e^{\mathrm{i}\theta}$, whose
# kernels oscillate. The DSF as used here is a real system with real diagonal $A_i$, as in the paper:
# "While SSM models allow for complex-valued matrices $A_{i},B_{i},C_{i},D_{i}$, here we restrict ourselves to
# real-valued matrices as in [7]" (§2.2) {cite:p}`sieber2024dsf`. Acting on real signals, a conjugate pair $r e^{\pm \mathrm{i}\theta}$ is equivalent to a real
# $2\times 2$ rotation-and-scaling block, which is not diagonal over the reals, so a complex diagonal SSM
# is a real DSF only if one gives up diagonality. We keep the real variant (as S4D's real-valued
# initialisations do): every $a_{c,k} \in (0, 1)$ is a pure exponential decay. In `dsflib` the
# decays and the scan's inputs are one line each:
#
# ```{literalinclude} ../dsflib/models/lti_ssm.py
# :pyobject: LTISSM.log_a
# :lines: 1,3-
# :dedent: 4
# :caption: `dsflib/models/lti_ssm.py` — $\log a_{c,k}$ (docstring omitted)
# ```
#
# ```{literalinclude} ../dsflib/models/lti_ssm.py
# :pyobject: LTISSM._scan_inputs
# :lines: 1,3-
# :dedent: 4
# :caption: `dsflib/models/lti_ssm.py` — constant $C$, $B$ and decays for every token (docstring omitted)
# ```
#
# ## Its DSF form
#
# Stack the channel states channel-major, $h_i = [h^{(1)}_i; \dots; h^{(d)}_i] \in \mathbb{R}^{nd}$. The
# state update of {eq}`eq-lti-ssm-layer` is then one diagonal matrix acting on $h_{i-1}$, plus a matrix
# that writes channel $c$ of $u_i$ into block $c$ of the state; the read-out is the transposed pattern
# followed by $W_{out}$:
#
# $$
# \begin{aligned}
# A_i &= A = \mathrm{diag}(a_1; \dots; a_d), &
# B_i &= B = \mathrm{blockdiag}_c(B_c),\\
# C_i &= C = W_{out}\,\mathrm{blockdiag}_c(C_c^\top), &
# D_i &= D = W_{out}\,\mathrm{diag}(D_1, \dots, D_d),
# \end{aligned}
# $$ (eq-lti-ssm-dsf)
#
# with $B \in \mathbb{R}^{nd \times d}$, $C \in \mathbb{R}^{d \times nd}$ and $N = n\,d$. Nothing in
# {eq}`eq-lti-ssm-dsf` carries an index $i$. Inserting it into the general formula for $\Phi$
# ({eq}`eq-phi` in {doc}`dsf`), the product $A_i \cdots A_{j+1}$ becomes the power $A^{i-j}$, so each block
# depends on the lag $i - j$ only:
#
# $$
# \begin{aligned}
# \Phi_{ij} &= K_{i-j}, \qquad K_m = C A^m B + [m = 0]\, D,\\
# K_m &= W_{out}\,\mathrm{diag}_c\!\big(C_c^\top (a_c^{m} \odot B_c)\big)
# + [m = 0]\, W_{out}\,\mathrm{diag}(D).
# \end{aligned}
# $$ (eq-lti-ssm-kernel)
#
# $\Phi$ is **block Toeplitz**, and $y = \Phi u$ is the causal convolution $y_i = \sum_{m=0}^{i} K_m u_{i-m}$
# with the kernel $K$ that `layer.kernel(L)` returns. Before $W_{out}$ every $K_m$ is diagonal: the
# channels never talk to each other inside the SSM.
#
# ```{literalinclude} ../dsflib/models/lti_ssm.py
# :pyobject: LTISSM.kernel
# :lines: 1,3-
# :dedent: 4
# :caption: `dsflib/models/lti_ssm.py` — the kernel {eq}`eq-lti-ssm-kernel` (docstring omitted)
# ```

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
from dsflib.models.lti_ssm import LTISSM
from dsflib.plotting import book_style, caption, phi_figure, transition_heatmap
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(batch=2, length=40, d=4, n=4, wide_d=32, wide_n=16,
               kernel_length=4096),
    "paper": dict(batch=4, length=96, d=8, n=16, wide_d=64, wide_n=64,
                  kernel_length=8192),
})
info = run_info(profile, seed)
label = run_label(info)
print(textwrap.fill(label, 88))
pprint.pprint(settings, width=88, compact=True)

# %% [markdown]
# In `dsflib` this DSF is built by `to_dsf`, from the same quantities as the forward pass;
# the checks below compare the two:
#
# ```{literalinclude} ../dsflib/models/lti_ssm.py
# :pyobject: LTISSM.to_dsf
# :dedent: 4
# :caption: `dsflib/models/lti_ssm.py` — `LTISSM.to_dsf`
# ```
#
# ## The layer is its DSF
#
# We build the layer in double precision with its default initialisation and compare three evaluations
# of the same map: the layer's own `forward` (a chunked scan), the DSF recurrence of `to_dsf(u)`, and
# $\Phi u$ with the materialised $\Phi$.

# %%
torch.manual_seed(seed)
d, n, L = settings["d"], settings["n"], settings["length"]
layer = LTISSM(d, n=n).double().eval()
generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(settings["batch"], L, d, generator=generator, dtype=torch.float64)

report = verify_layer(layer, u)
print(*str(report).split(", "), sep="\n")
assert report.ok(1e-9), report

# %% [markdown]
# ## Time invariance: the same matrices for every token and every input
#
# `to_dsf` returns the matrices for every position of every sequence. For an LTI layer they must be
# identical copies, whatever the input — here for $u$ and for an unrelated, rescaled input $u'$:

# %%
with torch.no_grad():
    system = layer.to_dsf(u)
    u_other = 5.0 * torch.randn(settings["batch"], L, d, generator=generator,
                                dtype=torch.float64)
    other = layer.to_dsf(u_other)
invariance_rows = []
for name in "ABCD":
    M, M_other = getattr(system, name), getattr(other, name)
    spread = (M - M[:1, :1]).abs().max().item()
    invariance_rows.append({"matrix": name, "shape": str(tuple(M.shape)),
                            f"max over (sequence, i) of |M_i − M_0|": spread,
                            "identical for another input": torch.equal(M, M_other)})
    assert spread == 0.0 and torch.equal(M, M_other)
show_table(pd.DataFrame(invariance_rows), digits=2,
           caption="Time invariance: the DSF matrices of u and of u'");

# %% [markdown]
# ## $\Phi$ is block Toeplitz, and its first block column is the kernel
#
# {eq}`eq-lti-ssm-kernel` makes two checkable predictions: every block equals the block at the same lag
# in the first column, $\Phi_{ij} = \Phi_{i-j,0}$, and that column is the kernel, $\Phi_{m,0} = K_m$.

# %%
with torch.no_grad():
    phi = dsflib.materialize_phi(system)[0]  # (L, L, d, d), first sequence
    K = layer.kernel(L)  # (L, d, d)
i_idx, j_idx = torch.tril_indices(L, L)
toeplitz_error = (phi[i_idx, j_idx] - phi[i_idx - j_idx, 0]).abs().max().item()
kernel_error = (phi[:, 0] - K).abs().max().item()
print(f"max over j <= i of |Phi_ij - Phi_(i-j),0| = {toeplitz_error:.2e} "
      f"({len(i_idx)} blocks)")
print(f"max over m of |Phi_m,0 - K_m|             = {kernel_error:.2e}")
assert toeplitz_error < 1e-12 and kernel_error < 1e-12

# %% [markdown]
# {numref}`fig-lti-ssm-phi` shows the structure: constant along every block diagonal. The diagonal blocks carry the
# feed-through $K_0 \ni W_{out}\mathrm{diag}(D)$ (with `D` initialised to ones, the largest entries);
# below them the kernel fades slowly, at the time scales of the decays measured further below.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Φ of the LTI SSM is block Toeplitz: left the signed Ld × Ld matrix, right the log10 block norms, constant along every block diagonal because each block depends on the lag i − j only.", "name": "fig-lti-ssm-phi"}, "image": {"alt": "Two heatmaps of Phi for an LTI SSM: a signed lower block-triangular matrix with repeating diagonal blocks, and its log block norms, a lower triangle whose colour is constant along every diagonal and fades slowly away from it."}}
phi_figure(phi, label, heatmap_title=rf"LTI SSM: $\Phi$ (L={L}, d={d}, n={n})",
           norms_title=r"block norms $\log_{10}\|\Phi_{ij}\|_F$: "
                       "constant along diagonals")
plt.show()

# %% [markdown]
# ## The layer is a causal convolution
#
# Because $\Phi$ is Toeplitz, the layer is a (multi-channel) convolution of $u$ with $K$. An
# independent implementation of that convolution is `torch.nn.functional.conv1d` (a cross-correlation,
# hence the flipped kernel; left padding by $L-1$ makes it causal). It reproduces `forward`:

# %%
with torch.no_grad():
    # (d_out, d_in, L): conv1d weight[s] = K_{L-1-s}
    weight = K.permute(1, 2, 0).flip(-1)
    y_conv = F.conv1d(F.pad(u.transpose(1, 2), (L - 1, 0)), weight).transpose(1, 2)
    y_layer = layer(u)
conv_error = (y_conv - y_layer).abs().max().item()
print(f"max |causal_conv(K, u) - layer(u)| = {conv_error:.2e} "
      f"(max |y| = {y_layer.abs().max().item():.2f})")
assert conv_error < 1e-10

K_ssm = layer.kernel(L, include_output_projection=False).detach()
K_ssm_diag = torch.diag_embed(torch.diagonal(K_ssm, dim1=-2, dim2=-1))
off_diagonal = (K_ssm - K_ssm_diag).abs().max().item()
print(f"before W_out, max off-diagonal |K_m[c, c']| = {off_diagonal:.1e}: "
      "no channel mixing inside the SSM")
assert off_diagonal == 0.0

# %% [markdown]
# This is why S4-type layers {cite:p}`gu2022s4` can be trained as convolutions (with FFTs, in $O(L \log L)$) and run as
# recurrences at inference. It is also their limitation: $K$ is the same for every input, so the layer
# cannot decide, based on what it reads, to keep one token and to forget another. The selective models
# of the next chapters change exactly this.
#
# ## The transitions: constant eigenvalues, a spread of time scales
#
# $A$ is diagonal, so its diagonal entries *are* its eigenvalues. For the LTI SSM they do not change
# over $i$ — the transition heatmap of {numref}`fig-lti-ssm-transitions` is a set of horizontal
# stripes:

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Eigenvalues (diagonal entries) of A_i of the LTI SSM, one row per state entry, against the token i: horizontal stripes, because A_i = A is the same for every token.", "name": "fig-lti-ssm-transitions"}, "image": {"alt": "Heatmap with one row per state entry and one column per token; every row has a single constant colour, giving horizontal stripes."}}
fig, ax = plt.subplots(figsize=(8, 3.2))
transition_heatmap(system, ax, title=f"LTI SSM: eigenvalues of $A_i$ "
                                     f"({system.N} state entries, constant in i)")
caption(fig, label)
plt.show()

# %%
A_diag = system.diag_A()[0]
print(f"eigenvalues in [{A_diag.min().item():.4f}, {A_diag.max().item():.4f}]; "
      f"max over i of |A_i - A_0| = {(A_diag - A_diag[:1]).abs().max().item():.1e}")

# %% [markdown]
# What the layer can remember is set by these eigenvalues. A state entry with decay $a$ forgets a token
# by a factor $e$ after $\tau = -1/\log a$ steps. The initialisation draws the rates $e^{\mathtt{log\_rate}}$
# log-spaced in $[1, 10]$ and the steps $e^{\mathtt{log\_dt}}$ log-uniformly in $[10^{-3}, 10^{-1}]$, so
# $-\log a \in [10^{-3}, 1]$ and $\tau \in [1, 1000]$ tokens: a bank of filters from "the last token"
# to "the last thousand". We measure it on a wider layer at its default initialisation:

# %%
torch.manual_seed(seed)
wide = LTISSM(settings["wide_d"], n=settings["wide_n"]).double()
with torch.no_grad():
    tau = -1.0 / wide.log_a()  # (d, n), in tokens
levels = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
quantiles = torch.quantile(tau.flatten(), levels)
print(f"d={wide.d_model}, n={wide.n}: time scales tau = -1/log a "
      f"over {tau.numel()} state entries")
print("  min / 10% / median / 90% / max:",
      " / ".join(f"{q:.1f}" for q in quantiles.tolist()), "tokens")
assert tau.min() >= 1.0 - 1e-9 and tau.max() <= 1000.0 * (1 + 1e-9)
assert tau.max() / tau.min() > 100  # more than two decades of memory

# %% [markdown]
# Each channel's kernel (before $W_{out}$) is a sum of $n$ exponentials,
# $K_m[c,c] = \sum_k C_{c,k} B_{c,k}\, a_{c,k}^m$. Below, its envelope $|K_m[c,c]|$ (normalised by its
# maximum over $m \ge 1$) in {numref}`fig-lti-ssm-kernels` for five channels of the wide layer, from the shortest to the longest step
# $e^{\mathtt{log\_dt}_c}$; the dashed lines mark each channel's slowest time scale $\max_k \tau_{c,k}$, and
# the dips are sign changes of the sum. We also print each channel's *memory*: the last lag at which
# the envelope is still above 1% of its maximum.

# %%
length_k = settings["kernel_length"]
with torch.no_grad():
    K_wide = wide.kernel(length_k, include_output_projection=False)
    K_wide = torch.diagonal(K_wide, dim1=-2, dim2=-1)  # (m, d)
# lags m = 1 .. length_k - 1:
envelope = K_wide[1:].abs() / K_wide[1:].abs().max(dim=0).values
order = torch.argsort(wide.log_dt.detach())
channels = order[torch.linspace(0, len(order) - 1, 5).round().long()].tolist()
log_max_lag = torch.log10(torch.tensor(length_k - 1.0)).item()
lags = torch.unique(torch.logspace(0, log_max_lag, 200).long()).tolist()
records, memories, memory_rows = [], [], []
for c in channels:
    name = f"c={c + 1}, dt={wide.log_dt[c].exp().item():.1e}"
    records += [dict(lag=m, value=envelope[m - 1, c].item(), channel=name)
                for m in lags]
    memory = 1 + torch.nonzero(envelope[:, c] >= 1e-2).max().item()
    memories.append(memory)
    memory_rows.append({"channel c": c + 1, "step $e^{\\mathtt{log\\_dt}_c}$":
                        wide.log_dt[c].exp().item(),
                        "slowest τ [tokens]": tau[c].max().item(),
                        "envelope ≥ 1% up to lag": memory})
show_table(pd.DataFrame(memory_rows), digits=3,
           caption="Five channels of the wide layer, "
                   "from the shortest to the longest step")
# the shortest step remembers far longer than the longest:
assert memories[0] > 10 * memories[-1]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Envelopes |K_m[c,c]| of the per-channel kernels (before W_out, normalised by their maximum over m ≥ 1) of five channels of the wide LTI SSM at initialisation, from the shortest to the longest step; dashed lines mark each channel's slowest time scale. Both axes logarithmic.", "name": "fig-lti-ssm-kernels"}, "image": {"alt": "Log-log plot of five kernel envelopes against the lag, each falling off beyond a lag marked by a dashed vertical line of the same colour; the curves with small steps stay high to much longer lags."}}
fig, ax = plt.subplots(figsize=(8, 4))
sns.lineplot(pd.DataFrame(records), x="lag", y="value", hue="channel",
             palette="viridis", ax=ax)
for color, c in zip(sns.color_palette("viridis", len(channels)), channels):
    ax.axvline(tau[c].max().item(), color=color, ls="--", lw=0.8)
ax.set(xscale="log", yscale="log", ylim=(1e-4, 2), xlabel="lag m (tokens)",
       ylabel=r"$|K_m[c,c]| \,/\, \max_{m \geq 1} |K_m[c,c]|$",
       title=f"per-channel kernels of an LTI SSM at initialisation "
             f"(d={wide.d_model}, n={wide.n})")
ax.legend(fontsize=8, title="channel (step)", title_fontsize=8, loc="lower left")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# Compare the printed memory lengths with each channel's slowest time scale: the envelope of a sum
# of decaying exponentials is governed by its slowest term, and the assertion above checks that the
# channel with the smallest step remembers more than ten times longer than the one with the largest.
# Training moves these filters, but for every input they stay the same.
#
# ## Where this goes next
#
# The LTI SSM is the $A_i = A$, $B_i = B$, $C_i = C$ corner of the DSF. {doc}`s6` makes all three
# depend on the current token through a step size $\Delta_i$, which turns the fixed bank of filters
# into a selective one; {doc}`ssd` keeps the selectivity but ties the transition to one scalar per head;
# {doc}`equivalences` compares both with linear attention. For the general machinery ($\Phi$, the state
# bottleneck, evaluation costs) see {doc}`dsf`.
