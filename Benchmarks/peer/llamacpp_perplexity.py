#!/usr/bin/env python3
"""llama.cpp's perplexity of token ids (from `mpo-train tokenize --json`) under a GGUF file, in the
windows `mpo-train eval --split all --context T` uses: consecutive windows of T tokens, the last one
shorter, every position predicting the next token, a fresh KV cache per window. For the export check
of results/smollm2 (llama.cpp runs what `mpo-train export --format gguf` writes and agrees with our
perplexity); never run by tests.

    .venv-peer/bin/python Benchmarks/peer/llamacpp_perplexity.py --gguf model.gguf --ids ids.json --context 512 --threads 2
"""
import argparse
import json
import math
import time

import numpy as np
from llama_cpp import Llama, __version__

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", required=True)
ap.add_argument("--ids", required=True, help="a file whose last line is {\"ids\": [...]}")
ap.add_argument("--context", type=int, default=512)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
t0 = time.perf_counter()
llm = Llama(model_path=a.gguf, n_threads=a.threads, n_threads_batch=a.threads, n_ctx=a.context, n_batch=a.context,
            logits_all=True, verbose=False)
load = time.perf_counter() - t0
ids = json.loads(open(a.ids).read().strip().splitlines()[-1])["ids"]
n = len(ids) - 1
nll, t0 = 0.0, time.perf_counter()
for s in range(0, n, a.context):
    e = min(s + a.context, n)
    llm.reset()
    llm.eval(ids[s:e])
    logits = np.asarray(llm.scores[: e - s], dtype=np.float64)
    m = logits.max(axis=1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(logits - m).sum(axis=1)))
    nll += float((lse - logits[np.arange(e - s), ids[s + 1:e + 1]]).sum())
sec = time.perf_counter() - t0
print(json.dumps({"peer": f"llama.cpp (llama-cpp-python {__version__})", "threads": a.threads, "tokens": n, "loss": nll / n,
                  "perplexity": math.exp(nll / n), "seconds": sec, "load_seconds": load, "tokens_per_second": n / sec}))
