/* GELU with the tanh approximation (torch's gelu(approximate="tanh")):
 *   gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * gated form for Gemma's MLP: out = gelu_tanh(gate) * up. The vector loop is
 * simd.h's gelu (written as x / (1 + exp(-2u)), the same function). */
#include "kernels/cpu/simd.h"
#include "kernels/cpu/threadpool.h"
#include "kernels/kernels.h"

typedef struct {
    float *out;
    const float *gate, *up;
} GeluJob;

static void gelu_range(void *ctx, int start, int end) {
    const GeluJob *j = ctx;
    simd_ops()->gelu(j->out + start, j->gate + start, j->up ? j->up + start : NULL, end - start);
}

void gelu_tanh_gate(float *out, const float *gate, const float *up, int n) {
    GeluJob job = {out, gate, up};
    parallel_for(n, 4096, gelu_range, &job);
}

void gelu_tanh(float *x, int n) {
    GeluJob job = {x, x, NULL};
    parallel_for(n, 4096, gelu_range, &job);
}
