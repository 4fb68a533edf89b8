#!/usr/bin/env python3
"""Reference numbers of the real SmolLM2-135M-Instruct Q4_1 GGUF (Tests/MPOKitTests/SmolLM2Tests.swift),
from transformers (which dequantises and un-permutes the GGUF itself). Run by a developer, never by CI:

    .venv-peer/bin/python Tests/Resources/smollm2/make_reference.py /path/to/SmolLM2-135M-Instruct.Q4_1.gguf

Writes reference.json: the greedy continuation (32 tokens) of a prompt's ids, and the perplexity of the
stress text of Tests/Resources/tokenizers (tokenized by tokenizers with SmolLM2's pre-tokenizer) in windows
of 64 tokens, float64.
"""
import json
import math
import os
import sys

import torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
gguf = os.path.abspath(sys.argv[1])
tok = json.load(open(os.path.join(HERE, "..", "tokenizers", "reference.json")))["ids"]["smollm"]["stress"]
out = {"source": "transformers %s (torch %s) loading %s with AutoModelForCausalLM.from_pretrained(dir, gguf_file=…); "
                  "Tests/Resources/smollm2/make_reference.py" % (__import__("transformers").__version__, torch.__version__, os.path.basename(gguf))}
m32 = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf), torch_dtype=torch.float32).eval()
prompt = [504, 2455, 282, 1029, 314]   # "The meaning of life is"
with torch.no_grad():
    g = m32.generate(torch.tensor([prompt]), max_new_tokens=32, min_new_tokens=32, do_sample=False)
out["greedy"] = {"prompt": "The meaning of life is", "prompt_ids": prompt, "ids": g[0, len(prompt):].tolist()}
m64 = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf), torch_dtype=torch.float64).eval()
nll, n, T = 0.0, len(tok) - 1, 64
with torch.no_grad():
    for s in range(0, n, T):
        e = min(s + T, n)
        logits = m64(input_ids=torch.tensor([tok[s:e]])).logits[0]
        nll += torch.nn.functional.cross_entropy(logits, torch.tensor(tok[s + 1:e + 1]), reduction="sum").item()
out["stress_perplexity"] = {"context": T, "tokens": n, "loss": nll / n, "perplexity": math.exp(nll / n)}
json.dump(out, open(os.path.join(HERE, "reference.json"), "w"), indent=1)
print(out["stress_perplexity"], out["greedy"]["ids"][:8])
