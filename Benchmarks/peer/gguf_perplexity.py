#!/usr/bin/env python3
"""The transformers peer of `mpo-train eval --split all`: perplexity of token ids (from `mpo-train tokenize
--json`) under a GGUF model loaded by transformers (AutoModelForCausalLM.from_pretrained(dir, gguf_file=…),
which dequantises and un-permutes it), in consecutive windows of --context tokens, the last one shorter,
every position predicting the next token. Prints one JSON object. For the parity figure and
Benchmarks/RESULTS.md; never run by tests.

    .venv-peer/bin/python Benchmarks/peer/gguf_perplexity.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf --ids ids.json --context 512 --threads 2
"""
import argparse
import json
import math
import os
import time

import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", help="a GGUF file (transformers' GGUF reader)")
ap.add_argument("--hf", help="or a Hugging Face directory (what `mpo-train export --format hf` writes)")
ap.add_argument("--ids", required=True, help="a file whose last line is {\"ids\": [...]}")
ap.add_argument("--context", type=int, default=512)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
a = ap.parse_args()
torch.set_num_threads(a.threads)
dtype = torch.float64 if a.dtype == "float64" else torch.float32
t0 = time.perf_counter()
if a.hf:
    model = AutoModelForCausalLM.from_pretrained(a.hf, torch_dtype=dtype).eval()
else:
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(a.gguf)), gguf_file=os.path.basename(a.gguf), torch_dtype=dtype).eval()
load = time.perf_counter() - t0
ids = json.loads(open(a.ids).read().strip().splitlines()[-1])["ids"]
n = len(ids) - 1
nll, t0 = 0.0, time.perf_counter()
with torch.no_grad():
    for s in range(0, n, a.context):
        e = min(s + a.context, n)
        x = torch.tensor([ids[s:e]]); y = torch.tensor(ids[s + 1:e + 1])
        logits = model(input_ids=x).logits[0]
        nll += torch.nn.functional.cross_entropy(logits.double(), y, reduction="sum").item()
sec = time.perf_counter() - t0
print(json.dumps({"peer": f"transformers {__import__('transformers').__version__} torch {torch.__version__}", "dtype": a.dtype,
                  "threads": a.threads, "tokens": n, "loss": nll / n, "perplexity": math.exp(nll / n), "seconds": sec,
                  "load_seconds": load, "tokens_per_second": n / sec}))
