#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python, compiled here in the ignored .venv-peer) on a GGUF: decode tokens/s at
batch 1 (greedy, after a prefilled prompt) and prefill tokens/s, on --threads threads. The peer of
`mpo-train sample --checkpoint GGUF` for Benchmarks/RESULTS.md; never run by tests. Prints one JSON object.

    .venv-peer/bin/python Benchmarks/peer/llamacpp_decode.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf --threads 2 --tokens 128
"""
import argparse
import json
import time

from llama_cpp import Llama, __version__

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", required=True)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--tokens", type=int, default=128)
ap.add_argument("--prompt", default="The meaning of life is")
a = ap.parse_args()
llm = Llama(model_path=a.gguf, n_threads=a.threads, n_threads_batch=a.threads, n_ctx=1024, n_batch=512, verbose=False, logits_all=True)
prompt = llm.tokenize(a.prompt.encode(), add_bos=False)
t0 = time.perf_counter(); llm.eval(prompt); prefill = time.perf_counter() - t0
out = []
t0 = time.perf_counter()
for _ in range(a.tokens):
    logits = llm.scores[llm.n_tokens - 1]
    tok = int(logits.argmax())
    out.append(tok)
    llm.eval([tok])
sec = time.perf_counter() - t0
print(json.dumps({"peer": f"llama.cpp (llama-cpp-python {__version__})", "threads": a.threads, "prompt_tokens": len(prompt),
                  "prefill_tokens_per_second": len(prompt) / prefill, "decode_tokens": a.tokens,
                  "decode_tokens_per_second": a.tokens / sec, "first_ids": out[:16]}))
