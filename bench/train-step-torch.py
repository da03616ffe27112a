"""PyTorch eager on the CPU: the training step of Loom's tiny-llama.

The model math of `loom-models tiny-llama` (lib/Models/TransformerBuilder.cpp)
in float32: token embedding; per layer RMSNorm, q/k/v projections without
bias, RoPE (rotate-half, theta 10000), causal attention (grouped when
kv-heads < heads), output projection, residual, RMSNorm, SwiGLU MLP
(silu(gate) * up, down), residual; final RMSNorm, untied output layer,
mean cross-entropy. The step is Loom's: forward, backward,
clip_grad_norm_(1.0), AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0.01 on
matrices only). Run by bench/train-step.py inside its virtual environment;
prints one JSON object.

  python bench/train-step-torch.py --threads 2 --steps 5 [--layers ... ]
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def parse():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 4), ("hidden", 1024), ("heads", 16),
                          ("kv-heads", 16), ("ffn", 4096), ("seq", 512),
                          ("vocab", 32000), ("batch", 1), ("threads", 2),
                          ("steps", 5)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--lr", type=float, default=1e-4)
    return p.parse_args()


class Llama(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        h, f, d = a.hidden, a.ffn, a.hidden // a.heads
        self.heads, self.kv_heads, self.head_dim = a.heads, a.kv_heads, d

        def weight(*shape):
            return torch.nn.Parameter(torch.randn(*shape) * 0.02)

        def norm():
            return torch.nn.Parameter(torch.ones(h))

        self.embed = weight(a.vocab, h)
        self.layers = torch.nn.ModuleList()
        for _ in range(a.layers):
            layer = torch.nn.Module()
            layer.input_norm = norm()
            layer.q = weight(a.heads * d, h)
            layer.k = weight(a.kv_heads * d, h)
            layer.v = weight(a.kv_heads * d, h)
            layer.o = weight(h, a.heads * d)
            layer.post_norm = norm()
            layer.gate = weight(f, h)
            layer.up = weight(f, h)
            layer.down = weight(h, f)
            self.layers.append(layer)
        self.final_norm = norm()
        self.head = weight(a.vocab, h)
        # RoPE angles, rotate-half form: pair i of a head turns by
        # pos * theta^(-2i/d).
        inv = 10000.0 ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2 / d)
        ang = torch.arange(a.seq, dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos().float()[None, :, None, :])
        self.register_buffer("sin", ang.sin().float()[None, :, None, :])

    def rope(self, x):  # [B, S, N, D]
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * self.cos - x2 * self.sin,
                          x2 * self.cos + x1 * self.sin], dim=-1)

    def forward(self, tokens, targets):
        b, s = tokens.shape
        x = F.embedding(tokens, self.embed)
        for layer in self.layers:
            y = F.rms_norm(x, (x.shape[-1],), layer.input_norm, 1e-5)
            q = self.rope((y @ layer.q.t()).view(b, s, self.heads, -1))
            k = self.rope((y @ layer.k.t()).view(b, s, self.kv_heads, -1))
            v = (y @ layer.v.t()).view(b, s, self.kv_heads, -1)
            a = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                is_causal=True, enable_gqa=self.kv_heads != self.heads)
            x = x + a.transpose(1, 2).reshape(b, s, -1) @ layer.o.t()
            y = F.rms_norm(x, (x.shape[-1],), layer.post_norm, 1e-5)
            x = x + (F.silu(y @ layer.gate.t()) * (y @ layer.up.t())) @ layer.down.t()
        x = F.rms_norm(x, (x.shape[-1],), self.final_norm, 1e-5)
        logits = x @ self.head.t()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]),
                               targets.view(-1))


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a)
    params = [p for p in model.parameters()]
    groups = [{"params": [p for p in params if p.dim() >= 2],
               "weight_decay": 0.01},
              {"params": [p for p in params if p.dim() < 2],
               "weight_decay": 0.0}]
    # The fastest AdamW PyTorch has on the CPU: the fused kernel.
    try:
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                                fused=True)
        adamw = "fused"
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
        adamw = "default"
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq))
    targets = torch.randint(0, a.vocab, (a.batch, a.seq))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    for _ in range(2):  # warm up: allocations, moments
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "adamw": adamw, "params": sum(p.numel() for p in params),
        "step_s": times, "best_s": min(times), "loss": loss,
        "finite": math.isfinite(loss)}))


if __name__ == "__main__":
    main()
