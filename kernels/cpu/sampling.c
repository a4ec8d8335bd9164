/* Softmax, argmax and the sampler (temperature, top-k, top-p). Allocation-free:
 * the caller passes an index scratch of n ints.
 *   softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x) */
#include <math.h>
#include <stddef.h>

#include "kernels/kernels.h"

void softmax(float *x, int n) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > m)
            m = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best] || (x[best] != x[best] && x[i] == x[i]))
            best = i;
    return best;
}

/* Partitions idx[0..n) so that the k entries with the largest values come
 * first (quickselect, median of three; ties broken by index for determinism). */
static int before(const float *v, int32_t a, int32_t b) {
    float va = v[a], vb = v[b];
    return va > vb || (va == vb && a < b);
}

static void swap_idx(int32_t *idx, int a, int b) {
    int32_t t = idx[a];
    idx[a] = idx[b];
    idx[b] = t;
}

static void select_top(const float *v, int32_t *idx, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (before(v, idx[mid], idx[lo]))
            swap_idx(idx, mid, lo);
        if (before(v, idx[hi], idx[lo]))
            swap_idx(idx, hi, lo);
        if (before(v, idx[hi], idx[mid]))
            swap_idx(idx, hi, mid);
        int32_t pivot = idx[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (before(v, idx[i], pivot))
                i++;
            while (before(v, pivot, idx[j]))
                j--;
            if (i <= j)
                swap_idx(idx, i++, j--);
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            return;
    }
}

/* Heap sort of idx[0..n) by value, largest first. */
static void sift_down(const float *v, int32_t *idx, int root, int n) {
    for (;;) {
        int child = 2 * root + 1;
        if (child >= n)
            return;
        /* min-heap on "before" order: the root is the entry that sorts last */
        if (child + 1 < n && before(v, idx[child], idx[child + 1]))
            child++;
        if (!before(v, idx[root], idx[child]))
            return;
        swap_idx(idx, root, child);
        root = child;
    }
}

static void sort_desc(const float *v, int32_t *idx, int n) {
    for (int i = n / 2 - 1; i >= 0; i--)
        sift_down(v, idx, i, n);
    for (int end = n - 1; end > 0; end--) {
        swap_idx(idx, 0, end);
        sift_down(v, idx, 0, end);
    }
}

int sample_logits(float *logits, int n, float temperature, int top_k, float top_p, float coin,
                  int32_t *scratch_idx) {
    if (temperature <= 0.0f || n == 1)
        return argmax(logits, n);
    int32_t *idx = scratch_idx;
    for (int i = 0; i < n; i++) {
        logits[i] /= temperature;
        idx[i] = i;
    }
    int m = n;
    if (top_k > 0 && top_k < n) {
        select_top(logits, idx, n, top_k);
        m = top_k;
    }
    /* softmax over the candidates */
    float mx = -INFINITY;
    for (int i = 0; i < m; i++)
        if (logits[idx[i]] > mx)
            mx = logits[idx[i]];
    double sum = 0.0;
    for (int i = 0; i < m; i++) {
        float e = expf(logits[idx[i]] - mx);
        logits[idx[i]] = e;
        sum += e;
    }
    for (int i = 0; i < m; i++)
        logits[idx[i]] = (float)(logits[idx[i]] / sum);
    if (top_p < 1.0f && top_p > 0.0f) {
        /* Tokens below (1 - top_p) / m hold less than 1 - top_p of the mass in
         * total, so the nucleus lies among the others: sort only those. */
        float floor_p = (1.0f - top_p) / (float)m;
        int kept = 0;
        for (int i = 0; i < m; i++)
            if (logits[idx[i]] >= floor_p)
                idx[kept++] = idx[i];
        sort_desc(logits, idx, kept);
        double cum = 0.0;
        int cut = kept;
        for (int i = 0; i < kept; i++) {
            cum += logits[idx[i]];
            if (cum >= top_p) {
                cut = i + 1;
                break;
            }
        }
        m = cut > 0 ? cut : 1;
    }
    double total = 0.0;
    for (int i = 0; i < m; i++)
        total += logits[idx[i]];
    double target = coin * total, acc = 0.0;
    for (int i = 0; i < m; i++) {
        acc += logits[idx[i]];
        if (target < acc)
            return idx[i];
    }
    return idx[m - 1];
}
