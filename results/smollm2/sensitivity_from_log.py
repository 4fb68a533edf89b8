#!/usr/bin/env python3
"""Turn the sensitivities a `compress --sensitivity K` log printed into a `--sensitivity-file`.

The mpo2was-r2 probes (one whitened + ALS compression and evaluation per layer, 54 minutes on two
cores) ran before --sensitivity-file existed; its log keeps the weights to four decimals, which is
what this writes. Usage: sensitivity_from_log.py LOG CHECKPOINT OUT.json
"""
import json, re, sys

log, checkpoint, out = sys.argv[1:4]
lines = open(log).read().splitlines()
head = next(i for i, l in enumerate(lines) if l.startswith("sensitivity at χ"))
m = re.match(r"sensitivity at χ = (\d+) \(loss increase per unit relative (output )?error², (\d+) batches, (\d+) s\):", lines[head])
if not m:
    sys.exit(f"{log}: no 'sensitivity at χ = …' line in the form compress prints")
weights = {}
for l in lines[head + 1:]:
    if not l.startswith("  "):
        break
    name, value = l.split()
    weights[name] = float(value)
record = {"checkpoint": checkpoint, "probe_chi": int(m[1]), "whitened": m[2] is not None,
          "batches": int(m[3]), "seconds": float(m[4]), "weights": weights}
json.dump(record, open(out, "w"), indent=2, sort_keys=True)
print(f"{out}: {len(weights)} layers, probed at χ {m[1]}")
