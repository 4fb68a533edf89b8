#!/usr/bin/env python3
"""Prints the side-by-side table from `mpo-train bench --json` and picogpt_torch.py output."""
import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


ours, torch = load(sys.argv[1]), load(sys.argv[2])
sgemm = next((r["gflops"] for r in ours if r["what"] == "sgemm"), None)
print(f"ours: {ours[0]['device']}; PyTorch {torch[0]['torch']}, {torch[0]['threads']} threads, {torch[0]['attention']} attention")
if sgemm:
    print(f"our sgemm reference rate: {sgemm:.1f} GFLOP/s")
print()
print(f"{'measure':34}{'PyTorch':>12}{'ours':>12}{'ours faster':>13}{'vs our dense':>14}")


def find(rows, what, model, **kw):
    return next((r for r in rows if r["what"] == what and r["model"] == model
                 and all(r.get(k) == v for k, v in kw.items())), None)


dense_ms = find(ours, "train_step", "dense")["ms"]
for r in (r for r in ours if r["what"] == "train_step"):
    t = find(torch, "train_step", r["model"])
    if not t:
        continue
    rel = "" if r["model"] == "dense" else f"{r['ms'] / dense_ms:.2f}×"
    print(f"{'train step ' + r['model'] + ' (ms)':34}{t['ms']:>12.1f}{r['ms']:>12.1f}{t['ms'] / r['ms']:>12.2f}×{rel:>14}")
for r in (r for r in ours if r["what"] == "forward"):
    t = find(torch, "forward", r["model"])
    if t:
        print(f"{'forward B=8 ' + r['model'] + ' (tok/s)':34}{t['tokens_per_second']:>12.0f}{r['tokens_per_second']:>12.0f}"
              f"{r['tokens_per_second'] / t['tokens_per_second']:>12.2f}×")
t = find(torch, "sample", "dense")
for kv in (True, False):
    r = find(ours, "sample", "dense", kv_cache=kv)
    if t and r:
        label = "sample dense, " + ("KV cache" if kv else "full fwd") + " (tok/s)"
        print(f"{label:34}{t['tokens_per_second']:>12.0f}{r['tokens_per_second']:>12.0f}"
              f"{r['tokens_per_second'] / t['tokens_per_second']:>12.2f}×")
