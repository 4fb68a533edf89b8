//------------------------------------------------------------------------------------------------
// attention.cl — causal multi-head attention, flash style (docs/DESIGN.md §3). No (T,T) buffer.
//
// Legend: B batch, T time, H heads, KVH key/value heads (grouped-query: query head h reads
// key/value head h / G, G = H/KVH), HD = ATT_HD head dim (a -D option: the host builds this file
// once per head dim it meets), C = H·HD row stride of q/out (B,T,C), KC = KVH·HD of k/v; head h
// owns columns [h·HD, (h+1)·HD). lse (B,H,T) is the log-sum-exp of each query's scaled scores.
// Forward also serves KV-cache decoding: k, v are (B, KVR, KC) (a cache of KVR rows per
// sequence) of which the first TK = OFF + T are seen, and query t sits at absolute position
// OFF + t (sees keys 0…OFF + t). Backward is training-only (OFF = 0, KVR = T).
// Work-group grid: (tiles of T, B·H); backward_dkv (tiles of T, B·KVH).
//
// forward      one work-item per query: online softmax over key tiles staged in local memory,
//              tiles above the diagonal skipped; saves lse = m + log ℓ.
// backward_dkv one work-item per key: walks the query tiles at or below it (for each query head
//              of its group in turn), recomputes
//              P = exp(S − lse), accumulates dV += P·dO and dK += dS·Q (D = rowsum(dO∘O)
//              computed while staging each query tile).
// backward_dq  one work-item per query: walks the key tiles again for dQ += dS·K.
// Splitting dK/dV from dQ recomputes S twice but needs no atomics: deterministic.
//------------------------------------------------------------------------------------------------

#ifndef ATT_HD
#define ATT_HD 32       // head dim (set by the host)
#endif
#ifndef ATT_BQ
#define ATT_BQ 32       // queries per work-group (forward, dq); query tile of backward_dkv
#endif
#ifndef ATT_BK
#define ATT_BK 32       // keys per work-group (dkv); key tile of forward and dq
#endif

inline float att_dot(const float *a, __local const float *b) {
    float s = 0.0f;
    for (int d = 0; d < ATT_HD; d++) s = fma(a[d], b[d], s);
    return s;
}

// Stages keys/values k0 … k0 + ATT_BK − 1 of one (batch, head) into local memory (zeros at and
// past `count`); `kb`/`vb` point at key 0 of the pair, rows `C` apart; `step` work-items share it.
inline void att_stage_kv(__local float (*Ks)[ATT_HD], __local float (*Vs)[ATT_HD], __global const float *kb,
                         __global const float *vb, int k0, int count, int C, int lid, int step) {
    for (int e = lid; e < ATT_BK * ATT_HD; e += step) {
        const int j = e / ATT_HD, d = e % ATT_HD, key = k0 + j;
        Ks[j][d] = key < count ? kb[(long)key * C + d] : 0.0f;
        Vs[j][d] = key < count ? vb[(long)key * C + d] : 0.0f;
    }
}

// MARK: - Forward

// Global (ceil(T/BQ)·BQ, B·H), local (BQ, 1).
__kernel __attribute__((reqd_work_group_size(ATT_BQ, 1, 1)))
void kernel_attention_forward(__global const float *q, int qo, __global const float *k, int ko,
                              __global const float *v, int vo, __global float *out, int oo,
                              __global float *lse, int lo, int T, int TK, int OFF, float scale, int H, int KVR, int KVH) {
    __local float Ks[ATT_BK][ATT_HD], Vs[ATT_BK][ATT_HD];
    const int lid = get_local_id(0), tile = get_group_id(0), pair = get_global_id(1);  // y: local size 1, may be offset
    const int C = H * ATT_HD, KC = KVH * ATT_HD, G = H / KVH;
    const long base = (long)(pair / H) * T * C + (pair % H) * ATT_HD;                // q, out
    const long kvBase = (long)(pair / H) * KVR * KC + ((pair % H) / G) * ATT_HD;     // k, v: head h / G
    const int t = tile * ATT_BQ + lid, pos = OFF + t;
    const bool active = t < T;

    float qr[ATT_HD], acc[ATT_HD];
    for (int d = 0; d < ATT_HD; d++) { qr[d] = active ? q[qo + base + (long)t * C + d] : 0.0f; acc[d] = 0.0f; }
    float m = -INFINITY, l = 0.0f;

    const int keys = min(TK, OFF + (tile + 1) * ATT_BQ);
    for (int k0 = 0; k0 < keys; k0 += ATT_BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        att_stage_kv(Ks, Vs, k + ko + kvBase, v + vo + kvBase, k0, TK, KC, lid, ATT_BQ);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (active && k0 <= pos) {
            const int n = min(ATT_BK, pos - k0 + 1);
            float s[ATT_BK];
            float mt = m;
            for (int j = 0; j < n; j++) { s[j] = att_dot(qr, Ks[j]) * scale; mt = fmax(mt, s[j]); }
            const float corr = exp(m - mt);
            l *= corr;
            for (int d = 0; d < ATT_HD; d++) acc[d] *= corr;
            for (int j = 0; j < n; j++) {
                const float p = exp(s[j] - mt);
                l += p;
                for (int d = 0; d < ATT_HD; d++) acc[d] = fma(p, Vs[j][d], acc[d]);
            }
            m = mt;
        }
    }
    if (active) {
        const float inv = 1.0f / l;
        for (int d = 0; d < ATT_HD; d++) out[oo + base + (long)t * C + d] = acc[d] * inv;
        lse[lo + (long)pair * T + t] = m + log(l);
    }
}

// MARK: - Backward: dK, dV

// Global (ceil(T/BK)·BK, B·KVH), local (BK, 1): one work-item per key of a (batch, key/value
// head), summing over the G query heads of its group in head order (deterministic, no atomics).
__kernel __attribute__((reqd_work_group_size(ATT_BK, 1, 1)))
void kernel_attention_backward_dkv(__global const float *q, int qo, __global const float *k, int ko,
                                   __global const float *v, int vo, __global const float *out, int oo,
                                   __global const float *dout, int dso, __global const float *lse, int lo,
                                   __global float *dk, int dko, __global float *dv, int dvo,
                                   int T, int H, float scale, int KVH) {
    __local float Qs[ATT_BQ][ATT_HD], dOs[ATT_BQ][ATT_HD], Ls[ATT_BQ], Ds[ATT_BQ];
    const int lid = get_local_id(0), tile = get_group_id(0), pair = get_global_id(1);  // y: local size 1, may be offset
    const int C = H * ATT_HD, KC = KVH * ATT_HD, G = H / KVH, b = pair / KVH, kvh = pair % KVH;
    const long kvBase = (long)b * T * KC + kvh * ATT_HD;
    const int j = tile * ATT_BK + lid;
    const bool active = j < T;

    float kr[ATT_HD], vr[ATT_HD], dkr[ATT_HD], dvr[ATT_HD];
    for (int d = 0; d < ATT_HD; d++) {
        kr[d] = active ? k[ko + kvBase + (long)j * KC + d] : 0.0f;
        vr[d] = active ? v[vo + kvBase + (long)j * KC + d] : 0.0f;
        dkr[d] = 0.0f; dvr[d] = 0.0f;
    }

    for (int g = 0; g < G; g++) {
        const int h = kvh * G + g;
        const long base = (long)b * T * C + h * ATT_HD;
        for (int i0 = tile * ATT_BK; i0 < T; i0 += ATT_BQ) {
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int e = lid; e < ATT_BQ * ATT_HD; e += ATT_BK) {
                const int r = e / ATT_HD, d = e % ATT_HD, i = i0 + r;
                Qs[r][d] = i < T ? q[qo + base + (long)i * C + d] : 0.0f;
                dOs[r][d] = i < T ? dout[dso + base + (long)i * C + d] : 0.0f;
            }
            for (int r = lid; r < ATT_BQ; r += ATT_BK) {
                const int i = i0 + r;
                float dsum = 0.0f;
                if (i < T) {
                    for (int d = 0; d < ATT_HD; d++)
                        dsum = fma(out[oo + base + (long)i * C + d], dout[dso + base + (long)i * C + d], dsum);
                }
                Ds[r] = dsum;
                Ls[r] = i < T ? lse[lo + ((long)b * H + h) * T + i] : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            if (active) {
                const int n = min(ATT_BQ, T - i0);
                for (int r = max(0, j - i0); r < n; r++) {      // queries i = i0 + r ≥ j
                    float s = 0.0f, dp = 0.0f;
                    for (int d = 0; d < ATT_HD; d++) { s = fma(Qs[r][d], kr[d], s); dp = fma(dOs[r][d], vr[d], dp); }
                    const float p = exp(s * scale - Ls[r]);
                    const float ds = p * (dp - Ds[r]);
                    for (int d = 0; d < ATT_HD; d++) {
                        dvr[d] = fma(p, dOs[r][d], dvr[d]);
                        dkr[d] = fma(ds, Qs[r][d], dkr[d]);
                    }
                }
            }
        }
    }
    if (active) {
        for (int d = 0; d < ATT_HD; d++) {
            dk[dko + kvBase + (long)j * KC + d] = dkr[d] * scale;
            dv[dvo + kvBase + (long)j * KC + d] = dvr[d];
        }
    }
}

// MARK: - Backward: dQ

// Global (ceil(T/BQ)·BQ, B·H), local (BQ, 1).
__kernel __attribute__((reqd_work_group_size(ATT_BQ, 1, 1)))
void kernel_attention_backward_dq(__global const float *q, int qo, __global const float *k, int ko,
                                  __global const float *v, int vo, __global const float *out, int oo,
                                  __global const float *dout, int dso, __global const float *lse, int lo,
                                  __global float *dq, int dqo, int T, int H, float scale, int KVH) {
    __local float Ks[ATT_BK][ATT_HD], Vs[ATT_BK][ATT_HD];
    const int lid = get_local_id(0), tile = get_group_id(0), pair = get_global_id(1);  // y: local size 1, may be offset
    const int C = H * ATT_HD, KC = KVH * ATT_HD, G = H / KVH;
    const long base = (long)(pair / H) * T * C + (pair % H) * ATT_HD;
    const long kvBase = (long)(pair / H) * T * KC + ((pair % H) / G) * ATT_HD;
    const int i = tile * ATT_BQ + lid;
    const bool active = i < T;

    float qr[ATT_HD], dor[ATT_HD], dqr[ATT_HD];
    float dsum = 0.0f;
    for (int d = 0; d < ATT_HD; d++) {
        qr[d] = active ? q[qo + base + (long)i * C + d] : 0.0f;
        dor[d] = active ? dout[dso + base + (long)i * C + d] : 0.0f;
        if (active) dsum = fma(out[oo + base + (long)i * C + d], dor[d], dsum);
        dqr[d] = 0.0f;
    }
    const float L = active ? lse[lo + (long)pair * T + i] : 0.0f;

    const int keys = min(T, (tile + 1) * ATT_BQ);
    for (int k0 = 0; k0 < keys; k0 += ATT_BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        att_stage_kv(Ks, Vs, k + ko + kvBase, v + vo + kvBase, k0, T, KC, lid, ATT_BQ);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (active && k0 <= i) {
            const int n = min(ATT_BK, i - k0 + 1);
            for (int jj = 0; jj < n; jj++) {
                const float p = exp(att_dot(qr, Ks[jj]) * scale - L);
                const float ds = p * (att_dot(dor, Vs[jj]) - dsum);
                for (int d = 0; d < ATT_HD; d++) dqr[d] = fma(ds, Ks[jj][d], dqr[d]);
            }
        }
    }
    if (active) for (int d = 0; d < ATT_HD; d++) dq[dqo + base + (long)i * C + d] = dqr[d] * scale;
}
