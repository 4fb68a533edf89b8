#!/usr/bin/env python3
"""The transformers peer of `mpo-train bench --shape smollm2`: a SmolLM2-135M-shaped LlamaForCausalLM
(random weights, fp32, eager attention or SDPA) — one training step (forward + backward + AdamW) at
B×T, and greedy `generate` at batch 1 — on `--threads` threads. For Benchmarks/RESULTS.md; never
run by tests. Prints one JSON object per measurement.

    .venv-peer/bin/python Benchmarks/peer/llama_step.py --threads 2 --batch 4 --time 512 --decode-tokens 128
"""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--time", type=int, default=512)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--decode-tokens", type=int, default=128)
ap.add_argument("--prompt-tokens", type=int, default=32)
ap.add_argument("--attention", default="sdpa", choices=["sdpa", "eager"])
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                  num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=100000.0,
                  tie_word_embeddings=True)
model = LlamaForCausalLM(cfg).float()
model.config._attn_implementation = a.attention
params = sum(p.numel() for p in model.parameters())
common = {"peer": f"transformers {__import__('transformers').__version__} torch {torch.__version__}", "threads": a.threads,
          "parameters": params, "attention": a.attention}
if a.time > 0:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    ids = torch.randint(0, 65, (a.batch, a.time))
    tgt = torch.randint(0, 65, (a.batch, a.time))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, cfg.vocab_size), tgt.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    model.train()
    step()
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1000
    print(json.dumps({**common, "what": "train_step", "batch": a.batch, "time": a.time, "ms": ms,
                      "tokens_per_second": a.batch * a.time / ms * 1000}))
if a.decode_tokens > 0:
    model.eval()
    prompt = torch.randint(0, 65, (1, a.prompt_tokens))
    with torch.no_grad():
        model.generate(prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        t0 = time.perf_counter()
        model.generate(prompt, max_new_tokens=a.decode_tokens, min_new_tokens=a.decode_tokens, do_sample=False)
        s = time.perf_counter() - t0
    print(json.dumps({**common, "what": "decode", "prompt_tokens": a.prompt_tokens, "decode_tokens": a.decode_tokens,
                      "tokens_per_second": a.decode_tokens / s}))
