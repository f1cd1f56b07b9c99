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
# # Linear attention, SSD and S6: when are they the same system?
#
# In the DSF, linear attention {cite:p}`katharopoulos2020linear` ({doc}`linear_attention`), Mamba-2's
# SSD {cite:p}`dao2024mamba2` ({doc}`ssd`) and Mamba's S6 {cite:p}`gu2023mamba` ({doc}`s6`) are all diagonal linear time-varying systems. The DSF lets us ask a sharp question:
# *when do two of them produce the same matrices $A_i, B_i, C_i, D_i$?* The answer isolates the three
# structural differences between attention and SSMs — how $A_i$ and $B_i$ are coupled (normalization),
# how many numbers describe $A_i$ (transition richness), and how large the state is (state expansion).
# The paper {cite:p}`sieber2024dsf` compares the two DSF expressions in §4.2 (reproduced and checked at
# the end of this chapter);
# its abstract announces "conditions under which both are equivalent" (linear attention and selective
# SSMs), and its body gives the correspondence $k_i = b_i$, $q_i = c_i$ and the two differences (the
# normalization and the number of parameters of $\Lambda_i$), not a theorem with conditions. The
# conditions below are our derivation, and we check each of them numerically.
#
# ## Linear attention as an SSD
#
# Take one head and write both DSFs side by side. Linear attention with feature map $\phi$ = elu + 1,
# normaliser $\eta_i = \phi(q_i)^\top \sum_{j \le i} \phi(k_j)$ and the paper's DSF form (eqs. 15–16, App. B:
# the state is the KV memory divided by $\eta_i$) {cite:p}`sieber2024dsf` has
#
# $$
# \begin{aligned}
# A_i &= \frac{\eta_{i-1}}{\eta_i}\, I, & B_i &= \frac{1}{\eta_i}\,(I_d \otimes \phi(k_i))\, W_V,\\
# C_i &= W_O\,(I_d \otimes \phi(q_i)^\top), & D_i &= 0 .
# \end{aligned}
# $$ (eq-equivalences-attention)
#
# An SSD head with scalar rate $a < 0$, step $\Delta_i > 0$, input vector $b_i$ and output vector $c_i$,
# acting on the values $W_V u_i$ with output map $W_O$ and no skip (the SSD of {doc}`ssd` with $W_{out} = W_O$
# and $D = 0$, fed with $W_V u_i$ instead of $u_i$), has
#
# $$
# \begin{aligned}
# A_i &= e^{\Delta_i a}\, I, & B_i &= \Delta_i\,(I_d \otimes b_i)\, W_V,\\
# C_i &= W_O\,(I_d \otimes c_i^\top), & D_i &= 0 .
# \end{aligned}
# $$ (eq-equivalences-ssd)
#
# Matching {eq}`eq-equivalences-attention` and {eq}`eq-equivalences-ssd` term by term gives the **coupling**
#
# $$
# e^{\Delta_i a} = \frac{\eta_{i-1}}{\eta_i}, \qquad \Delta_i\, b_i = \frac{\phi(k_i)}{\eta_i},
# \qquad c_i = \phi(q_i),
# $$ (eq-equivalences-coupling)
#
# that is $\Delta_i = \log(\eta_i/\eta_{i-1})\,/\,(-a)$ and $b_i = \phi(k_i)/(\eta_i \Delta_i)$ for $i \ge 1$
# ($\Delta_0$ is free, since $h_{-1} = 0$). Equivalently $\eta_i = \eta_0\, e^{-a \sum_{k=1}^{i} \Delta_k}$: the
# attention normaliser is a cumulative decay. In an SSD that decay is driven by the current token only;
# in attention it is whatever the current query's affinity to all past keys happens to be. The SSD is a
# valid one only if every $\Delta_i > 0$, i.e. only if $\eta_i$ grows at every step.

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes (still cheap here)
seed = 0

# %%
import pprint
import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import torch

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.models import dsf_from_scan
from dsflib.equivalences import coupled_ssd, ssd_from_tied_s6
from dsflib.models.linear_attention import LinearAttention
from dsflib.models.s6 import S6
from dsflib.models.ssd import SSD
from dsflib.plotting import book_style, caption, phi_block_norms
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(batch=2, length=40, d=6, n=3, heads=2, generic_batch=16,
               generic_length=64, repeat_length=32, ssm_d=8, ssm_n=3),
    "paper": dict(batch=4, length=96, d=16, n=8, heads=2, generic_batch=64,
                  generic_length=256, repeat_length=128, ssm_d=16, ssm_n=16),
})
info = run_info(profile, seed)
label = run_label(info)
print(textwrap.fill(label, 88))
pprint.pprint(settings, width=88, compact=True)

# %% [markdown]
# ## Building the coupled SSD
#
# We take a linear attention layer (double precision, seeded) and, for a given input, let
# `dsflib.equivalences.coupled_ssd` do the construction: it reads $\phi(q_i)$, $\phi(k_i)$ and $\eta_i$ from
# `layer.features(u)`, sets $\Delta_i$ and $b_i$ by the coupling {eq}`eq-equivalences-coupling` with $a = -1$,
# and assembles the SSD-form DSF from the scan operands $(c_i,\ \Delta_i b_i,\ \log A_i = a\Delta_i)$ with
# value map $W_V$ and output map $W_O$ (via `dsf_from_scan`, the same function the layers use for their
# DSFs). Nothing of the attention DSF is reused: no $\eta_{i-1}/\eta_i$ appears, only $\Delta$, $a$, $b$, $c$.

# %%
torch.manual_seed(seed)
d, n, H, L = settings["d"], settings["n"], settings["heads"], settings["length"]
attention = LinearAttention(d, n=n, heads=H).double().eval()
generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(settings["batch"], L, d, generator=generator, dtype=torch.float64)

report = verify_layer(attention, u)
print("linear attention vs its own DSF:")
print(*str(report).split(", "), sep="\n")
assert report.ok(1e-9)

with torch.no_grad():
    ssd_form, delta = coupled_ssd(attention, u)
    attention_dsf = attention.to_dsf(u)
    phi_ssd = dsflib.materialize_phi(ssd_form)
    phi_att = dsflib.materialize_phi(attention_dsf)
    y_ssd, y_att = dsflib.recurrence(ssd_form, u), attention(u)
phi_diff = (phi_ssd - phi_att).abs().max().item()
y_diff = (y_ssd - y_att).abs().max().item()
print(f"both scalar per head: {ssd_form.scalar_A and attention_dsf.scalar_A}; "
      f"N = {ssd_form.N} and {attention_dsf.N}")
print(f"max |Phi_SSD-form - Phi_attention| = {phi_diff:.2e} "
      f"(max |Phi| = {phi_att.abs().max().item():.2f})")
print(f"max |recurrence(SSD-form, u) - attention(u)| = {y_diff:.2e}")
assert ssd_form.scalar_A and attention_dsf.scalar_A
assert phi_diff < 1e-12 and y_diff < 1e-12

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Log10 block norms of Φ for linear attention (left) and for the SSD-form DSF built from it by the coupling (right): the same matrix, as the printed difference above confirms to rounding error.", "name": "fig-equivalences-coupled"}, "image": {"alt": "Two identical lower-triangular heatmaps of log block norms of Phi, one for linear attention and one for its coupled SSD form."}}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
phi_block_norms(phi_att[0], axes[0],
                title=r"linear attention: $\log_{10}\|\Phi_{ij}\|_F$")
phi_block_norms(phi_ssd[0], axes[1],
                title=r"coupled SSD form: $\log_{10}\|\Phi_{ij}\|_F$")
fig.suptitle(f"the same matrix (max difference {phi_diff:.1e}; "
             f"L={L}, d={d}, n={n}, H={H})", fontsize=10)
fig.tight_layout(rect=(0, 0, 1, 0.95))
caption(fig, label)
plt.show()

# %% [markdown]
# The two DSFs are the same matrix ({numref}`fig-equivalences-coupled`) — but only because we let $\Delta_i$ be whatever the coupling demands.
# Is that a step size an SSD could have?
#
# ## A repeated token: attention is an SSD that averages
#
# If every token is the same vector, $\phi(q_i) = \phi(q)$, $\phi(k_j) = \phi(k)$ and
# $\eta_i = (i + 1)\,\phi(q)^\top \phi(k)$. The coupling then asks for
#
# $$
# \Delta_i = \log\frac{\eta_i}{\eta_{i-1}} = \log\frac{i+1}{i} > 0 \qquad (a = -1),
# $$ (eq-equivalences-repeated)
#
# a valid, shrinking step size: $A_i = i/(i+1)$ and $B_i \propto 1/(i+1)$, the recurrence of a running mean.
# Attention on a constant input *is* an SSD, one whose steps decay like $1/i$ so that all tokens keep
# equal weight.

# %%
L_rep = settings["repeat_length"]
token = torch.randn(1, 1, d, generator=generator, dtype=torch.float64)
u_rep = token.expand(1, L_rep, d).contiguous()
with torch.no_grad():
    ssd_rep, delta_rep = coupled_ssd(attention, u_rep)
    y_rep_ssd = dsflib.recurrence(ssd_rep, u_rep)
    y_rep_error = (y_rep_ssd - attention(u_rep)).abs().max().item()
i = torch.arange(1, L_rep, dtype=torch.float64)
expected = torch.log((i + 1) / i)
rep_error = (delta_rep[0, 1:] - expected[:, None]).abs().max().item()
print(f"repeated token: max |Delta_i - log((i+1)/i)| over i >= 1 and {H} heads "
      f"= {rep_error:.1e}")
print(f"min Delta = {delta_rep.min().item():.4f} > 0; "
      f"max |y_SSD - y_attention| = {y_rep_error:.1e}")
assert rep_error < 1e-12 and (delta_rep > 0).all() and y_rep_error < 1e-12

# %% [markdown]
# ## Generic input: the coupling needs negative steps
#
# For a generic input, $\eta_i/\eta_{i-1}$ mixes the growth of the key sum with the change from query
# $q_{i-1}$ to $q_i$, and nothing keeps it above one (see {doc}`linear_attention`). Wherever
# $\eta_i < \eta_{i-1}$ the coupling demands $\Delta_i < 0$, i.e. a
# transition $A_i > 1$. An SSD has $a < 0$ and $\Delta = \mathrm{softplus}(\cdot) > 0$, hence
# $A_i = e^{\Delta_i a} \in (0, 1)$: no SSD with the state of attention reproduces those steps. We measure how
# often this happens on random inputs ({numref}`fig-equivalences-steps`):

# %%
u_gen = torch.randn(settings["generic_batch"], settings["generic_length"], d,
                    generator=generator, dtype=torch.float64)
with torch.no_grad():
    ssd_gen, delta_gen = coupled_ssd(attention, u_gen)
steps = delta_gen[:, 1:]  # Delta_0 is free
negative = (steps < 0).double().mean().item()
sequences_with_negative = (steps < 0).flatten(1).any(dim=1).double().mean().item()
print(f"{steps.numel()} coupled steps (i >= 1) over {u_gen.shape[0]} random sequences "
      f"of length {u_gen.shape[1]}:")
print(f"  fraction with Delta_i < 0: {negative:.3f}; "
      f"sequences with at least one: {sequences_with_negative:.2f}")
print(f"  Delta_i in [{steps.min().item():.3f}, {steps.max().item():.3f}]; "
      f"largest A_i = {ssd_gen.A[:, 1:].max().item():.3f}")
assert negative > 0 and (ssd_gen.A[:, 1:] > 1).any()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The step sizes Δ_i that the coupling demands (a = −1). Left: for a repeated token they equal log((i+1)/i) > 0, a valid SSD that averages. Right: for one random input sequence, per head; the shaded band Δ_i < 0 holds steps no SSD can have.", "name": "fig-equivalences-steps"}, "image": {"alt": "Left: log-log plot of the coupled step sizes for a repeated token lying on the curve log((i+1)/i), close to 1/i. Right: the coupled step sizes of two heads on a random input, fluctuating around zero with some values in a shaded negative band."}}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].plot(i, delta_rep[0, 1:, 0], "o", mfc="none",
             label=r"coupled $\Delta_i$ (head 1)")
axes[0].plot(i, expected, "-", label=r"$\log((i+1)/i)$")
axes[0].plot(i, 1 / i, ":", color="gray", label=r"$1/i$")
axes[0].set(xscale="log", yscale="log", xlabel="token i", ylabel=r"$\Delta_i$",
            title="repeated token: a valid SSD")
axes[0].legend(fontsize=8)
for h in range(H):
    axes[1].plot(torch.arange(1, settings["generic_length"]), delta_gen[0, 1:, h],
                 ".-", lw=1, label=f"head {h + 1}")
axes[1].axhline(0.0, color="black", lw=0.8)
axes[1].axhspan(steps.min().item() * 1.1, 0.0, color="tab:red", alpha=0.08)
axes[1].set(xlabel="token i", ylabel=r"$\Delta_i$",
            title=r"random input: $\Delta_i < 0$ (shaded) is not an SSD step")
axes[1].legend(fontsize=8)
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# A caveat on what "the same system" means. The coupling matches the DSFs matrix by matrix, with the state
# of {eq}`eq-equivalences-attention` — the normalised memory. $\Phi$ alone does not fix $A_i$: rescaling the
# state at every step, $h_i \to s_i h_i$, multiplies $A_i$ by $s_i/s_{i-1}$ and moves compensating factors
# into $B_i$ and $C_i$. With the unnormalised memory ($s_i = \eta_i$) linear attention has $A_i = I$ and
# carries $1/\eta_i$ in $C_i$ instead; the same $\Phi$ comes out:

# %%
with torch.no_grad():
    b_, L_, _ = u.shape
    q, k, _, _ = attention.features(u)  # phi(q_i), phi(k_i) per head
    # 1/eta_i of each channel's head, (b, L, d):
    # folded into the output map, i.e. into C_i
    inv_eta = (1.0 / attention.normalizer(u)).repeat_interleave(d // H, dim=-1)
    unnormalised = dsf_from_scan(
        q, k, torch.zeros(b_, L_, H, dtype=u.dtype),
        value_map=attention.W_V.weight.expand(b_, L_, d, d),
        output_map=attention.W_O.weight * inv_eta[..., None, :])
    gauge_diff = (dsflib.materialize_phi(unnormalised) - phi_att).abs().max().item()
print(f"unnormalised state: A_i in [{unnormalised.A.min().item():g}, "
      f"{unnormalised.A.max().item():g}]; max |Phi - Phi_attention| = {gauge_diff:.1e}")
assert torch.equal(unnormalised.A, torch.ones_like(unnormalised.A))
assert gauge_diff < 1e-12

# %% [markdown]
# So the statement is about the DSF in the paper's convention (App. B: $\eta$ in both $\Lambda_i$ and $B_i$), the one in which
# attention's $A_i$ and $B_i$ are coupled through $\eta_i$ as an SSM's are through $\Delta_i$. It is also a
# statement about one input at a time. As layers the two differ further: an SSD computes $c_i = W_C u_i$,
# $b_i = W_B u_i$ and $\Delta_i$ from $u_i$ alone, while the coupled values involve the feature map $\phi$ and,
# through $\eta$, the whole prefix.
#
# ## SSD and S6: S6 with tied decays
#
# In the other direction the relation is an inclusion. SSD is S6 with the restrictions
# {eq}`eq-ssd-restriction`: all state entries of a head share one rate, $A_c = a_{h(c)} I_n$, and one step,
# $\Delta_{i,c} = \Delta_{i,h(c)}$. We build an S6 layer, tie its parameters through its public attributes,
# copy them into an SSD layer and compare, for one head (one rate $a$ and one step for every channel) and
# for $H = d$ heads (one rate per channel, the step sizes already per channel). The copy, after
# `dsflib.equivalences.ssd_from_tied_s6` has checked that the S6 is tied:
#
# ```{literalinclude} ../dsflib/equivalences.py
# :pyobject: ssd_from_tied_s6
# :lines: 1,20-27
# :caption: `dsflib/equivalences.py`, `ssd_from_tied_s6` (excerpt) — S6's tied parameters become SSD's
# ```

# %%
def tied_s6(d_model, n_state, heads, seed):
    """An S6 layer whose steps and rates are tied per head, as SSD requires."""
    torch.manual_seed(seed)
    s6 = S6(d_model, n=n_state, dt_rank=2).double().eval()
    group = d_model // heads
    with torch.no_grad():
        s6.W_delta_up.bias.normal_(0.0, 0.5)
        s6.D.normal_(1.0, 0.5)
        # one step projection and bias per head,
        # one rate for all state entries of a head
        up = s6.W_delta_up
        up.weight.copy_(up.weight[::group].repeat_interleave(group, 0))
        up.bias.copy_(up.bias[::group].repeat_interleave(group, 0))
        rates = torch.randn(heads, 1, dtype=torch.float64).repeat_interleave(group, 0)
        s6.A_log.copy_(rates.expand(-1, n_state))
    return s6


d_s, n_s = settings["ssm_d"], settings["ssm_n"]
u_s = torch.randn(settings["batch"], L, d_s, generator=generator, dtype=torch.float64)
rows = []
for heads in (1, d_s):
    s6 = tied_s6(d_s, n_s, heads, seed + 3)
    # copies the tied parameters; refuses an untied S6:
    ssd = ssd_from_tied_s6(s6, heads).eval()
    with torch.no_grad():
        d6, dd = s6.to_dsf(u_s), ssd.to_dsf(u_s)
        tied = (s6(u_s) - ssd(u_s)).abs().max().item()
        matrices = max((dd.diag_A() - d6.A).abs().max().item(),
                       *[(getattr(dd, m) - getattr(d6, m)).abs().max().item()
                         for m in "BCD"])
        s6.A_log[0, 1] += 0.5  # untie one rate of one channel
        untied = (s6(u_s) - ssd(u_s)).abs().max().item()
    rows.append({"SSD heads": heads, "max |y_S6 − y_SSD| (tied)": tied,
                 "max DSF matrix diff (tied)": matrices,
                 "max |y_S6 − y_SSD| (one rate untied)": untied})
    assert tied < 1e-12 and matrices < 1e-13 and untied > 1e-4
show_table(pd.DataFrame(rows), digits=2, caption="S6 with tied decays against SSD");

# %% [markdown]
# Tied, the two layers agree to rounding error in their outputs *and* in every DSF matrix; changing one of
# S6's $nd$ rates breaks the equality at once. SSD is the sub-family of S6 whose transitions have been
# reduced from $nd$ entries to one scalar per head.

# %% [markdown]
# ## The paper's §4.2: generalized linear attention vs. S6
#
# The paper's own comparison (§4.2) starts from the correspondence: "the S6 parameters
# $b_{i}=W_{B}u_{i}\in\mathbb{R}^{n}$, $c_{i}=W_{C}u_{i}\in\mathbb{R}^{n}$ directly correspond to the keys and
# queries in attention, i.e. $k_{i}=b_{i}$ and $q_{i}=c_{i}$. Moreover, the state expansion $n$ in S6 is the same
# as the hidden dimension in attention". It then names two differences:
#
# - **Number of parameters.** "The transition matrix $\Lambda_{i}$ has $d$ parameters in S6 (19) and only 1 in
#   attention" — with $s$ heads, $s$ (App. G).
# - **Normalization strategy vs discretization step.** In attention, $\eta$ "enters as a fraction in
#   $\Lambda_{i}$ and also as a denominator in $B_{i}$. Given that this map is a scalar, these two cancel out
#   when computing the output", whereas in S6 "the only shared parameter – discretization step $\Delta_{i}$ –
#   does not cancel out in $\Lambda_{i}$ and $B_{i}$ given their different structure" (§4.2).
#
# We check all three statements on DSFs. Attention is generalized linear attention (eq. 17: $\phi(q) = q$,
# $\psi(k) = k$) with the paper's normalizer (22), `NormalizedAttention`, given S6's projections as its
# query and key maps ($W_Q = W_C$, $W_K = W_B$) and $W_V = W_O = I$; S6 is taken before its output
# projection. For the cancellation, write each input matrix as a normalization factor times its
# unnormalized part, $B_j = \beta_j \odot (I_d \otimes k_j)$ ($\beta_j = 1/\eta_j$ in attention,
# $\beta_{j,c} = \Delta_{j,c}$ in S6), so that
#
# $$
# \begin{aligned}
# \Lambda_i \cdots \Lambda_{j+1} B_j &= \kappa_{ij} \odot (I_d \otimes k_j),\\
# \kappa_{ij} = \Big(\prod_{k=j+1}^{i} \Lambda_k\Big) \beta_j &=
# \begin{cases} \frac{\eta_j}{\eta_i} \cdot \frac{1}{\eta_j} = \frac{1}{\eta_i} & \text{attention,}\\
# e^{A_c \sum_{k=j+1}^{i} \Delta_{k,c}}\, \Delta_{j,c} & \text{S6.} \end{cases}
# \end{aligned}
# $$ (eq-equivalences-kappa)
#
# In attention the factor of token $j$ telescopes away and $\kappa_{ij}$ depends on $i$ only (the paper:
# "in attention $\Pi_{k=j}^{i} \Lambda_k B_j$ evaluates to $\frac{1}{\eta(q_{i},\mathbf{k}_{i})}$", §4.2). In S6 it
# does not. We read $\kappa_{ij}$ off the two DSFs and measure, for every output token $i$, how much it varies
# over the input tokens $j \le i$:

# %%
from dsflib.models.normalized_attention import NormalizedAttention

torch.manual_seed(seed + 5)
s6_42 = S6(d_s, n=n_s).double().eval()
with torch.no_grad():
    s6_42.W_delta_up.bias.normal_(0.0, 0.5)  # steps of order one
attention_42 = NormalizedAttention(d_s, n=n_s, heads=1).double().eval()
with torch.no_grad():
    attention_42.W_Q.weight.copy_(s6_42.W_C.weight)  # q_i = c_i
    attention_42.W_K.weight.copy_(s6_42.W_B.weight)  # k_i = b_i
    for W in (attention_42.W_V, attention_42.W_O):
        W.weight.copy_(torch.eye(d_s, dtype=torch.float64))
    u_42 = u_s[:1]
    dsf_s6 = s6_42.to_dsf(u_42, include_output_projection=False)
    dsf_att = attention_42.to_dsf(u_42)
    # (L, n): b_i = k_i, c_i = q_i
    b_42, c_42 = s6_42.W_B(u_42)[0], s6_42.W_C(u_42)[0]
    eta_42 = attention_42.normalizer(u_42)[0, :, 0]  # (L,)
eye_d = torch.eye(d_s, dtype=torch.float64)
# I_d (x) c_i^T:
C_expected = torch.stack([torch.kron(eye_d, c_42[i][None, :]) for i in range(L)])
C_error = max((dsf_s6.C[0] - C_expected).abs().max().item(),
              (dsf_att.C[0] - C_expected).abs().max().item())


def kappa(dsf, keys):
    """kappa_ij per state entry (c, m), shape (L, L, N):
    prod_{k=j+1}^{i} A_k times B_j's factor beta_j."""
    # (L, N), (L, N, d); each row of B_j has one nonzero entry:
    A, B = dsf.diag_A()[0], dsf.B[0]
    # (L, N): beta_j = B_j / (I_d (x) k_j) on its support:
    beta = B.sum(-1) / keys.repeat(1, dsf.d)
    L_, N_ = A.shape
    out = torch.zeros(L_, L_, N_, dtype=A.dtype)
    for j in range(L_):
        decay = torch.cat([torch.ones(1, N_, dtype=A.dtype),
                           torch.cumprod(A[j + 1 :], dim=0)])
        out[j:, j] = decay * beta[j]
    return out


def spread_over_j(k_ij):
    """max over i, j <= i and state entries of |kappa_ij - kappa_ii| / |kappa_ii|."""
    diag = torch.diagonal(k_ij, dim1=0, dim2=1).T  # (L, N): kappa_ii
    rel = (k_ij - diag[:, None, :]).abs() / diag[:, None, :].abs()
    return rel[torch.tril(torch.ones(L, L, dtype=torch.bool))].max().item()


k_att, k_s6 = kappa(dsf_att, b_42), kappa(dsf_s6, b_42)
k_att_diag = torch.diagonal(k_att, dim1=0, dim2=1).T
inv_eta_error = (k_att_diag - (1 / eta_42)[:, None]).abs().max().item()
# Delta_{i,c}, per entry:
delta_42 = -torch.log(dsf_s6.A[0]).reshape(L, d_s, n_s) / torch.exp(s6_42.A_log)
n_params_att = torch.unique(dsf_att.diag_A()[0, 1]).numel()
n_params_s6 = torch.unique(delta_42[1, :, 0]).numel()
section42 = pd.DataFrame({
    "quantity": ["input-dependent numbers in $\\Lambda_i$ (token 1)",
                 "$\\max_{i,j} \\lvert\\kappa_{ij} - \\kappa_{ii}\\rvert "
                 "/ \\lvert\\kappa_{ii}\\rvert$",
                 "$\\kappa_{ij}$"],
    "generalized linear attention (22)": [
        f"{n_params_att}", f"{spread_over_j(k_att):.1e}",
        f"$1/\\eta_i$ (max deviation {inv_eta_error:.0e})"],
    "S6 (19), before $W_{out}$": [
        f"{n_params_s6} (d = {d_s})", f"{spread_over_j(k_s6):.2f}",
        "depends on $\\Delta_j, \\dots, \\Delta_i$"],
})
print(f"C_i = I_d (x) c_i^T in both DSFs (q_i = c_i): max deviation {C_error:.1e}")
print(f"N = {dsf_att.N} and {dsf_s6.N}")
show_table(section42, caption="The paper's §4.2 statements, measured on the two DSFs")
assert C_error == 0.0 and dsf_att.N == dsf_s6.N == n_s * d_s
# S6: one step per channel, shared by its n rates:
assert (delta_42 - delta_42[..., :1]).abs().max() < 1e-12
assert n_params_att == 1 and n_params_s6 == d_s
assert spread_over_j(k_att) < 1e-12 and inv_eta_error < 1e-12
assert spread_over_j(k_s6) > 0.1

# %% [markdown]
# The measurements are the paper's three statements in numbers. With $q_i = c_i$ the output matrices are
# identical, and both states have $N = nd$. Attention's $\Lambda_i$ is one number per token, S6's is set by $d$
# step sizes (each channel's $n$ eigenvalues share one $\Delta_{i,c}$). And attention's $\kappa_{ij}$ is constant
# over $j$ to rounding error, equal to $1/\eta_i$: the normalization of the input token has cancelled and
# only that of the output token remains, a scaling of row $i$ of $\Phi$. In S6, $\kappa_{ij}$ changes with
# $j$ by order one: "some input-dependent features are normalized differently in the two architectures" (§4.2).

# %% [markdown]
# ## The three structural differences
#
# Putting the pieces together, with the measured numbers of this chapter (attention and the SSMs at the
# sizes above; "distinct eigenvalues" counted on the DSFs of this chapter's inputs):

# %%
def eigenvalue_counts(dsf):
    """Distinct diagonal entries of A_i over all sequences and tokens i >= 1
    (A_0 multiplies h_{-1} = 0)."""
    A = dsf.diag_A()
    counts = {torch.unique(A[b, i]).numel()
              for b in range(dsf.batch) for i in range(1, dsf.length)}
    return "-".join(str(c) for c in sorted(counts)[:: max(1, len(counts) - 1)])


torch.manual_seed(seed)
s6_free, ssd_free = S6(d_s, n=n_s).double(), SSD(d_s, n=n_s, heads=2).double()
with torch.no_grad():
    s6_dsf, ssd_dsf = s6_free.to_dsf(u_s), ssd_free.to_dsf(u_s)
    attention_gen = attention.to_dsf(u_gen)  # the random inputs of the previous section
table = pd.DataFrame({
    "difference": ["1. normalization / coupling of $A_i$, $B_i$",
                   "2. transition richness", "3. state expansion"],
    "linear attention": [
        f"through $\\eta_i$ (query and all past keys); "
        f"max $A_i$ = {attention_gen.A[:, 1:].max().item():.3f}",
        f"{eigenvalue_counts(attention_gen)} distinct eigenvalues per $A_i$ (H = {H})",
        f"N = {attention_gen.N} = n·d, n = {n} = feature dimension per head",
    ],
    "SSD": [
        f"through $\\Delta_i$ (current token); "
        f"max $A_i$ = {ssd_dsf.A.max().item():.4f}",
        f"{eigenvalue_counts(ssd_dsf)} distinct eigenvalues per $A_i$ "
        f"(H = {ssd_free.heads})",
        f"N = {ssd_dsf.N} = n·d, n = {n_s} = state dimension",
    ],
    "S6": [
        f"through $\\Delta_{{i,c}}$ (current token); "
        f"max $A_i$ = {s6_dsf.A.max().item():.4f}",
        f"{eigenvalue_counts(s6_dsf)} distinct eigenvalues per $A_i$ "
        f"(n·d = {n_s * d_s})",
        f"N = {s6_dsf.N} = n·d, n = {n_s} = state dimension",
    ],
})
assert attention_gen.A[:, 1:].max() > 1 and ssd_dsf.A.max() < 1 and s6_dsf.A.max() < 1
assert eigenvalue_counts(s6_dsf) == str(n_s * d_s)
assert eigenvalue_counts(attention_gen) == str(H)
show_table(table, caption="The three structural differences, measured in this chapter");

# %% [markdown]
# 1. **Normalization / coupling.** All three couple $A_i$ to $B_i$ through one quantity: $\eta_i$ in attention,
#    $\Delta_i$ in the SSMs. Attention's is computed from the query and the whole prefix and can push $A_i$ above
#    one; the SSMs' is computed from the current token and keeps $A_i$ in $(0, 1)$. The coupled DSF of attention
#    is a valid SSD DSF exactly when its normaliser grows at every step (as for a repeated token).
# 2. **Transition richness.** Attention and SSD move each head's state with one scalar; S6 has $nd$ distinct
#    eigenvalues per token, and SSD is S6 with them tied.
# 3. **State expansion.** All three have $N = n\,d$, with $n$ the key/feature dimension for attention and the
#    state dimension for the SSMs; for softmax attention $n$ is infinite ({doc}`softmax_attention`).
#
# ## Related chapters
#
# - {doc}`linear_attention`: the attention side of the coupling, and why its $A_i$ exceed one.
# - {doc}`normalized_attention`: the paper's variant whose normaliser depends on the current token only — one
#   step closer to an SSM's $\Delta$.
# - {doc}`ssd` and {doc}`s6`: the two SSMs compared here; {doc}`lti_ssm`: their time-invariant ancestor.
# - {doc}`dsf`: the framework, $\Phi$ and the state bottleneck.
