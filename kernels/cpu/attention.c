/* Attention for prefill (masked, over the prompt) and decode (one query over
 * the KV cache). Per query head h reading KV head h / (H / KVH):
 *   o = sum_j softmax_j(q . k_j * scale) v_j   over the keys the mask allows.
 * Keys are processed in chunks whose scores sit on the stack; the softmax is
 * carried across chunks (running max and sum, rescaling the partial output),
 * so nothing is allocated whatever the sequence length. */
#include <limits.h>
#include <math.h>
#include <stddef.h>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

#define KEY_CHUNK 256

/* Row of key position p in k/v holding `cap` rows (a ring: slot = p % cap; INT_MAX = no ring). */
static inline size_t key_slot(int p, int cap) {
    return (size_t)(p < cap ? p : p % cap);
}

/* out[0..Dh) = attention of q over key positions [lo, hi] (inclusive) of k/v with row stride ld,
 * position p in row key_slot(p, cap). */
static void attend(float *out, const float *q, const float *k, const float *v, size_t ld, int cap, int lo,
                   int hi, int head_dim, float scale, const SimdOps *ops) {
    float scores[KEY_CHUNK];
    float m = -INFINITY, l = 0.0f;
    for (int i = 0; i < head_dim; i++)
        out[i] = 0.0f;
    for (int c0 = lo; c0 <= hi; c0 += KEY_CHUNK) {
        int n = hi - c0 + 1 < KEY_CHUNK ? hi - c0 + 1 : KEY_CHUNK;
        float cm = -INFINITY;
        for (int j = 0; j < n; j++) {
            scores[j] = ops->dot_f32(q, k + key_slot(c0 + j, cap) * ld, head_dim) * scale;
            if (scores[j] > cm)
                cm = scores[j];
        }
        if (cm > m) {
            if (m != -INFINITY) {
                float r = expf(m - cm);
                l *= r;
                ops->scale_f32(out, r, head_dim);
            }
            m = cm;
        }
        for (int j = 0; j < n; j++) {
            float p = expf(scores[j] - m);
            l += p;
            ops->axpy_f32(out, p, v + key_slot(c0 + j, cap) * ld, head_dim);
        }
    }
    ops->scale_f32(out, 1.0f / l, head_dim);
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    const int32_t *image_block;
    int n_tokens, n_heads, n_kv_heads, head_dim, causal, window;
    float scale;
    /* Query row t is at position pos0 + t; key position p is in row key_slot(p, cap) of k, v
     * (prefill: pos0 = 0, cap = INT_MAX, k/v the batch's own; attention_cached: the cache). */
    int pos0, cap;
} PrefillJob;

/* The first key position a query at position a may see. */
static int key_lo(const PrefillJob *j, int a) {
    return j->causal && j->window > 0 && a - j->window + 1 > 0 ? a - j->window + 1 : 0;
}

/* The key positions query row t may see: one interval [*lo, *hi] (see kernels.h). */
static void key_range(const PrefillJob *j, int t, int *lo, int *hi) {
    *lo = 0;
    *hi = j->pos0 + j->n_tokens - 1;
    if (!j->causal)
        return;
    /* keys [0, t], extended to the end of t's image run (within the batch), then cut by the window */
    int end = t;
    if (j->image_block && j->image_block[t] >= 0) {
        int b = j->image_block[t];
        while (end + 1 < j->n_tokens && j->image_block[end + 1] == b)
            end++;
    }
    *hi = j->pos0 + end;
    *lo = key_lo(j, j->pos0 + t);
}

/* Blocked prefill: QUERY_BLOCK queries of one head against KEY_BLOCK keys at a
 * time (query blocks aligned to multiples of QUERY_BLOCK in position and key
 * blocks starting at the block's first position's window start, so a row's sums
 * are the same whether the batch starts at 0 or continues a cached prefix), both products on the GEMM
 * micro-kernel (scores = Q K^T with K^T packed as a panel; out += P V with V packed), the softmax carried
 * across key blocks per row as in attend(). */
#define QUERY_BLOCK 96 /* a multiple of GEMM_ROWS */
#define KEY_BLOCK 64   /* a multiple of every panel width (8, 16, 32) */
#define BLOCKED_MAX_HEAD_DIM 256

/* Rows of query block `block` (positions [block * QUERY_BLOCK, + QUERY_BLOCK)) in the batch. */
static void block_rows(const PrefillJob *j, int block, int *t0, int *rows) {
    int a0 = block * QUERY_BLOCK, a1 = a0 + QUERY_BLOCK;
    if (a0 < j->pos0)
        a0 = j->pos0;
    if (a1 > j->pos0 + j->n_tokens)
        a1 = j->pos0 + j->n_tokens;
    *t0 = a0 - j->pos0;
    *rows = a1 - a0;
}

static void prefill_block(const PrefillJob *j, int h, int block, const SimdOps *ops) {
    size_t q_ld = (size_t)j->n_heads * j->head_dim, kv_ld = (size_t)j->n_kv_heads * j->head_dim;
    int Dh = j->head_dim, pc = ops->panel_cols;
    int kvh = h / (j->n_heads / j->n_kv_heads);
    int t0, rows;
    block_rows(j, block, &t0, &rows);
    const float *q = j->q + (size_t)t0 * q_ld + (size_t)h * Dh;
    const float *k = j->k + (size_t)kvh * Dh, *v = j->v + (size_t)kvh * Dh;
    float *o = j->out + (size_t)t0 * q_ld + (size_t)h * Dh;
    /* u_lo: the window start of the block's first position, present in the batch or not */
    int lo[QUERY_BLOCK], hi[QUERY_BLOCK], u_lo = key_lo(j, block * QUERY_BLOCK), u_hi = -1;
    float m[QUERY_BLOCK], l[QUERY_BLOCK];
    float s[QUERY_BLOCK * KEY_BLOCK];
    float panel[BLOCKED_MAX_HEAD_DIM * 32];
    for (int r = 0; r < rows; r++) {
        key_range(j, t0 + r, &lo[r], &hi[r]);
        if (hi[r] > u_hi)
            u_hi = hi[r];
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (int d = 0; d < Dh; d++)
            o[(size_t)r * q_ld + d] = 0.0f;
    }
    for (int c0 = u_lo; c0 <= u_hi; c0 += KEY_BLOCK) {
        int nk = u_hi - c0 + 1 < KEY_BLOCK ? u_hi - c0 + 1 : KEY_BLOCK;
        /* scores s[r][jj] = q_r . k_(c0 + jj), K^T packed pc keys at a time */
        for (int p0 = 0; p0 < nk; p0 += pc) {
            int n = nk - p0 < pc ? nk - p0 : pc;
            for (int d = 0; d < Dh; d++) {
                float *dst = panel + (size_t)d * pc;
                int c = 0;
                for (; c < n; c++)
                    dst[c] = k[key_slot(c0 + p0 + c, j->cap) * kv_ld + d];
                for (; c < pc; c++)
                    dst[c] = 0.0f;
            }
            for (int r = 0; r < rows; r += GEMM_ROWS)
                ops->gemm_panel(s + (size_t)r * KEY_BLOCK + p0, KEY_BLOCK, q + (size_t)r * q_ld, (int)q_ld,
                                panel, rows - r < GEMM_ROWS ? rows - r : GEMM_ROWS, Dh, n, 0);
        }
        /* masked, scaled scores -> probabilities; rescale what each row holds */
        for (int r = 0; r < rows; r++) {
            float *sr = s + (size_t)r * KEY_BLOCK, cm = -INFINITY;
            for (int jj = 0; jj < nk; jj++) {
                int key = c0 + jj;
                sr[jj] = key >= lo[r] && key <= hi[r] ? sr[jj] * j->scale : -INFINITY;
                if (sr[jj] > cm)
                    cm = sr[jj];
            }
            if (cm > m[r]) {
                if (m[r] != -INFINITY) {
                    float f = expf(m[r] - cm);
                    l[r] *= f;
                    ops->scale_f32(o + (size_t)r * q_ld, f, Dh);
                }
                m[r] = cm;
            }
            for (int jj = 0; jj < nk; jj++) {
                float pj = sr[jj] == -INFINITY ? 0.0f : expf(sr[jj] - m[r]);
                sr[jj] = pj;
                l[r] += pj;
            }
        }
        /* o += P V, V packed pc output columns at a time */
        for (int d0 = 0; d0 < Dh; d0 += pc) {
            int n = Dh - d0 < pc ? Dh - d0 : pc;
            for (int jj = 0; jj < nk; jj++) {
                const float *src = v + key_slot(c0 + jj, j->cap) * kv_ld + d0;
                float *dst = panel + (size_t)jj * pc;
                int c = 0;
                for (; c < n; c++)
                    dst[c] = src[c];
                for (; c < pc; c++)
                    dst[c] = 0.0f;
            }
            for (int r = 0; r < rows; r += GEMM_ROWS)
                ops->gemm_panel(o + (size_t)r * q_ld + d0, (int)q_ld, s + (size_t)r * KEY_BLOCK, KEY_BLOCK,
                                panel, rows - r < GEMM_ROWS ? rows - r : GEMM_ROWS, nk, n, 1);
        }
    }
    for (int r = 0; r < rows; r++)
        ops->scale_f32(o + (size_t)r * q_ld, 1.0f / l[r], Dh);
}

/* Query blocks the batch touches: [first_block, first_block + n_blocks). */
static int first_block(const PrefillJob *j) {
    return j->pos0 / QUERY_BLOCK;
}
static int n_blocks_of(const PrefillJob *j) {
    return (j->pos0 + j->n_tokens - 1) / QUERY_BLOCK - first_block(j) + 1;
}

/* Items are (head, query block) pairs, head-major. */
static void prefill_blocks(void *ctx, int start, int end) {
    const PrefillJob *j = ctx;
    const SimdOps *ops = simd_ops();
    int n_blocks = n_blocks_of(j);
    for (int item = start; item < end; item++)
        prefill_block(j, item / n_blocks, first_block(j) + item % n_blocks, ops);
}

/* Row by row (head dims past BLOCKED_MAX_HEAD_DIM): items are (query t, head h) pairs. */
static void prefill_range(void *ctx, int start, int end) {
    const PrefillJob *j = ctx;
    const SimdOps *ops = simd_ops();
    size_t q_ld = (size_t)j->n_heads * j->head_dim, kv_ld = (size_t)j->n_kv_heads * j->head_dim;
    int group = j->n_heads / j->n_kv_heads;
    for (int item = start; item < end; item++) {
        int t = item / j->n_heads, h = item % j->n_heads, lo, hi;
        key_range(j, t, &lo, &hi);
        int kvh = h / group;
        attend(j->out + (size_t)t * q_ld + (size_t)h * j->head_dim,
               j->q + (size_t)t * q_ld + (size_t)h * j->head_dim, j->k + (size_t)kvh * j->head_dim,
               j->v + (size_t)kvh * j->head_dim, kv_ld, j->cap, lo, hi, j->head_dim, j->scale, ops);
    }
}

static void run_prefill(PrefillJob *job) {
    if (job->head_dim <= BLOCKED_MAX_HEAD_DIM && simd_ops()->panel_cols <= 32)
        parallel_for(job->n_heads * n_blocks_of(job), 1, prefill_blocks, job);
    else
        parallel_for(job->n_tokens * job->n_heads, 2, prefill_range, job);
}

void attention_prefill(float *out, const float *q, const float *k, const float *v, const int32_t *image_block,
                       int n_tokens, int n_heads, int n_kv_heads, int head_dim, int causal, int window,
                       float scale) {
    PrefillJob job = {out,        q,        k,      v,      image_block, n_tokens, n_heads,
                      n_kv_heads, head_dim, causal, window, scale,       0,        INT_MAX};
    run_prefill(&job);
}

void attention_cached(float *out, const float *q, const float *k_cache, const float *v_cache, int capacity,
                      const int32_t *image_block, int n_tokens, int pos0, int n_heads, int n_kv_heads,
                      int head_dim, int window, float scale) {
    PrefillJob job = {out,        q,        k_cache, v_cache, image_block, n_tokens, n_heads,
                      n_kv_heads, head_dim, 1,       window,  scale,       pos0,     capacity};
    run_prefill(&job);
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    int lo, hi, cap; /* key positions [lo, hi], position p in row key_slot(p, cap) */
    int n_heads, n_kv_heads, head_dim;
    float scale;
} DecodeJob;

static void decode_range(void *ctx, int start, int end) {
    const DecodeJob *j = ctx;
    const SimdOps *ops = simd_ops();
    size_t kv_ld = (size_t)j->n_kv_heads * j->head_dim;
    int group = j->n_heads / j->n_kv_heads;
    for (int h = start; h < end; h++) {
        int kvh = h / group;
        attend(j->out + (size_t)h * j->head_dim, j->q + (size_t)h * j->head_dim,
               j->k + (size_t)kvh * j->head_dim, j->v + (size_t)kvh * j->head_dim, kv_ld, j->cap, j->lo,
               j->hi, j->head_dim, j->scale, ops);
    }
}

void attention_decode(float *out, const float *q, const float *k_cache, const float *v_cache, int n_keys,
                      int n_heads, int n_kv_heads, int head_dim, float scale) {
    DecodeJob job = {out, q, k_cache, v_cache, 0, n_keys - 1, INT_MAX, n_heads, n_kv_heads, head_dim, scale};
    parallel_for(n_heads, 1, decode_range, &job);
}

void attention_decode_ring(float *out, const float *q, const float *k_cache, const float *v_cache,
                           int capacity, int pos, int window, int n_heads, int n_kv_heads, int head_dim,
                           float scale) {
    int lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    if (pos - capacity + 1 > lo)
        lo = pos - capacity + 1;
    DecodeJob job = {out, q, k_cache, v_cache, lo, pos, capacity, n_heads, n_kv_heads, head_dim, scale};
    parallel_for(n_heads, 1, decode_range, &job);
}
