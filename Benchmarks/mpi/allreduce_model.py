"""The all-reduce cost of a data-parallel step from measured bytes (Benchmarks/mpi/scaling.sh).

Ring all-reduce (reduce-scatter + all-gather): each of N ranks sends and receives
2(N-1)/N of the gradient's bytes, in 2(N-1) latency-bound steps:
    t = 2(N-1)/N * bytes / bandwidth + 2(N-1) * alpha
with bandwidth the link's payload rate (10 Gb/s = 1.25 GB/s, 100 Gb/s = 12.5 GB/s) and alpha the
per-message latency (30 us on 10 Gb/s Ethernet with TCP, 3 us on 100 Gb/s RDMA). No overlap with
the backward pass is assumed. "Compute for 90 %" is the step time at which communication is 10 %
of the step: a faster device spends more than that share waiting for the network.
"""
import json
import sys

LINKS = [("10 Gb/s", 1.25e9, 30e-6), ("100 Gb/s", 12.5e9, 3e-6)]
RANKS = [8, 64]


def ring(bytes_, n, bandwidth, alpha):
    return 2 * (n - 1) / n * bytes_ / bandwidth + 2 * (n - 1) * alpha


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    one = {(r["shape"], r["model"]): r for r in rows if r.get("ranks", 1) == 1}
    two = {(r["shape"], r["model"]): r for r in rows if r.get("ranks") == 2}
    print("| shape | model | parameters | gradient MB | step 1 rank (ms) | step 2 ranks (ms) | all-reduce 2 ranks (ms) | "
          + " | ".join(f"{link}, {n} ranks (ms)" for link, _, _ in LINKS for n in RANKS) + " | compute for 90 % at 64 ranks, 10 / 100 Gb/s (ms) |")
    print("|" + "---|" * (7 + len(LINKS) * len(RANKS) + 1))
    for key, r1 in one.items():
        r2 = two.get(key, {})
        grad = r1["parameters"] * 4
        cells = [f"{ring(grad, n, bw, a) * 1e3:.1f}" for _, bw, a in LINKS for n in RANKS]
        need = [ring(grad, 64, bw, a) * 9 * 1e3 for _, bw, a in LINKS]
        print(f"| {key[0]} B={r1['batch']} T={r1['time']} | {key[1]} | {r1['parameters']:,} | {grad / 1e6:.2f} | {r1['ms']:.0f} | "
              f"{r2.get('ms', float('nan')):.0f} | {r2.get('communication_ms', float('nan')):.2f} | " + " | ".join(cells)
              + f" | {need[0]:.0f} / {need[1]:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1])
