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
# # Linear attention
#
# Softmax attention compares the query of token $i$ with every earlier key, so producing output $i$
# costs $O(i)$ work and the cache it reads grows with the sequence. Linear attention
# {cite:p}`katharopoulos2020linear` replaces the exponential kernel $e^{q^\top k}$ by an inner product of features,
# $\phi(q)^\top \phi(k)$. The kernel then *separates* into a query part and a key part, every key can be
# summed into a fixed-size memory as soon as it arrives, and attention becomes a recurrence. In the
# DSF this is the step from an infinite state ({doc}`softmax_attention`) to a finite one, $N = n\,d$,
# with a transition $A_i$ that is entirely made of the attention normalizer.
#
# ## The layer
#
# `dsflib.models.LinearAttention` uses the feature map $\phi(x) = \mathrm{elu}(x) + 1$, applied
# entrywise; it is positive, so every attention weight is positive. With $H$ heads, head $h$ has queries
# and keys of size $n$ and $d/H$ value channels:
#
# $$
# \begin{aligned}
# q_i &= W_Q u_i,\quad k_i = W_K u_i \in \mathbb{R}^{n}\ (\text{per head}),\qquad v_i = W_V u_i,\\
# y_i &= W_O \Big[\frac{1}{\eta_i} \sum_{j \le i} \big(\phi(q_i)^\top \phi(k_j)\big)\,
# v_j\Big]_{\text{heads}},\\
# \eta_i &= \phi(q_i)^\top \sum_{j \le i} \phi(k_j) .
# \end{aligned}
# $$ (eq-linear-attention-layer)
#
# The normalizer $\eta_i > 0$ (one per head) makes the weights
# $\alpha_{ij} = \phi(q_i)^\top\phi(k_j)/\eta_i$ a probability distribution over $j \le i$, exactly like
# the softmax does. There is no $1/\sqrt{n}$ scale, as in the authors' MQAR code.
#
# ## Its DSF
#
# Take one head and collect the keys and values seen so far in the *normalized* memory
#
# $$
# S_i = \frac{1}{\eta_i} \sum_{j \le i} v_j\, \phi(k_j)^\top \in \mathbb{R}^{(d/H) \times n},
# \qquad y^{(h)}_i = S_i\, \phi(q_i) .
# $$ (eq-linear-attention-state)
#
# Splitting off the last term and writing the old sum through $S_{i-1}$ gives the recurrence
#
# $$
# S_i = \frac{\eta_{i-1}}{\eta_i}\, S_{i-1} + \frac{1}{\eta_i}\, v_i\, \phi(k_i)^\top .
# $$ (eq-linear-attention-recurrence)
#
# Stack the rows of $S_i$ channel after channel into $h_i$ (head after head): that is $n$ state entries
# per value channel, $N = n\,d$ in all. Reading off {eq}`eq-linear-attention-recurrence` and
# {eq}`eq-linear-attention-state` against the DSF {eq}`eq-dsf`:
#
# $$
# \begin{aligned}
# A_i &= \frac{\eta_{i-1}}{\eta_i}\, I_N, &
# B_i &= \frac{1}{\eta_i}\,\big(I_{d} \otimes \phi(k_i)\big)\, W_V,\\
# C_i &= W_O\,\big(I_{d} \otimes \phi(q_i)^\top\big), &
# D_i &= 0,\qquad N = n\,d,
# \end{aligned}
# $$ (eq-linear-attention-dsf)
#
# where $\eta$ and $\phi(\cdot)$ belong to the head that owns the state entry (so $A_i$ is one scalar
# per head times the identity, and $B_i, C_i$ are block-diagonal over heads before $W_V$, $W_O$).
# $A_0$ multiplies $h_{-1} = 0$ and is irrelevant; `dsflib` sets $\eta_{-1} := \eta_0$, so $A_0 = 1$.
# This is the paper's DSF form of separable attention as App. B derives it {cite:p}`sieber2024dsf`
# (the main text's eq. 15 prints $1/\eta(q_{i-1}, k_{i-1})$ in $B_i$, a misprint: App. B's derivation,
# and every check below, give $1/\eta_i$): the normalizer sits inside the transition, not only in the
# read-out. The
# state expansion $n$ is the key dimension per head. In `dsflib` the layer computes its features and
# normalizer in one place, and the shared DSF builder puts $\eta$ into $A_i$ and $B_i$:
#
# ```{literalinclude} ../dsflib/models/linear_attention.py
# :pyobject: LinearAttention.features
# :lines: 1,4-
# :dedent: 4
# :caption: `dsflib/models/linear_attention.py` — $\phi(q_i)$, $\phi(k_i)$, $v_i$ and $\eta_i$
# ```
#
# The layer's DSF, which every check below compares with its forward pass, is built from the same
# quantities (`to_dsf`, the code that ran):
#
# ```{literalinclude} ../dsflib/models/linear_attention.py
# :pyobject: LinearAttention.to_dsf
# :dedent: 4
# :caption: `dsflib/models/linear_attention.py` — `LinearAttention.to_dsf`
# ```
#
# ```{literalinclude} ../dsflib/models/_common.py
# :pyobject: dsf_from_scan
# :lines: 35-43
# :dedent: 4
# :caption: `dsflib/models/_common.py`, `dsf_from_scan` (excerpt) — the normalizer enters $A_i = a_i\,\eta_{i-1}/\eta_i$ and $B_i \propto 1/\eta_i$ (linear attention has $a_i = 1$)
# ```
#
# Unrolled, the transitions telescope, $A_i A_{i-1} \cdots A_{j+1} = \eta_j / \eta_i$, and the
# $\eta_j$ cancels against the $1/\eta_j$ in $B_j$:
#
# $$
# \begin{aligned}
# \Phi_{ij} &= W_O\, \mathrm{blockdiag}_h\!\Big(\frac{\phi(q^{(h)}_i)^\top
# \phi(k^{(h)}_j)}{\eta^{(h)}_i}\, I_{d/H}\Big)\, W_V\\
# &= W_O\, \mathrm{blockdiag}_h\big(\alpha^{(h)}_{ij} I_{d/H}\big)\, W_V,
# \qquad j \le i .
# \end{aligned}
# $$ (eq-linear-attention-phi)
#
# $\Phi$ *is* the attention matrix, sandwiched between the value and output projections.

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

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.models.linear_attention import LinearAttention
from dsflib.plotting import book_style, caption, phi_figure, transition_heatmap
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(batch=2, length=32, d=8, n=4, heads=2, rank_ns=[1, 2, 4, 8]),
    "paper": dict(batch=4, length=64, d=16, n=8, heads=4, rank_ns=[1, 2, 4, 8, 16]),
})
info = run_info(profile, seed)
label = run_label(info)
print(textwrap.fill(label, 88))
pprint.pprint(settings, width=88, compact=True)

# %% [markdown]
# ## The layer is its DSF
#
# A randomly initialised layer in double precision, a random input, and the three evaluations of
# the same map: the layer's `forward` (a chunked scan for the numerator and a cumulative sum for
# $\eta$), the DSF recurrence with {eq}`eq-linear-attention-dsf`, and $\Phi u$.

# %%
torch.manual_seed(seed)
d, n, heads, L = settings["d"], settings["n"], settings["heads"], settings["length"]
layer = LinearAttention(d, n=n, heads=heads).double()
generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(settings["batch"], L, d, generator=generator, dtype=torch.float64)

report = verify_layer(layer, u)
print(layer)
print(*str(report).split(", "), sep="\n")
assert report.ok(1e-9), report
assert (report.N, report.n) == (n * d, n)

# %% [markdown]
# The DSF has $N = n\,d$ state entries and one transition scalar per head. Next, the individual claims
# of the derivation: $A_i = \eta_{i-1}/\eta_i$ with the layer's own normalizer (`layer.normalizer`),
# the telescoping product, and the closed form {eq}`eq-linear-attention-phi` of the blocks, whose
# weights $\alpha_{ij}$ sum to one over $j \le i$.

# %%
with torch.no_grad():
    system = layer.to_dsf(u)
    eta = layer.normalizer(u)  # (batch, L, heads)
    phi = dsflib.materialize_phi(system)
print("A:", tuple(system.A.shape), " B:", tuple(system.B.shape),
      " C:", tuple(system.C.shape))

ratio_error = (system.A[:, 1:] - eta[:, :-1] / eta[:, 1:]).abs().max().item()
print(f"max |A_i - eta_(i-1)/eta_i|       = {ratio_error:.2e}")
assert ratio_error < 1e-14
assert torch.equal(system.A[:, 0], torch.ones_like(system.A[:, 0]))

# telescoping: A_1 A_2 ... A_i = eta_0 / eta_i
telescoped = eta[:, :1] / eta
telescope_error = (torch.cumprod(system.A, dim=1) - telescoped) / telescoped
telescope_error = telescope_error.abs().max().item()
print(f"max rel |A_1...A_i - eta_0/eta_i| = {telescope_error:.2e}")
assert telescope_error < 1e-12

# closed form of the blocks: Phi_ij = W_O blockdiag_h(alpha^h_ij I) W_V,
# alpha^h_ij = phi(q_i)^T phi(k_j) / eta_i
with torch.no_grad():
    fq, fk, _, _ = layer.features(u)  # phi(q_i), phi(k_i) per head
    kernel = torch.einsum("bihn,bjhn->bhij", fq, fk).tril()
    alpha = kernel / eta.transpose(1, 2)[..., None]
    W_O = layer.W_O.weight.unflatten(1, (heads, d // heads))  # (d, H, d/H)
    W_V = layer.W_V.weight.unflatten(0, (heads, d // heads))  # (H, d/H, d)
    phi_closed = torch.einsum("bhij,phc,hcq->bijpq", alpha, W_O, W_V)
closed_error = (phi - phi_closed).abs().max().item()
row_sum_error = (alpha.sum(-1) - 1).abs().max().item()
print(f"max |Phi_ij - closed form|        = {closed_error:.2e}")
print(f"max |sum_j alpha_ij - 1|          = {row_sum_error:.2e}")
assert closed_error < 1e-12 and row_sum_error < 1e-12

# %% [markdown]
# ## What $\Phi$ looks like
#
# {numref}`fig-linear-attention-phi` shows the full matrix of the first sequence and its block
# norms. Unlike a decaying SSM, nothing in
# {eq}`eq-linear-attention-phi` makes old tokens fade: the weight of token $j$ at output $i$ is its
# share $\alpha_{ij}$ of a distribution over $i+1$ tokens. Every row thins out roughly like $1/(i+1)$
# (so the first rows dominate the colour scale of the left panel), but within a row there is no
# preference for recent tokens. The vertical stripes on the right are keys with large features
# $\phi(k_j)$, which every later query weights heavily.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Φ of linear attention at random initialisation: block lower triangular (causal), each block row a distribution over the prefix scaled by W_O and W_V; left the signed Ld × Ld matrix, right the log10 block norms.", "name": "fig-linear-attention-phi"}, "image": {"alt": "Two heatmaps of Phi for a random linear attention layer: the signed matrix, lower block-triangular with its strongest entries in the first rows, and the log block norms, a lower triangle with vertical stripes."}}
phi_figure(phi[0], label,
           title=f"Linear attention, random init "
                 f"(L={L}, d={d}, n={n}, heads={heads})")
plt.show()

# %% [markdown]
# ## The transitions $A_i$: not a decay
#
# $A_i$ is one scalar per head times the identity, so that scalar is its only eigenvalue (the
# diagonal entries of a diagonal $A_i$ *are* its eigenvalues). A gated RNN or an SSM keeps its
# eigenvalues in $(0, 1]$ by construction. Linear attention does not: $\eta_i$ is the current query's
# view of *all* keys so far,
#
# $$
# \frac{\eta_{i-1}}{\eta_i}
# = \underbrace{\frac{i}{i+1}}_{\text{averaging}} \cdot
#   \frac{\phi(q_{i-1})^\top \bar k_{i-1}}{\phi(q_i)^\top \bar k_i},
# \qquad \bar k_i = \frac{1}{i+1}\sum_{j \le i} \phi(k_j) ,
# $$ (eq-linear-attention-ratio)
#
# and the second factor, a ratio of two queries' affinities to the mean key, is not bounded by one. The
# first factor alone would be the transition of a running mean. Rather than assume $A_i \le 1$, we
# measure it on our input ({numref}`fig-linear-attention-transitions`):

# %%
A_after_first = system.A[:, 1:]  # A_0 := 1 by convention
fraction_above = (A_after_first > 1).double().mean().item()
print(f"A_i for i >= 1 over {A_after_first.numel()} (sequence, token, head) triples:")
print(f"min {A_after_first.min().item():.3f}, max {A_after_first.max().item():.3f}, "
      f"fraction > 1: {fraction_above:.3f}")
assert 0 < fraction_above < 1  # both occur on this input

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The transition scalar A_i = η_{i-1}/η_i of linear attention per head (first sequence): left against the token index on a log scale with the running mean i/(i+1) and a dashed line at 1, right the same values as a heatmap (heads × tokens).", "name": "fig-linear-attention-transitions"}, "image": {"alt": "Left: line plot of A_i per head against the token index on a log scale, scattered on both sides of a dashed line at 1, with the running-mean curve i/(i+1). Right: a heatmap of the same values, one row per head."}}
rows = [dict(i=i, A=system.A[0, i, h].item(), series=f"$A_i$, head {h}")
        for i in range(1, L) for h in range(heads)]
rows += [dict(i=i, A=i / (i + 1), series="$i/(i+1)$ (running mean)")
         for i in range(1, L)]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8),
                         gridspec_kw=dict(width_ratios=[1.4, 1]))
sns.lineplot(pd.DataFrame(rows), x="i", y="A", hue="series", style="series",
             markers=True, dashes=False, ax=axes[0])
axes[0].axhline(1.0, color="grey", lw=0.8, ls="--")
axes[0].set(yscale="log", xlabel="token i",
            ylabel=r"$A_i = \eta_{i-1}/\eta_i$ (log scale)",
            title="transition scalar per head (first sequence)")
axes[0].set_yticks([0.25, 0.5, 1, 2, 4], labels=["0.25", "0.5", "1", "2", "4"])
axes[0].minorticks_off()
axes[0].legend(fontsize=8)
transition_heatmap(system, axes[1], title="$A_i$ as a heatmap (first sequence)")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# A fraction of the transitions exceed one (printed above; the assertion checks that both cases
# occur): the normalized memory $S_i$ is *amplified* at
# those steps. This is harmless because $A_i$ never acts alone. The products telescope to
# $\eta_j/\eta_i$ and meet the $1/\eta_j$ of $B_j$, so every path from $u_j$ to $y_i$ carries the weight
# $\alpha_{ij} \in (0, 1]$ with $\sum_{j \le i} \alpha_{ij} = 1$ (checked above). Boundedness lives in
# the coupling of $A_i$ and $B_i$ through $\eta$, not in $|A_i| \le 1$. In an eigenvalue plot, linear
# attention therefore looks unlike a stable SSM, whose eigenvalues stay in $(0, 1]$: its eigenvalues
# scatter on both sides of one, around the slowly rising running-mean curve $i/(i+1)$.
#
# ## State expansion: $n$ is the key dimension
#
# The state has $n\,d$ entries, and {eq}`eq-linear-attention-phi` shows why it cannot be compressed:
# with one head, the past-to-future block of $\Phi$ (see {doc}`dsf`) is the kernel matrix
# $[\alpha_{ij}]$, of rank at most $n$, times the $d \times d$ matrix $W_O W_V$. Its rank is
# at most $n\,d = N$, and a random layer attains it:

# %%
t_split = L // 2
rank_rows = []
for n_rank in settings["rank_ns"]:
    torch.manual_seed(seed)
    layer_n = LinearAttention(d, n=n_rank, heads=1).double()
    with torch.no_grad():
        system_n = layer_n.to_dsf(u[:1])
        block = dsflib.past_to_future(dsflib.materialize_phi(system_n), t_split)[0]
    rank = torch.linalg.matrix_rank(block).item()
    rank_rows.append(dict(n=n_rank, N=system_n.N, block=f"{tuple(block.shape)}",
                          rank=rank))
    assert system_n.n == n_rank and system_n.N == n_rank * d
    assert rank == min(system_n.N, *block.shape), (n_rank, rank)
show_table(pd.DataFrame(rank_rows),
           caption=f"Rank of the past-to-future block of Φ, split at t={t_split}, "
                   f"d={d}, one head");

# %% [markdown]
# The rank equals $N = n\,d$ exactly: every additional key dimension buys $d$ more directions in
# which the past can reach the future. The paper's Fig. 1 (§4.1) {cite:p}`sieber2024dsf` makes the matching point empirically on
# MQAR {cite:p}`arora2024zoology`: "with larger $n$ linear attention converges to the performance of softmax attention, which
# achieves perfect accuracy throughout".
#
# ## Related chapters
#
# - {doc}`softmax_attention`: the same separable DSF with the infinite Taylor features of
#   $e^{q^\top k}$, and how finite feature maps approximate it.
# - {doc}`normalized_attention`: the paper's normalized attention (eq. 22), which keeps the recurrent normalization
#   $A_i = \eta_{i-1}/\eta_i$ but lets $\eta_i$ depend on the current token only.
# - {doc}`ssd`: a scalar transition per head as well, but an input-driven decay in $(0, 1)$; matching the
#   two forms term by term shows when linear attention and SSD are the same map.
# - {doc}`dsf`: the framework, $\Phi$ and the past-to-future rank bound.
