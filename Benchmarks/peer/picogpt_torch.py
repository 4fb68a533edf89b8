#!/usr/bin/env python3
"""PyTorch twin of PicoGPT, written from docs/SPEC.md, for
side-by-side timing only: never needed by the tests.

Two twins:
- the original (default): what the original PyTorch code does — MPO layers rebuild the full
  weight from the cores on every forward (tensordot chain + permute), then one dense GEMM
  (F.linear); four separate projections; attention as an explicit masked softmax;
- `--fast`: the same model written the way a careful PyTorch user would — one fused QKV
  projection (W_q, W_k, W_v concatenated into one GEMM; for MPO layers the three rebuilt
  weights concatenated) and `F.scaled_dot_product_attention(is_causal=True)`.
(`--attention sdpa` swaps only the attention of the original twin.)

Prints one JSON object per measurement on stdout:
  {"peer": "pytorch", "what": "train_step", "model": "dense", "ms": ..., ...}

Example: python3 picogpt_torch.py --chi 4,8,16,32 --threads 2 --repeats 5
"""
import argparse
import json
import math
import os
import platform
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# docs/SPEC.md §2 default factorisations keyed by (out, in): (d_out, d_in).
FACTORS = {
    (128, 128): ([8, 16], [8, 16]),
    (512, 128): ([8, 8, 8], [4, 4, 8]),
    (128, 512): ([4, 4, 8], [8, 8, 8]),
    (65, 128): ([5, 13], [8, 16]),
}


class MPOLinear(nn.Module):
    """Cores (b_l, d_out[l], d_in[l], b_{l+1}); W rebuilt each forward, as the original code does."""

    def __init__(self, n_in, n_out, chi, bias):
        super().__init__()
        d_out, d_in = FACTORS[(n_out, n_in)]
        self.n_in, self.n_out, self.sites = n_in, n_out, len(d_out)
        bonds = [1] + [chi] * (self.sites - 1) + [1]
        scale = n_in ** -0.25 / chi ** ((self.sites - 1) / (2 * self.sites))
        self.cores = nn.ParameterList(
            [nn.Parameter(torch.randn(bonds[l], d_out[l], d_in[l], bonds[l + 1]) * scale) for l in range(self.sites)])
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def weight(self):
        w = self.cores[0]  # (1, o0, i0, b1)
        for core in self.cores[1:]:
            w = torch.tensordot(w, core, dims=([w.dim() - 1], [0]))
        w = w.reshape(w.shape[1:-1])  # (o0, i0, o1, i1, ...)
        order = list(range(0, 2 * self.sites, 2)) + list(range(1, 2 * self.sites, 2))
        return w.permute(order).reshape(self.n_out, self.n_in)

    def forward(self, x):
        return F.linear(x, self.weight(), self.bias)


def linear(n_in, n_out, bias, chi):
    if chi:
        return MPOLinear(n_in, n_out, chi, bias)
    layer = nn.Linear(n_in, n_out, bias=bias)
    nn.init.normal_(layer.weight, 0.0, 0.02)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def weight_of(layer):
    return layer.weight() if isinstance(layer, MPOLinear) else layer.weight


class Attention(nn.Module):
    def __init__(self, d, heads, context, chi, sdpa, fused=False):
        super().__init__()
        self.heads, self.sdpa, self.fused = heads, sdpa, fused
        self.W_q, self.W_k, self.W_v = (linear(d, d, False, chi) for _ in range(3))
        self.W_o = linear(d, d, True, chi)
        self.register_buffer("causal_mask", torch.tril(torch.ones(context, context, dtype=torch.bool)))

    def forward(self, x):
        B, T, D = x.shape
        hd = D // self.heads
        if self.fused:  # one (3D, D) GEMM for q, k and v
            w = torch.cat([weight_of(self.W_q), weight_of(self.W_k), weight_of(self.W_v)])
            q, k, v = (t.view(B, T, self.heads, hd).transpose(1, 2) for t in F.linear(x, w).split(D, dim=-1))
        else:
            q, k, v = (w(x).view(B, T, self.heads, hd).transpose(1, 2) for w in (self.W_q, self.W_k, self.W_v))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
            att = att.masked_fill(~self.causal_mask[:T, :T], float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        return self.W_o(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    def __init__(self, d, heads, context, d_ff, chi, sdpa, fused=False):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, context, chi, sdpa, fused)
        self.ffn = nn.Sequential()
        self.ffn.W1 = linear(d, d_ff, True, chi)
        self.ffn.act = nn.ReLU()
        self.ffn.W2 = linear(d_ff, d, True, chi)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class PicoGPT(nn.Module):
    def __init__(self, chi=0, vocab=65, d=128, heads=4, layers=4, context=256, d_ff=512, sdpa=False, fused=False):
        super().__init__()
        self.context = context
        self.tok_emb = nn.Embedding(vocab, d)
        nn.init.normal_(self.tok_emb.weight, 0.0, 0.02)
        # Interleaved sinusoidal table computed in float32, as docs/SPEC.md §1.2 describes.
        pos = torch.arange(context, dtype=torch.float32).unsqueeze(1)
        freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
        pe = torch.zeros(context, d)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        self.register_buffer("pos_enc", pe)
        self.blocks = nn.ModuleList(Block(d, heads, context, d_ff, chi, sdpa, fused) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = linear(d, vocab, False, chi)

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        x = self.tok_emb(idx) + self.pos_enc[:T]
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
        return logits, loss


def median_ms(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chi", default="4,8,16,32", help="bond dimensions to time besides dense ('' for none)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--time", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--attention", choices=["manual", "sdpa"], default="manual")
    ap.add_argument("--fast", action="store_true", help="the fast twin: fused QKV GEMM and SDPA(is_causal=True)")
    ap.add_argument("--sample-tokens", type=int, default=500, help="tokens to sample at batch 1 (0 = skip)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    sdpa = args.fast or args.attention == "sdpa"
    common = {"peer": "pytorch-fast" if args.fast else "pytorch", "torch": torch.__version__, "threads": args.threads,
              "attention": "sdpa" if sdpa else "manual", "fused_qkv": args.fast,
              "machine": platform.processor() or platform.machine()}
    B, T = args.batch, args.time
    idx = torch.randint(0, 65, (B, T))
    tgt = torch.randint(0, 65, (B, T))
    fwd_idx = idx[:8]
    chis = [0] + [int(c) for c in args.chi.split(",") if c.strip()]
    for chi in chis:
        model = PicoGPT(chi=chi, sdpa=sdpa, fused=args.fast)
        params = sum(p.numel() for p in model.parameters())
        expected = 808448 if chi == 0 else 13696 + 6136 * chi + 256 * chi * chi
        assert params == expected, f"parameter count {params} != docs/SPEC.md's {expected}"
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)

        def step():
            opt.zero_grad(set_to_none=True)
            _, loss = model(idx, tgt)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        name = f"mpo-chi{chi}" if chi else "dense"
        ms = median_ms(step, args.repeats)
        print(json.dumps({**common, "what": "train_step", "model": name, "parameters": params, "batch": B, "time": T,
                          "ms": ms, "tokens_per_second": B * T / ms * 1000}), flush=True)
        with torch.no_grad():
            fms = median_ms(lambda: model(fwd_idx), args.repeats)
        print(json.dumps({**common, "what": "forward", "model": name, "batch": 8, "time": T, "ms": fms,
                          "tokens_per_second": 8 * T / fms * 1000}), flush=True)
        if chi == 0 and args.sample_tokens > 0:
            # The original generate(): crop to the context, full forward per new token, top-k 40, T 0.8.
            with torch.no_grad():
                ctx = torch.zeros((1, 1), dtype=torch.long)
                t0 = time.perf_counter()
                for _ in range(args.sample_tokens):
                    logits, _ = model(ctx[:, -model.context:])
                    logits = logits[:, -1, :] / 0.8
                    v, _ = torch.topk(logits, 40)
                    logits[logits < v[:, [-1]]] = float("-inf")
                    ctx = torch.cat([ctx, torch.multinomial(F.softmax(logits, dim=-1), 1)], dim=1)
                secs = time.perf_counter() - t0
            print(json.dumps({**common, "what": "sample", "model": name, "tokens": args.sample_tokens,
                              "ms": secs * 1000, "tokens_per_second": args.sample_tokens / secs}), flush=True)


if __name__ == "__main__":
    main()
