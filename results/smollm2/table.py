#!/usr/bin/env python3
"""The perplexity table of results/smollm2/RESULTS.md from eval.jsonl (written by run.sh eval):
one row per checkpoint, perplexity on the Shakespeare validation slice and the held-out text.

    python3 results/smollm2/table.py
"""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
LINEAR_DENSE = 106_168_320          # SmolLM2-135M: 30 blocks × (q, k, v, o, gate, up, down)
rows = {}
for line in open(os.path.join(HERE, "eval.jsonl")):
    e = json.loads(line)
    rows.setdefault(e["label"], {})[e["text"]] = e["result"]

def order(label):
    kind = 0 if label == "original" else 2 if label.startswith("heal-") else 1
    base = label.split("@")[0]   # name@f16: the same checkpoint evaluated with 16-bit weights
    ratio = re.search(r"-r([0-9.]*[0-9])", base)   # svd-r1.5, heal-svdw-r2-gen-stage2, …
    return (kind, float(ratio.group(1)) if ratio else 0.0, label)

print("| checkpoint | parameters | linear-layer ratio | weights (f32 MB) | perplexity, Shakespeare val | perplexity, held-out (GPL-3) |")
print("|---|---:|---:|---:|---:|---:|")
orig = rows.get("original", {})
for label in sorted(rows, key=order):
    r = rows[label]
    any_ = next(iter(r.values()))
    params = any_["parameters"]
    linear = params - (134_515_008 - LINEAR_DENSE)
    ratio = LINEAR_DENSE / linear if linear > 0 else float("nan")
    def ppl(t):
        if t not in r: return "–"
        s = f"{r[t]['perplexity']:.2f}"
        if label != "original" and t in orig: s += f" ({r[t]['perplexity'] / orig[t]['perplexity']:.2f}×)"
        return s
    print(f"| {label} | {params:,} | {ratio:.2f}× | {4 * params / 1e6:.0f} | {ppl('shakespeare')} | {ppl('heldout')} |")
