"""An independent NumPy reference of the forward pass of Loom's zoo models.

Written from docs/OpSemantics.md (the math of every loom op) and from the
architecture that lib/Models/TransformerBuilder.cpp emits; it does not use
Loom's runtime. Everything is computed in float64 from the float32 inputs.

The model configuration mirrors lib/Models/ModelZoo.cpp (presets plus the
loom-models override flags), so the driver can also check that the emitted
graph has the parameters, shapes and attributes the configuration implies.

`variant` switches let the self-check show that a plausible mistake (an
interleaved rope, a missing causal mask, a wrong GQA head mapping, ...) moves
the loss by much more than the test's tolerance.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np


# ----------------------------------------------------------------------------
# Configuration (mirrors ModelConfig and the presets of ModelZoo.cpp)
# ----------------------------------------------------------------------------

@dataclass
class Config:
    name: str = ""
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 4
    head_dim: int = 0          # 0: hidden / heads
    ffn: int = 256
    vocab: int = 256
    seq: int = 16
    batch: int = 2
    experts: int = 0           # 0: dense
    topk: int = 0
    capacity_factor: float = 1.0  # 0: dropless
    token_groups: int = 1      # groups of tokens with capacity of their own
    moe_aux_loss_coeff: float = 0.0  # the router's load-balancing loss
    softmax_before_topk: bool = False
    normalize_topk: bool = False
    dtype: str = "f32"
    norm: str = "rmsnorm"      # or "layernorm"
    mlp: str = "swiglu"        # or "gelu"
    learned_positions: bool = False
    linear_bias: bool = False
    tied_embeddings: bool = False
    qk_norm: bool = False
    rope_theta: float = 10000.0
    norm_epsilon: float = 1e-5

    @property
    def d(self):
        return self.head_dim if self.head_dim else self.hidden // self.heads

    @property
    def is_moe(self):
        return self.experts > 0

    @property
    def tokens(self):
        return self.batch * self.seq

    @property
    def capacity(self):
        """Expert capacity of all the token groups: per group of t = T/G
        tokens, ceil(t·k/E·factor) clamped to [1, t]; factor 0 is dropless
        (capacity t)."""
        t = self.tokens // self.token_groups
        if self.capacity_factor <= 0.0:
            return self.token_groups * t
        per_expert = float(t * self.topk) / self.experts
        cap = int(math.ceil(per_expert * self.capacity_factor))
        return self.token_groups * max(1, min(cap, t))


def _llama3(name, layers, hidden, heads, ffn):
    return Config(name=name, layers=layers, hidden=hidden, heads=heads,
                  kv_heads=8, ffn=ffn, vocab=128256, seq=8192, batch=1,
                  dtype="bf16", rope_theta=500000.0)


def _mixtral(name, layers, hidden, heads, ffn, vocab):
    return Config(name=name, layers=layers, hidden=hidden, heads=heads,
                  kv_heads=8, ffn=ffn, vocab=vocab, seq=4096, batch=1,
                  experts=8, topk=2, dtype="bf16", rope_theta=1000000.0)


def _presets():
    tiny_llama = Config(name="tiny-llama", layers=2, hidden=32, heads=4,
                        kv_heads=2, ffn=96, vocab=128, seq=16, batch=2)
    return {
        c.name: c for c in [
            _llama3("llama3-8b", 32, 4096, 32, 14336),
            _llama3("llama3-70b", 80, 8192, 64, 28672),
            _llama3("llama3-405b", 126, 16384, 128, 53248),
            Config(name="gpt3-175b", layers=96, hidden=12288, heads=96,
                   kv_heads=96, ffn=4 * 12288, vocab=50257, seq=2048, batch=1,
                   dtype="bf16", norm="layernorm", mlp="gelu",
                   learned_positions=True, linear_bias=True,
                   tied_embeddings=True),
            _mixtral("mixtral-8x7b", 32, 4096, 32, 14336, 32000),
            _mixtral("mixtral-8x22b", 56, 6144, 48, 16384, 32768),
            Config(name="qwen3-30b-a3b", layers=48, hidden=2048, heads=32,
                   kv_heads=4, head_dim=128, ffn=768, vocab=151936, seq=4096,
                   batch=1, experts=128, topk=8, softmax_before_topk=True,
                   normalize_topk=True, qk_norm=True, dtype="bf16",
                   rope_theta=1000000.0, norm_epsilon=1e-6),
            Config(name="tiny-gpt", layers=2, hidden=32, heads=4, kv_heads=4,
                   ffn=128, vocab=97, seq=16, batch=2, norm="layernorm",
                   mlp="gelu", learned_positions=True, linear_bias=True,
                   tied_embeddings=True),
            tiny_llama,
            replace(tiny_llama, name="tiny-moe", ffn=48, experts=4, topk=2),
        ]
    }


PRESETS = _presets()

_INT_FLAGS = {
    "--layers": "layers", "--hidden": "hidden", "--heads": "heads",
    "--kv-heads": "kv_heads", "--head-dim": "head_dim", "--ffn": "ffn",
    "--vocab": "vocab", "--seq": "seq", "--batch": "batch",
    "--experts": "experts", "--topk": "topk", "--token-groups": "token_groups",
}


def config_from_flags(name, flags):
    """The configuration `loom-models NAME FLAGS...` describes."""
    if name not in PRESETS:
        raise ValueError(f"unknown model '{name}'")
    cfg = replace(PRESETS[name])
    i = 0
    while i < len(flags):
        flag = flags[i]
        if "=" in flag:
            flag, value = flag.split("=", 1)
            i += 1
        else:
            value = flags[i + 1]
            i += 2
        if flag in _INT_FLAGS:
            setattr(cfg, _INT_FLAGS[flag], int(value))
        elif flag == "--capacity-factor":
            cfg.capacity_factor = float(value)
        elif flag == "--moe-aux-loss-coeff":
            cfg.moe_aux_loss_coeff = float(value)
        elif flag == "--dtype":
            cfg.dtype = value
        else:
            raise ValueError(f"unsupported loom-models flag '{flag}'")
    return cfg


def param_specs(cfg):
    """[(name, shape)] in the order the builder creates the parameters."""
    H, D, V, F, E = cfg.hidden, cfg.d, cfg.vocab, cfg.ffn, cfg.experts
    specs = []

    def linear(name, n_in, n_out):
        specs.append((name + ".weight", (n_out, n_in)))
        if cfg.linear_bias:
            specs.append((name + ".bias", (n_out,)))

    def norm(name):
        specs.append((name + ".weight", (H,)))
        if cfg.norm == "layernorm":
            specs.append((name + ".bias", (H,)))

    specs.append(("embed_tokens.weight", (V, H)))
    if cfg.learned_positions:
        specs.append(("embed_positions.weight", (cfg.seq, H)))
    for i in range(cfg.layers):
        p = f"layers.{i}"
        norm(p + ".input_norm")
        linear(p + ".attn.q_proj", H, cfg.heads * D)
        linear(p + ".attn.k_proj", H, cfg.kv_heads * D)
        linear(p + ".attn.v_proj", H, cfg.kv_heads * D)
        if cfg.qk_norm:
            specs.append((p + ".attn.q_norm.weight", (D,)))
            specs.append((p + ".attn.k_norm.weight", (D,)))
        linear(p + ".attn.o_proj", cfg.heads * D, H)
        norm(p + ".post_attention_norm")
        if cfg.is_moe:
            linear(p + ".moe.router", H, E)
            specs.append((p + ".moe.experts.gate_proj.weight", (E, F, H)))
            specs.append((p + ".moe.experts.up_proj.weight", (E, F, H)))
            specs.append((p + ".moe.experts.down_proj.weight", (E, H, F)))
        elif cfg.mlp == "gelu":
            linear(p + ".mlp.fc1", H, F)
            linear(p + ".mlp.fc2", F, H)
        else:
            linear(p + ".mlp.gate_proj", H, F)
            linear(p + ".mlp.up_proj", H, F)
            linear(p + ".mlp.down_proj", F, H)
    norm("final_norm")
    if not cfg.tied_embeddings:
        linear("lm_head", H, V)
    return specs


def init_params(cfg, rng):
    """Random parameters that keep activations O(1): projections N(0, 1/fan_in),
    embeddings N(0, 0.3²) (tied logits ~ N(0, 0.09·H)), norm weights
    1 + N(0, 0.1²), biases N(0, 0.1²)."""
    params = {}
    for name, shape in param_specs(cfg):
        if name.endswith(".bias"):
            a = 0.1 * rng.standard_normal(shape)
        elif "norm" in name:
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.startswith("embed_"):
            a = 0.3 * rng.standard_normal(shape)
        else:
            fan_in = shape[-1]
            a = rng.standard_normal(shape) / math.sqrt(fan_in)
        params[name] = a.astype(np.float32)
    return params


def init_inputs(cfg, rng):
    shape = (cfg.batch, cfg.seq)
    return {
        "tokens": rng.integers(0, cfg.vocab, size=shape, dtype=np.int32),
        "targets": rng.integers(0, cfg.vocab, size=shape, dtype=np.int32),
    }


# ----------------------------------------------------------------------------
# Ops (docs/OpSemantics.md), vectorized, float64
# ----------------------------------------------------------------------------

def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def logsumexp(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return (m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
            ).squeeze(axis)


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layernorm(x, w, b, eps, variant=None):
    mu = np.mean(x, axis=-1, keepdims=True)
    ddof = 1 if variant and variant.get("unbiased_var") else 0
    var = np.var(x, axis=-1, keepdims=True, ddof=ddof)
    y = (x - mu) / np.sqrt(var + eps) * w
    return y if b is None else y + b


def gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) *
                                        (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def swiglu(gate, up):
    return silu(gate) * up


def rope(x, theta, position_offset=0, variant=None):
    """x[B, S, N, D], rotate-half form."""
    B, S, N, D = x.shape
    half = D // 2
    freqs = theta ** (-2.0 * np.arange(half, dtype=np.float64) / D)
    pos = np.arange(S, dtype=np.float64) + position_offset
    angle = pos[:, None] * freqs[None, :]                 # [S, D/2]
    cos = np.cos(angle)[None, :, None, :]
    sin = np.sin(angle)[None, :, None, :]
    if variant and variant.get("rope_interleaved"):
        lo, hi = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = lo * cos - hi * sin
        out[..., 1::2] = hi * cos + lo * sin
        return out
    lo, hi = x[..., :half], x[..., half:]
    return np.concatenate([lo * cos - hi * sin, hi * cos + lo * sin], axis=-1)


def attention(q, k, v, causal=True, scale=None, variant=None):
    """q[B, S, Hq, D], k/v[B, S, Hkv, D] -> [B, S, Hq, D]."""
    B, S, Hq, D = q.shape
    Hkv = k.shape[2]
    group = Hq // Hkv
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    if variant and variant.get("gqa_modulo"):
        kv_of = np.arange(Hq) % Hkv
    else:
        kv_of = np.arange(Hq) // group
    kk = k[:, :, kv_of, :]                                # [B, S, Hq, D]
    vv = v[:, :, kv_of, :]
    scores = np.einsum("bqhd,bkhd->bhqk", q, kk) * scale
    if causal and not (variant and variant.get("no_causal")):
        mask = np.tril(np.ones((S, S), dtype=bool))       # s_k <= s_q
        scores = np.where(mask[None, None], scores, -np.inf)
    p = softmax(scores, axis=-1)
    return np.einsum("bhqk,bkhd->bqhd", p, vv)


def cross_entropy(logits, targets):
    lse = logsumexp(logits, axis=-1)
    picked = np.take_along_axis(logits, targets[..., None].astype(np.int64),
                                axis=-1)[..., 0]
    return np.mean(lse - picked)


def router(logits, top_k, softmax_before_topk=False, normalize=False,
           variant=None):
    """logits[T, E] -> (weights[T, k], indices[T, k]); ties: lower index first."""
    T, E = logits.shape
    if softmax_before_topk:
        p = softmax(logits, axis=-1)
        # Stable sort of -p: equal values keep ascending expert order.
        idx = np.argsort(-p, axis=-1, kind="stable")[:, :top_k]
        w = np.take_along_axis(p, idx, axis=-1)
        if normalize:
            w = w / np.sum(w, axis=-1, keepdims=True)
    else:
        idx = np.argsort(-logits, axis=-1, kind="stable")[:, :top_k]
        top = np.take_along_axis(logits, idx, axis=-1)
        if variant and variant.get("router_softmax_all"):
            w = np.take_along_axis(softmax(logits, axis=-1), idx, axis=-1)
        else:
            w = softmax(top, axis=-1)
    return w, idx.astype(np.int32)


def _slots(indices, num_experts, capacity, variant=None, groups=1):
    """Slot of every (t, j) assignment, or -1 when dropped: each of the
    `groups` groups of T/groups tokens fills its own capacity/groups slots
    of each expert, in token order, then k order."""
    T, K = indices.shape
    slots = np.full((T, K), -1, dtype=np.int64)
    n, group_cap = T // groups, capacity // groups
    for g in range(groups):
        count = np.zeros(num_experts, dtype=np.int64)
        order = [(t, j) for t in range(g * n, (g + 1) * n) for j in range(K)]
        if variant and variant.get("dispatch_k_major"):
            order = [(t, j) for j in range(K)
                     for t in range(g * n, (g + 1) * n)]
        for t, j in order:
            e = indices[t, j]
            s = count[e]
            count[e] += 1
            if s < group_cap:
                slots[t, j] = g * group_cap + s
    return slots


def dispatch(x, indices, num_experts, capacity, variant=None, groups=1):
    T, H = x.shape
    out = np.zeros((num_experts, capacity, H), dtype=x.dtype)
    slots = _slots(indices, num_experts, capacity, variant, groups)
    for t in range(T):
        for j in range(indices.shape[1]):
            if slots[t, j] >= 0:
                out[indices[t, j], slots[t, j]] = x[t]
    return out


def combine(y, weights, indices, capacity, variant=None, groups=1):
    E, C, H = y.shape
    T, K = indices.shape
    out = np.zeros((T, H), dtype=y.dtype)
    slots = _slots(indices, E, capacity, variant, groups)
    for t in range(T):
        for j in range(K):
            if slots[t, j] >= 0:
                out[t] += weights[t, j] * y[indices[t, j], slots[t, j]]
    return out


def grouped_matmul(x, w, transpose_w=True):
    """x[E, C, K] with w[E, N, K] (transposed) or w[E, K, N] -> [E, C, N]."""
    if transpose_w:
        return np.einsum("eck,enk->ecn", x, w)
    return np.einsum("eck,ekn->ecn", x, w)


def linear_op(x, w, b=None):
    """x · wᵀ (+ b) for w[out, in]."""
    y = x @ w.T
    return y if b is None else y + b


# ----------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------

def forward(cfg, params, tokens, targets, variant=None, stats=None):
    """The loss of the zoo model `cfg`; `stats` (a dict) collects routing
    statistics (dropped assignments, smallest top-k margin)."""
    variant = variant or {}
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    B, S, H, D = cfg.batch, cfg.seq, cfg.hidden, cfg.d
    eps = cfg.norm_epsilon

    def linear(x, name):
        return linear_op(x, P[name + ".weight"],
                         P.get(name + ".bias") if cfg.linear_bias else None)

    def norm(x, name):
        if cfg.norm == "rmsnorm":
            return rmsnorm(x, P[name + ".weight"], eps)
        return layernorm(x, P[name + ".weight"], P[name + ".bias"], eps,
                         variant)

    def attn_block(x, p):
        q = linear(x, p + ".q_proj").reshape(B, S, cfg.heads, D)
        k = linear(x, p + ".k_proj").reshape(B, S, cfg.kv_heads, D)
        v = linear(x, p + ".v_proj").reshape(B, S, cfg.kv_heads, D)
        if cfg.qk_norm:
            q = rmsnorm(q, P[p + ".q_norm.weight"], eps)
            k = rmsnorm(k, P[p + ".k_norm.weight"], eps)
        if not cfg.learned_positions:
            q = rope(q, cfg.rope_theta, 0, variant)
            k = rope(k, cfg.rope_theta, 0, variant)
        o = attention(q, k, v, causal=True, variant=variant)
        return linear(o.reshape(B, S, cfg.heads * D), p + ".o_proj")

    def dense_mlp(x, p):
        if cfg.mlp == "gelu":
            h = linear(x, p + ".fc1")
            h = gelu(h, "none" if variant.get("gelu_erf") else "tanh")
            return linear(h, p + ".fc2")
        return linear(swiglu(linear(x, p + ".gate_proj"),
                             linear(x, p + ".up_proj")), p + ".down_proj")

    def moe_mlp(x, p):
        T, E, C = cfg.tokens, cfg.experts, cfg.capacity
        flat = x.reshape(T, H)
        logits = linear(flat, p + ".router")
        w, idx = router(logits, cfg.topk, cfg.softmax_before_topk,
                        cfg.normalize_topk, variant)
        if stats is not None:
            srt = np.sort(logits, axis=-1)[:, ::-1]
            if cfg.topk < E:
                margin = float(np.min(srt[:, cfg.topk - 1] - srt[:, cfg.topk]))
                stats["min_topk_margin"] = min(
                    stats.get("min_topk_margin", math.inf), margin)
            slots = _slots(idx, E, C, variant, cfg.token_groups)
            stats["dropped"] = stats.get("dropped", 0) + int(np.sum(slots < 0))
            stats["assignments"] = stats.get("assignments", 0) + idx.size
        if cfg.moe_aux_loss_coeff > 0:
            # Megatron-Core's switch_load_balancing_loss_func: probabilities
            # over all experts summed per expert, times the tokens routed to
            # it, scaled by E * coeff / (T * T * k).
            z = logits - logits.max(axis=-1, keepdims=True)
            probs = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
            tokens_per_expert = np.bincount(idx.reshape(-1), minlength=E)
            aux_losses.append(
                np.sum(probs.sum(axis=0) * tokens_per_expert) * E *
                cfg.moe_aux_loss_coeff / (T * T * cfg.topk))
        slots_x = dispatch(flat, idx, E, C, variant, cfg.token_groups)
        gate = grouped_matmul(slots_x, P[p + ".experts.gate_proj.weight"])
        up = grouped_matmul(slots_x, P[p + ".experts.up_proj.weight"])
        y = grouped_matmul(swiglu(gate, up), P[p + ".experts.down_proj.weight"])
        return combine(y, w, idx, C, variant,
                       cfg.token_groups).reshape(B, S, H)

    aux_losses = []
    table = P["embed_tokens.weight"]
    h = table[tokens.astype(np.int64)]
    if cfg.learned_positions:
        h = h + P["embed_positions.weight"][None, :, :]
    for i in range(cfg.layers):
        p = f"layers.{i}"
        h = h + attn_block(norm(h, p + ".input_norm"), p + ".attn")
        x = norm(h, p + ".post_attention_norm")
        h = h + (moe_mlp(x, p + ".moe") if cfg.is_moe
                 else dense_mlp(x, p + ".mlp"))
    h = norm(h, "final_norm")
    if cfg.tied_embeddings:
        logits = h @ table.T
    else:
        logits = linear(h, "lm_head")
    return float(cross_entropy(logits, targets)) + float(sum(aux_losses))
