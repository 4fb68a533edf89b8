#!/usr/bin/env python3
"""Side-by-side table from `mpo-train bench --json` (OPENBLAS_* as set, and unset) and the two
PyTorch twins (picogpt_torch.py, and --fast). Usage: ratios.py OURS_ENV OURS_UNSET TORCH TORCH_FAST"""
import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


env, unset, torch, fast = (load(p) for p in sys.argv[1:5])


def find(rows, what, model, **kw):
    return next((r for r in rows if r["what"] == what and r["model"] == model
                 and all(r.get(k) == v for k, v in kw.items())), None)


def info(rows):
    s = next(r for r in rows if r["what"] == "sgemm")
    return f"{s['device']}, OpenBLAS kernels {s.get('openblas_kernels', '?')}, OPENBLAS_CORETYPE={s['openblas_coretype'] or '(unset)'}, sgemm {s['gflops']:.1f} GFLOP/s"


print("ours (as set): " + info(env))
print("ours (unset):  " + info(unset))
print(f"PyTorch {torch[0]['torch']}, {torch[0]['threads']} threads: original twin, and fast twin (fused QKV + SDPA)")
print()
print(f"{'train step (ms)':22}{'original':>10}{'fast':>9}{'ours set':>10}{'ours unset':>11}"
      f"{'vs orig (set/unset)':>22}{'vs fast (set/unset)':>22}")
for r in (r for r in env if r["what"] == "train_step"):
    m = r["model"]
    o, f, u = find(torch, "train_step", m), find(fast, "train_step", m), find(unset, "train_step", m)
    if not (o and f and u):
        continue
    print(f"{m:22}{o['ms']:>10.0f}{f['ms']:>9.0f}{r['ms']:>10.0f}{u['ms']:>11.0f}"
          f"{o['ms'] / r['ms']:>14.2f}× /{o['ms'] / u['ms']:>5.2f}×{f['ms'] / r['ms']:>14.2f}× /{f['ms'] / u['ms']:>5.2f}×")
print()
for r in (r for r in env if r["what"] == "forward"):
    o, f = find(torch, "forward", r["model"]), find(fast, "forward", r["model"])
    if o and f:
        print(f"forward B=8 {r['model']:10} tok/s: original {o['tokens_per_second']:.0f}, fast {f['tokens_per_second']:.0f}, "
              f"ours {r['tokens_per_second']:.0f} ({r['tokens_per_second'] / o['tokens_per_second']:.2f}× / "
              f"{r['tokens_per_second'] / f['tokens_per_second']:.2f}×)")
t = find(torch, "sample", "dense")
for kv in (True, False):
    r = find(env, "sample", "dense", kv_cache=kv)
    if t and r:
        print(f"sample dense {'KV cache' if kv else 'full fwd':9} tok/s: original twin {t['tokens_per_second']:.0f}, "
              f"ours {r['tokens_per_second']:.0f} ({r['tokens_per_second'] / t['tokens_per_second']:.2f}×)")
