"""An independent NumPy reference of one training step of Loom's zoo models.

The forward pass is reference.py's (written from docs/OpSemantics.md and
lib/Models/TransformerBuilder.cpp); this module adds, for every op the zoo
models use, its backward written from the math as a vector-Jacobian product
(no autodiff library), then gradient accumulation over microbatches, global
norm clipping as torch.nn.utils.clip_grad_norm_, and AdamW as PyTorch's
non-fused, non-amsgrad torch.optim.AdamW.

Everything is computed in float64 from the float32 inputs. `dtype=np.float32`
instead rounds every op's result to float32: an emulation of an f32 runtime
that the self-check uses to size the driver's tolerances (it is not a
reference).

The contract the compiler's training step implements (train_step):
  * tokens/targets int32 [M·batch, seq]; microbatch i is rows
    [i·batch, (i+1)·batch). loss = mean over microbatches of each
    microbatch's cross_entropy (a mean over its positions); gradients are of
    that loss (each microbatch's gradient scaled by 1/M and summed).
  * grad_norm = global L2 norm of all parameter gradients, before clipping.
  * clipping as clip_grad_norm_: coef = min(max_norm / (grad_norm + 1e-6), 1),
    always applied; max_norm = 0 disables it.
  * AdamW for step t (1-based, given): p ← p·(1 − lr·wd);
    m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
    p ← p − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε);
    wd only for parameters of rank ≥ 2 (biases and norm weights get 0).
  * names: `<p>.grad` (accumulated, unclipped), `<p>` (updated),
    `<p>.exp_avg` (m), `<p>.exp_avg_sq` (v), plus `loss` and `grad_norm`.

`variant` switches reproduce plausible mistakes, so the self-check can show
that each moves the result far beyond the driver's tolerances.
"""

import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean under lit
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402


# The plausible mistakes `variant` can switch on, for the self-check.
MISTAKES = {
    "no_microbatch_scale": "microbatch gradients summed, not averaged",
    "gqa_grad_mean": "a kv head's gradient averaged over its query heads",
    "rope_bwd_same_angle": "rope's backward rotates by +angle, not -angle",
    "tied_output_only": "tied table gets only the output layer's gradient",
    "bwd_slots_k_major": "the backward replays slots k-major",
    "wd_on_all": "weight decay on biases and norm weights too",
    "adam_l2": "weight decay as L2 in the gradient (Adam, not AdamW)",
    "no_bias_correction": "no 1 - beta^t bias correction",
    "no_clip": "gradients not clipped",
    "beta2_f32": "1 - beta2 computed in f32",
}


@dataclass
class Hyper:
    """AdamW and clipping hyper-parameters (PyTorch's AdamW defaults, except
    that weight decay is limited to rank >= 2 parameters)."""
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    max_norm: float = 1.0      # 0 disables clipping


def state_names(name):
    """Optimizer state of parameter `name`: (first moment, second moment)."""
    return name + ".exp_avg", name + ".exp_avg_sq"


def decays(shape):
    """Weight decay applies to matrices and larger (Megatron-LM excludes
    biases and 1-D norm weights)."""
    return len(shape) >= 2


# ----------------------------------------------------------------------------
# Backward of every op: vector-Jacobian products, float64 (or the inputs'
# dtype). Each takes the gradient of the op's result (dy) and the forward's
# inputs, and returns the gradients of those inputs.
# ----------------------------------------------------------------------------

def _swap(a):
    return np.swapaxes(a, -1, -2)


def matmul_bwd(dc, a, b, transpose_a=False, transpose_b=False):
    """C = A'·B' (A' = Aᵀ if transpose_a, B' likewise): dA' = dC·B'ᵀ,
    dB' = A'ᵀ·dC; a weight b without batch dims is shared by every batch
    element, so its gradient sums over them."""
    A = _swap(a) if transpose_a else a                  # [..., M, K]
    B = _swap(b) if transpose_b else b                  # [..., K, N]
    dA = dc @ _swap(B)
    if b.ndim == 2 and a.ndim > 2:
        K, N = B.shape
        dB = A.reshape(-1, K).T @ dc.reshape(-1, N)     # sum over batch dims
    else:
        dB = _swap(A) @ dc
    return (_swap(dA) if transpose_a else dA), (_swap(dB) if transpose_b else dB)


def broadcast(x, shape, dims):
    """loom.broadcast: x's dim i maps to result dim dims[i]."""
    view = [1] * len(shape)
    for i, d in enumerate(dims):
        view[d] = x.shape[i]
    return np.broadcast_to(x.reshape(view), shape)


def broadcast_bwd(dy, in_shape, dims):
    """Transpose of a broadcast: sum over the repeated dims (result dims not
    in `dims`, and dims of size 1 that were stretched)."""
    other = tuple(d for d in range(dy.ndim) if d not in dims)
    g = dy.sum(axis=other)
    for i, n in enumerate(in_shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def reshape_bwd(dy, in_shape):
    """Reshape keeps data order: its transpose is the reshape back."""
    return dy.reshape(in_shape)


def transpose_bwd(dy, permutation):
    """y dim i = x dim perm[i]: dx is dy transposed by the inverse perm."""
    return np.transpose(dy, np.argsort(permutation))


def linear_bwd(dy, x, w, has_bias):
    """y = x·wᵀ + b (b broadcast over leading dims): matmul with
    transpose_b, and db = dy summed over every leading dim."""
    dx, dw = matmul_bwd(dy, x, w, transpose_b=True)
    db = broadcast_bwd(dy, w.shape[:1], (dy.ndim - 1,)) if has_bias else None
    return dx, dw, db


def rmsnorm_bwd(dy, x, w, eps):
    """y = x·r·w, r = (mean(x²) + ε)^-½: dx = r·(dy·w) − x·r³·mean(dy·w·x),
    dw = Σ dy·x·r over leading dims."""
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    g = dy * w
    dx = r * g - x * (r ** 3) * np.mean(g * x, axis=-1, keepdims=True)
    dw = (dy * x * r).reshape(-1, x.shape[-1]).sum(axis=0)
    return dx, dw


def layernorm_bwd(dy, x, w, eps, has_bias=True):
    """y = x̂·w + b, x̂ = (x − μ)·r, r = (σ² + ε)^-½ (biased σ²):
    dx = r·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·w; dw = Σ dy·x̂; db = Σ dy."""
    mu = np.mean(x, axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(np.var(x, axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * r
    g = dy * w
    dx = r * (g - np.mean(g, axis=-1, keepdims=True)
              - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    H = x.shape[-1]
    dw = (dy * xhat).reshape(-1, H).sum(axis=0)
    db = dy.reshape(-1, H).sum(axis=0) if has_bias else None
    return dx, dw, db


_GELU_C = math.sqrt(2.0 / math.pi)


def gelu_bwd(dy, x, approximate="none"):
    """none: d/dx x·Φ(x) = Φ(x) + x·φ(x);
    tanh: t = tanh(c·(x + 0.044715x³)),
    d = ½(1 + t) + ½x·(1 − t²)·c·(1 + 3·0.044715x²)."""
    if approximate == "tanh":
        t = np.tanh(_GELU_C * (x + 0.044715 * x ** 3))
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _GELU_C * (
            1.0 + 3.0 * 0.044715 * x * x)
    else:
        erf = np.vectorize(math.erf, otypes=[np.float64])
        cdf = (0.5 * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype)
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        d = cdf + x * pdf
    return dy * d


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def silu_bwd(dy, x):
    """d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x)))."""
    s = _sigmoid(x)
    return dy * s * (1.0 + x * (1.0 - s))


def swiglu_bwd(dy, gate, up):
    """y = silu(gate)·up: dgate = dy·up·silu'(gate), dup = dy·silu(gate)."""
    return silu_bwd(dy * up, gate), dy * ref.silu(gate)


def _rotate(x, theta, positions):
    """Rotate-half rotation of x[B, S, N, D] by angle positions[s]·f_i."""
    D = x.shape[-1]
    half = D // 2
    freqs = theta ** (-2.0 * np.arange(half, dtype=np.float64) / D)
    angle = positions[:, None] * freqs[None, :]
    cos = np.cos(angle)[None, :, None, :].astype(x.dtype)
    sin = np.sin(angle)[None, :, None, :].astype(x.dtype)
    lo, hi = x[..., :half], x[..., half:]
    return np.concatenate([lo * cos - hi * sin, hi * cos + lo * sin], axis=-1)


def rope_bwd(dy, theta, position_offset=0, variant=None):
    """rope rotates each pair (i, i + D/2) by an orthogonal 2×2 rotation;
    its transpose is the rotation by the opposite angle."""
    S = dy.shape[1]
    pos = np.arange(S, dtype=np.float64) + position_offset
    sign = 1.0 if variant and variant.get("rope_bwd_same_angle") else -1.0
    return _rotate(dy, theta, sign * pos)


def _attention_probs(q, kk, causal, scale):
    """P[b, h, sq, sk] = softmax over keys of q·kᵀ·scale (masked)."""
    S = q.shape[1]
    scores = np.einsum("bqhd,bkhd->bhqk", q, kk) * scale
    if causal:
        mask = np.tril(np.ones((S, S), dtype=bool))       # s_k <= s_q
        scores = np.where(mask[None, None], scores, -np.inf)
    return ref.softmax(scores, axis=-1)


def attention_bwd(do, q, k, v, causal=True, scale=None, variant=None):
    """O = P·V with P = softmax(q·kᵀ·scale), query head h reading kv head
    h // (Hq/Hkv). dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)),
    dQ = scale·dS·K, dK = scale·dSᵀ·Q; a kv head's gradient is the sum over
    the query heads of its group. Masked entries have P = 0, so dS = 0."""
    B, S, Hq, D = q.shape
    Hkv = k.shape[2]
    group = Hq // Hkv
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    kv_of = np.arange(Hq) // group
    kk, vv = k[:, :, kv_of, :], v[:, :, kv_of, :]
    p = _attention_probs(q, kk, causal, scale)
    dvv = np.einsum("bhqk,bqhd->bkhd", p, do)
    dp = np.einsum("bqhd,bkhd->bhqk", do, vv)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
    dq = np.einsum("bhqk,bkhd->bqhd", ds, kk) * scale
    dkk = np.einsum("bhqk,bqhd->bkhd", ds, q) * scale

    # Heads g·group .. g·group + group − 1 read kv head g.
    def reduce(g):
        g = g.reshape(B, S, Hkv, group, D)
        if variant and variant.get("gqa_grad_mean"):
            return g.mean(axis=3)
        return g.sum(axis=3)
    return dq, reduce(dkk), reduce(dvv)


def embedding_bwd(dy, ids, vocab):
    """out[...] = table[ids[...]]: scatter-add dy into the rows it read
    (a token that appears twice gets both contributions)."""
    H = dy.shape[-1]
    dtable = np.zeros((vocab, H), dtype=dy.dtype)
    np.add.at(dtable, ids.reshape(-1).astype(np.int64), dy.reshape(-1, H))
    return dtable


def cross_entropy_bwd(logits, targets, dloss=1.0):
    """loss = mean over N positions of lse(z) − z[target]:
    dz = (softmax(z) − onehot(target)) · dloss / N."""
    g = ref.softmax(logits, axis=-1)
    flat = g.reshape(-1, g.shape[-1])
    flat[np.arange(flat.shape[0]), targets.reshape(-1).astype(np.int64)] -= 1.0
    return g * (dloss / targets.size)


def router_bwd(dw, logits, indices, softmax_before_topk=False,
               normalize=False):
    """The top-k choice is piecewise constant (not differentiated); the
    gradient flows through the gate values to the logits.
      Mixtral: w = softmax(z[idx]): dz[idx] = w ⊙ (dw − Σ dw·w).
      softmax first: p = softmax(z), w = p[idx] (/ s with s = Σ p[idx] if
      normalize: dp[idx] = (dw − Σ dw·w) / s); then dz = p ⊙ (dp − Σ dp·p)."""
    idx = indices.astype(np.int64)
    dz = np.zeros_like(logits)
    if not softmax_before_topk:
        w = ref.softmax(np.take_along_axis(logits, idx, axis=-1), axis=-1)
        dtop = w * (dw - np.sum(dw * w, axis=-1, keepdims=True))
        np.put_along_axis(dz, idx, dtop, axis=-1)
        return dz
    p = ref.softmax(logits, axis=-1)
    psel = np.take_along_axis(p, idx, axis=-1)
    if normalize:
        s = np.sum(psel, axis=-1, keepdims=True)
        w = psel / s
        dsel = (dw - np.sum(dw * w, axis=-1, keepdims=True)) / s
    else:
        dsel = dw
    dp = np.zeros_like(logits)
    np.put_along_axis(dp, idx, dsel, axis=-1)
    return p * (dp - np.sum(dp * p, axis=-1, keepdims=True))


def slots(indices, num_experts, capacity, variant=None, groups=1):
    """The slot of every (t, j) assignment, -1 when dropped (reference.py's
    replay: token order, then k order, within each token group)."""
    return ref._slots(indices, num_experts, capacity, variant, groups)


def _kept(slots_):
    t, j = np.nonzero(slots_ >= 0)
    return t, j


def dispatch_bwd(dout, indices, slots_, num_tokens):
    """out[e, slot(t, j)] = x[t] for kept assignments: dx[t] = Σ_j dout[e,
    slot] over its kept assignments; a dropped assignment gets nothing."""
    dx = np.zeros((num_tokens, dout.shape[-1]), dtype=dout.dtype)
    t, j = _kept(slots_)
    np.add.at(dx, t, dout[indices[t, j], slots_[t, j]])
    return dx


def combine_bwd(dout, y, weights, indices, slots_):
    """out[t] = Σ_j w[t, j]·y[e, slot] over kept assignments:
    dy[e, slot] = w[t, j]·dout[t], dw[t, j] = dout[t]·y[e, slot]; dropped
    assignments (and unfilled slots) get zero."""
    dy = np.zeros_like(y)
    dw = np.zeros_like(weights)
    t, j = _kept(slots_)
    e, s = indices[t, j], slots_[t, j]
    dy[e, s] = weights[t, j][:, None] * dout[t]   # each (e, s) holds one (t, j)
    dw[t, j] = np.sum(dout[t] * y[e, s], axis=-1)
    return dy, dw


def grouped_matmul_bwd(dy, x, w, transpose_w=True):
    """Per expert e, y[e] = x[e]·w[e]ᵀ (transpose_w, w[E, N, K]) or
    x[e]·w[e] (w[E, K, N]): dx[e] = dy[e]·w[e] (or ·w[e]ᵀ), dw[e] = dy[e]ᵀ·x[e]
    (or x[e]ᵀ·dy[e])."""
    if transpose_w:
        return (np.einsum("ecn,enk->eck", dy, w),
                np.einsum("ecn,eck->enk", dy, x))
    return (np.einsum("ecn,ekn->eck", dy, w),
            np.einsum("eck,ecn->ekn", x, dy))


# ----------------------------------------------------------------------------
# The model: forward keeping what the backward needs, then the backward
# ----------------------------------------------------------------------------

def model_forward(cfg, P, tokens, targets, variant=None):
    """reference.forward's graph, op by op in P's dtype, keeping the
    activations. Returns (loss, cache)."""
    variant = variant or {}
    dt = next(iter(P.values())).dtype
    B, S, H, D = cfg.batch, cfg.seq, cfg.hidden, cfg.d
    eps = cfg.norm_epsilon
    bias = cfg.linear_bias

    def cast(a):
        return np.asarray(a).astype(dt, copy=False)

    def linear(x, name):
        return cast(ref.linear_op(x, P[name + ".weight"],
                                  P[name + ".bias"] if bias else None))

    def norm(x, name):
        if cfg.norm == "rmsnorm":
            return cast(ref.rmsnorm(x, P[name + ".weight"], eps))
        return cast(ref.layernorm(x, P[name + ".weight"], P[name + ".bias"],
                                  eps))

    cache = {"tokens": tokens, "targets": targets, "layers": [],
             "routing": [], "aux": 0.0}
    h = P["embed_tokens.weight"][tokens.astype(np.int64)]
    if cfg.learned_positions:
        h = cast(h + broadcast(P["embed_positions.weight"], (B, S, H), (1, 2)))
    for i in range(cfg.layers):
        p = f"layers.{i}"
        c = {"h0": h}
        c["x1"] = x = norm(h, p + ".input_norm")
        a = p + ".attn"
        c["q0"] = q = linear(x, a + ".q_proj").reshape(B, S, cfg.heads, D)
        c["k0"] = k = linear(x, a + ".k_proj").reshape(B, S, cfg.kv_heads, D)
        c["v"] = v = linear(x, a + ".v_proj").reshape(B, S, cfg.kv_heads, D)
        if cfg.qk_norm:
            q = cast(ref.rmsnorm(q, P[a + ".q_norm.weight"], eps))
            k = cast(ref.rmsnorm(k, P[a + ".k_norm.weight"], eps))
        if not cfg.learned_positions:
            q = cast(ref.rope(q, cfg.rope_theta, 0))
            k = cast(ref.rope(k, cfg.rope_theta, 0))
        c["q"], c["k"] = q, k
        o = cast(ref.attention(q, k, v, causal=True))
        c["o"] = o = o.reshape(B, S, cfg.heads * D)
        h = h + linear(o, a + ".o_proj")
        c["h1"] = h
        c["x2"] = x = norm(h, p + ".post_attention_norm")
        if cfg.is_moe:
            m = p + ".moe"
            T, E, C = cfg.tokens, cfg.experts, cfg.capacity
            flat = x.reshape(T, H)
            c["logits"] = logits = linear(flat, m + ".router")
            w, idx = ref.router(logits, cfg.topk, cfg.softmax_before_topk,
                                cfg.normalize_topk)
            c["w"], c["idx"] = cast(w), idx
            if cfg.moe_aux_loss_coeff > 0:
                # The load-balancing loss (reference.py's forward): softmax
                # over all experts, the tokens routed to each expert.
                z = logits - logits.max(axis=-1, keepdims=True)
                c["aux_probs"] = probs = np.exp(z) / np.exp(z).sum(
                    axis=-1, keepdims=True)
                c["aux_routed"] = routed = np.bincount(idx.reshape(-1),
                                                       minlength=E)
                c["aux_scale"] = aux_scale = (E * cfg.moe_aux_loss_coeff /
                                              (T * T * cfg.topk))
                cache["aux"] += float(np.sum(probs.sum(axis=0) * routed) *
                                      aux_scale)
            G = cfg.token_groups
            c["slots"] = sl = slots(idx, E, C, groups=G)
            srt = np.sort(logits, axis=-1)[:, ::-1]
            margin = (float(np.min(srt[:, cfg.topk - 1] - srt[:, cfg.topk]))
                      if cfg.topk < E else math.inf)
            cache["routing"].append({"indices": idx, "margin": margin,
                                     "dropped": int(np.sum(sl < 0))})
            c["xs"] = xs = cast(ref.dispatch(flat, idx, E, C, groups=G))
            c["gate"] = g = cast(ref.grouped_matmul(
                xs, P[m + ".experts.gate_proj.weight"]))
            c["up"] = u = cast(ref.grouped_matmul(
                xs, P[m + ".experts.up_proj.weight"]))
            c["act"] = act = cast(ref.swiglu(g, u))
            c["y"] = y = cast(ref.grouped_matmul(
                act, P[m + ".experts.down_proj.weight"]))
            out = cast(ref.combine(y, c["w"], idx, C,
                                   groups=G)).reshape(B, S, H)
        elif cfg.mlp == "gelu":
            m = p + ".mlp"
            c["u"] = u = linear(x, m + ".fc1")
            c["act"] = act = cast(ref.gelu(u, "tanh"))
            out = linear(act, m + ".fc2")
        else:
            m = p + ".mlp"
            c["gate"] = g = linear(x, m + ".gate_proj")
            c["up"] = u = linear(x, m + ".up_proj")
            c["act"] = act = cast(ref.swiglu(g, u))
            out = linear(act, m + ".down_proj")
        h = h + out
        cache["layers"].append(c)
    cache["hL"] = h
    cache["hf"] = hf = norm(h, "final_norm")
    if cfg.tied_embeddings:
        logits = cast(hf @ P["embed_tokens.weight"].T)
    else:
        logits = linear(hf, "lm_head")
    cache["logits"] = logits
    loss = float(ref.cross_entropy(logits, targets)) + cache["aux"]
    return loss, cache


def model_backward(cfg, P, cache, dloss=1.0, variant=None):
    """Gradients of dloss·loss with respect to every parameter, the forward
    graph walked in reverse."""
    variant = variant or {}
    dt = next(iter(P.values())).dtype
    B, S, H, D = cfg.batch, cfg.seq, cfg.hidden, cfg.d
    eps = cfg.norm_epsilon
    bias = cfg.linear_bias
    G = {name: np.zeros_like(a) for name, a in P.items()}

    def cast(a):
        return np.asarray(a).astype(dt, copy=False)

    def linear_back(dy, x, name):
        dx, dw, db = linear_bwd(dy, x, P[name + ".weight"], bias)
        G[name + ".weight"] += dw
        if bias:
            G[name + ".bias"] += db
        return cast(dx)

    def norm_back(dy, x, name):
        if cfg.norm == "rmsnorm":
            dx, dw = rmsnorm_bwd(dy, x, P[name + ".weight"], eps)
        else:
            dx, dw, db = layernorm_bwd(dy, x, P[name + ".weight"], eps)
            G[name + ".bias"] += db
        G[name + ".weight"] += dw
        return cast(dx)

    dlogits = cast(cross_entropy_bwd(cache["logits"], cache["targets"], dloss))
    hf = cache["hf"]
    if cfg.tied_embeddings:
        dhf, dtable = matmul_bwd(dlogits, hf, P["embed_tokens.weight"],
                                 transpose_b=True)
        G["embed_tokens.weight"] += dtable
        dhf = cast(dhf)
    else:
        dhf = linear_back(dlogits, hf, "lm_head")
    dh = norm_back(dhf, cache["hL"], "final_norm")

    for i in reversed(range(cfg.layers)):
        p = f"layers.{i}"
        c = cache["layers"][i]
        # h2 = h1 + mlp(norm(h1)): the residual passes dh through.
        dout = dh
        if cfg.is_moe:
            m = p + ".moe"
            T, E = cfg.tokens, cfg.experts
            sl = c["slots"]
            if variant.get("bwd_slots_k_major"):
                sl = slots(c["idx"], E, cfg.capacity, {"dispatch_k_major": True},
                           cfg.token_groups)
            dy, dw = combine_bwd(dout.reshape(T, H), c["y"], c["w"], c["idx"],
                                 sl)
            dact, dWd = grouped_matmul_bwd(
                dy, c["act"], P[m + ".experts.down_proj.weight"])
            G[m + ".experts.down_proj.weight"] += dWd
            dg, du = swiglu_bwd(cast(dact), c["gate"], c["up"])
            dxs_g, dWg = grouped_matmul_bwd(
                cast(dg), c["xs"], P[m + ".experts.gate_proj.weight"])
            dxs_u, dWu = grouped_matmul_bwd(
                cast(du), c["xs"], P[m + ".experts.up_proj.weight"])
            G[m + ".experts.gate_proj.weight"] += dWg
            G[m + ".experts.up_proj.weight"] += dWu
            dflat = dispatch_bwd(cast(dxs_g + dxs_u), c["idx"], sl, T)
            dlog = router_bwd(dw, c["logits"], c["idx"],
                              cfg.softmax_before_topk, cfg.normalize_topk)
            if "aux_probs" in c:
                # d aux / d probs[t, e] = scale * routed[e] (the counts get
                # no gradient), through the softmax over the experts.
                probs = c["aux_probs"]
                g = dloss * c["aux_scale"] * c["aux_routed"][None, :]
                dlog = dlog + probs * (g - np.sum(probs * g, axis=-1,
                                                  keepdims=True))
            dflat = dflat + linear_back(cast(dlog), c["x2"].reshape(T, H),
                                        m + ".router")
            dx2 = dflat.reshape(B, S, H)
        elif cfg.mlp == "gelu":
            m = p + ".mlp"
            dact = linear_back(dout, c["act"], m + ".fc2")
            du = cast(gelu_bwd(dact, c["u"], "tanh"))
            dx2 = linear_back(du, c["x2"], m + ".fc1")
        else:
            m = p + ".mlp"
            dact = linear_back(dout, c["act"], m + ".down_proj")
            dg, du = swiglu_bwd(dact, c["gate"], c["up"])
            dx2 = (linear_back(cast(dg), c["x2"], m + ".gate_proj")
                   + linear_back(cast(du), c["x2"], m + ".up_proj"))
        dh = dh + norm_back(cast(dx2), c["h1"], p + ".post_attention_norm")

        # h1 = h0 + attn(norm(h0)).
        a = p + ".attn"
        do = linear_back(dh, c["o"], a + ".o_proj")
        do = reshape_bwd(do, (B, S, cfg.heads, D))
        dq, dk, dv = attention_bwd(do, c["q"], c["k"], c["v"], causal=True,
                                   variant=variant)
        dq, dk, dv = cast(dq), cast(dk), cast(dv)
        if not cfg.learned_positions:
            dq = cast(rope_bwd(dq, cfg.rope_theta, 0, variant))
            dk = cast(rope_bwd(dk, cfg.rope_theta, 0, variant))
        if cfg.qk_norm:
            dq, dwq = rmsnorm_bwd(dq, c["q0"], P[a + ".q_norm.weight"], eps)
            dk, dwk = rmsnorm_bwd(dk, c["k0"], P[a + ".k_norm.weight"], eps)
            G[a + ".q_norm.weight"] += dwq
            G[a + ".k_norm.weight"] += dwk
            dq, dk = cast(dq), cast(dk)
        dx1 = (linear_back(dq.reshape(B, S, -1), c["x1"], a + ".q_proj")
               + linear_back(dk.reshape(B, S, -1), c["x1"], a + ".k_proj")
               + linear_back(dv.reshape(B, S, -1), c["x1"], a + ".v_proj"))
        dh = dh + norm_back(cast(dx1), c["h0"], p + ".input_norm")

    if cfg.learned_positions:
        G["embed_positions.weight"] += broadcast_bwd(dh, (S, H), (1, 2))
    if not variant.get("tied_output_only"):
        G["embed_tokens.weight"] += embedding_bwd(dh, cache["tokens"],
                                                  cfg.vocab)
    return G


# ----------------------------------------------------------------------------
# Microbatches, clipping, AdamW, the step
# ----------------------------------------------------------------------------

def loss_and_grads(cfg, params, tokens, targets, micro_batches=1,
                   variant=None, dtype=np.float64, caches=None):
    """(loss, {name: gradient}) of the mean over microbatches of each
    microbatch's mean cross-entropy. `caches`, a list, collects each
    microbatch's forward cache (routing decisions, for the self-check)."""
    variant = variant or {}
    M, B = micro_batches, cfg.batch
    if tokens.shape != (M * B, cfg.seq) or targets.shape != tokens.shape:
        raise ValueError(f"tokens/targets {tokens.shape}/{targets.shape}, "
                         f"expected {(M * B, cfg.seq)}")
    P = {k: np.asarray(v).astype(dtype) for k, v in params.items()}
    G = {k: np.zeros_like(v) for k, v in P.items()}
    # d(mean of M losses)/d(loss_i) = 1/M.
    dloss = 1.0 if variant.get("no_microbatch_scale") else 1.0 / M
    total = 0.0
    for i in range(M):
        rows = slice(i * B, (i + 1) * B)
        loss, cache = model_forward(cfg, P, tokens[rows], targets[rows],
                                    variant)
        if caches is not None:
            caches.append(cache)
        for name, g in model_backward(cfg, P, cache, dloss, variant).items():
            G[name] += g
        total += loss
    return total / M, G


def global_norm(grads):
    """L2 norm of all gradients together (in float64)."""
    return math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64)))
                         for g in grads.values()))


def clip_coefficient(grad_norm, max_norm):
    """clip_grad_norm_: max_norm / (norm + 1e-6), clamped to at most 1."""
    if max_norm <= 0.0:
        return 1.0
    return min(max_norm / (grad_norm + 1e-6), 1.0)


def adamw(p, g, m, v, step, lr, hp, decay, variant=None):
    """One AdamW update (PyTorch's, the contract's order of operations):
    p ← p·(1 − lr·wd); m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
    p ← p − (lr / (1 − β1ᵗ))·m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε).
    Constants are computed in double (python floats) and so rounded once."""
    variant = variant or {}
    b1, b2, eps = hp.beta1, hp.beta2, hp.eps
    wd = hp.weight_decay if (decay or variant.get("wd_on_all")) else 0.0
    one_minus_b2 = 1.0 - b2
    if variant.get("beta2_f32"):  # the mistake: 1 − β2 in float32
        one_minus_b2 = float(np.float32(1.0) - np.float32(b2))
    if variant.get("adam_l2"):    # the mistake: L2 in the gradient (Adam)
        g = g + wd * p
        wd = 0.0
    p = p * (1.0 - lr * wd)
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + one_minus_b2 * (g * g)
    if variant.get("no_bias_correction"):
        bc1 = bc2 = 1.0
    else:
        bc1, bc2 = 1.0 - b1 ** step, 1.0 - b2 ** step
    p = p - (lr / bc1) * m / (np.sqrt(v) / math.sqrt(bc2) + eps)
    return p, m, v


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    clip_coef: float
    grads: dict                 # by parameter name, accumulated, unclipped
    params: dict                # updated, by parameter name
    state: dict                 # updated moments, by state_names()
    caches: list = field(default_factory=list)

    def outputs(self):
        """Everything by the names the compiled step writes."""
        out = {"loss": self.loss, "grad_norm": self.grad_norm}
        for name, g in self.grads.items():
            out[name + ".grad"] = g
        out.update(self.params)
        out.update(self.state)
        return out


def optimizer_step(params, grads, state, lr, step, hp, variant=None,
                   dtype=np.float64):
    """Clip `grads` by their global norm, then AdamW every parameter.
    Returns (grad_norm, clip_coef, new params, new state)."""
    variant = variant or {}
    grad_norm = global_norm(grads)
    coef = clip_coefficient(grad_norm, 0.0 if variant.get("no_clip")
                            else hp.max_norm)
    new_p, new_s = {}, {}
    for name, p in params.items():
        mn, vn = state_names(name)
        g = np.asarray(grads[name]).astype(dtype) * coef
        pp, m, v = adamw(np.asarray(p).astype(dtype), g,
                         np.asarray(state[mn]).astype(dtype),
                         np.asarray(state[vn]).astype(dtype),
                         step, lr, hp, decays(np.shape(p)), variant)
        new_p[name], new_s[mn], new_s[vn] = pp, m, v
    return grad_norm, coef, new_p, new_s


def train_step(cfg, params, state, tokens, targets, lr, step,
               micro_batches=1, hp=None, variant=None, dtype=np.float64):
    """One training step of the zoo model `cfg` (see the module docstring).

    params: {name: array} (reference.param_specs), state: {name.exp_avg,
    name.exp_avg_sq: array}, tokens/targets int [micro_batches·batch, seq],
    lr: float, step: the 1-based AdamW step t."""
    hp = hp or Hyper()
    caches = []
    loss, grads = loss_and_grads(cfg, params, tokens, targets, micro_batches,
                                 variant, dtype, caches)
    grad_norm, coef, new_p, new_s = optimizer_step(
        params, grads, state, float(lr), int(step), hp, variant, dtype)
    return StepResult(loss, grad_norm, coef, grads, new_p, new_s, caches)


def routing_summary(caches):
    """(smallest top-k logit margin, dropped assignments, assignments)."""
    margin, dropped, total = math.inf, 0, 0
    for c in caches:
        for r in c["routing"]:
            margin = min(margin, r["margin"])
            dropped += r["dropped"]
            total += r["indices"].size
    return margin, dropped, total
