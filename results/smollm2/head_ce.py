"""What truncating SmolLM2's tied table costs it as the head alone (RESULTS.md, "The embedding").

The head's input h is recovered from the original's logits (tied: logits = E·h, E of full column
rank), then the cross-entropy of softmax(Ê·h) is measured for Ê the rank-r truncated SVD of E,
for Ê truncated whitened by the head input's second moment on the calibration batch (as
`compress --calibration --embedding svd:r` does, damping 0.01·mean diag), and for the same with
each row also weighted by the original's mean predicted probability on the calibration batch
plus 1/V (`--embedding-error fisher`). Inputs, made with the tool itself (numbers in the commit
were from 4×512 tokens of each text):

  mpo-train tokenize --checkpoint $M --file TEXT --json | tail -1 > ids.json   # per text, → BATCH.json
  mpo-train dump --checkpoint $M --batch BATCH.json --out dump.safetensors

  python3 head_ce.py TABLE.safetensors calib_dump calib_batch.json eval_dump eval_batch.json [r]

TABLE.safetensors: any checkpoint holding the original's model.embed_tokens.weight (a
compressed one from run.sh keeps it). numpy only.
"""
import json, struct, sys
import numpy as np


def load(path, names):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        out = {}
        for k in names:
            e = header[k]
            f.seek(8 + n + e['data_offsets'][0])
            out[k] = np.frombuffer(f.read(e['data_offsets'][1] - e['data_offsets'][0]), dtype=np.float32).reshape(e['shape'])
        return out


def main():
    table, cal_dump, cal_batch, ev_dump, ev_batch = sys.argv[1:6]
    r = int(sys.argv[6]) if len(sys.argv) > 6 else 340
    E = load(table, ['model.embed_tokens.weight'])['model.embed_tokens.weight'].astype(np.float64)

    def hidden(dump):
        L = load(dump, ['logits'])['logits'].astype(np.float64)
        L = L.reshape(-1, L.shape[-1])
        H = np.linalg.lstsq(E, L.T, rcond=None)[0].T
        print(f'{dump}: logits rebuilt from h to {np.linalg.norm(H @ E.T - L) / np.linalg.norm(L):.1e}')
        return H

    def mean_probabilities(H):   # the original's mean prediction over the rows (Calibration.inputStatistics)
        Z = H @ E.T
        Z -= Z.max(1, keepdims=True)
        P = np.exp(Z)
        return (P / P.sum(1, keepdims=True)).mean(0)

    def targets(batch):
        return np.array(json.load(open(batch))['targets']).reshape(-1)

    def ce(Et, H, t):
        Z = H @ Et.T
        Z -= Z.max(1, keepdims=True)
        return -(Z[np.arange(len(t)), t] - np.log(np.exp(Z).sum(1))).mean()

    Hc, Hv = hidden(cal_dump), hidden(ev_dump)
    tc, tv = targets(cal_batch), targets(ev_batch)
    U, S, Vt = np.linalg.svd(E, full_matrices=False)
    plain = (U[:, :r] * S[:r]) @ Vt[:r]
    G = Hc.T @ Hc / len(Hc)
    G += 0.01 * np.mean(np.diag(G)) * np.eye(len(G))
    w, Q = np.linalg.eigh(G)
    root, inverse = (Q * np.sqrt(w)) @ Q.T, (Q / np.sqrt(w)) @ Q.T
    Uw, Sw, Vtw = np.linalg.svd(E @ root, full_matrices=False)
    whitened = ((Uw[:, :r] * Sw[:r]) @ Vtw[:r]) @ inverse
    # --embedding-error fisher: rows weighted by p̄ + 1/V as well (Compression.fisherRowWeights)
    d = np.sqrt(mean_probabilities(Hc) + 1 / len(E))[:, None]
    Uf, Sf, Vtf = np.linalg.svd(d * E @ root, full_matrices=False)
    fisher = ((Uf[:, :r] * Sf[:r]) @ Vtf[:r]) @ inverse / d
    for name, Et in [('original', E), (f'svd:{r} by its own error', plain), (f'svd:{r} as the head', whitened),
                     (f'svd:{r} as the head, fisher', fisher)]:
        print(f'{name:28s} table error {np.linalg.norm(Et - E) / np.linalg.norm(E):.3f}   '
              f'head-only CE: eval text {ce(Et, Hv, tv):.3f}, calibration text {ce(Et, Hc, tc):.3f}')


if __name__ == '__main__':
    main()
