/* The CPU backend (engine/backend.h): the model of engine/forward.c over the CPU
 * op table (kernels/cpu/ops_cpu.c), in fp32 with bf16 weights read in place from
 * the checkpoint mapping. Options: precision bf16 sets the kernels' PRECISION_BF16;
 * weights q8 quantizes every decoder projection and the output head when the op
 * table prepares them (forward_create). This file checks the CPU kernels' limits
 * and adapts the backend interface; the model itself is in forward.c. */
#include "engine/backend.h"

#include <stdlib.h>
#include <time.h>

#include "engine/forward.h"
#include "kernels/ops.h"
#include "util/log.h"

typedef struct {
    Ops ops;
    Forward *forward;
    const ModelConfig *config;
    BackendOptions opt;
    BackendCapture cap;
    int has_cap;
} CpuState;

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void cpu_destroy(void *state) {
    CpuState *s = state;
    if (!s)
        return;
    forward_destroy(s->forward);
    if (s->ops.ctx)
        ops_cpu_destroy(&s->ops);
    free(s);
}

static int cpu_create(void **state, const ModelConfig *config, const ModelWeights *weights,
                      const BackendOptions *options, Error *err) {
    const TextConfig *tc = &config->text;
    if (options->max_context < 1 || options->max_prefill < 1 || options->max_prefill > options->max_context)
        return error_set(err, "cpu backend: bad sizes (max_context %d, max_prefill %d)", options->max_context,
                         options->max_prefill);
    if (tc->head_dim > 1024)
        return error_set(err, "cpu backend: head_dim %d is over 1024", tc->head_dim);
    if (config->has_vision &&
        config->vision.num_channels * config->vision.patch_size * config->vision.patch_size > 4 * 32 * 32)
        return error_set(err, "cpu backend: patch vector of %d values is over 4096",
                         config->vision.num_channels * config->vision.patch_size * config->vision.patch_size);

    CpuState *s = calloc(1, sizeof *s);
    if (!s)
        return error_set(err, "cpu backend: out of memory");
    s->config = config;
    s->opt = *options;
    OpsOptions oo = {options->n_threads, options->precision_bf16, options->weights_q8};
    ForwardOptions fo = {options->max_context, options->max_prefill, options->embed_scale};
    double t0 = seconds_now();
    if (ops_cpu_create(&s->ops, &oo, err) != 0 ||
        forward_create(&s->forward, &s->ops, config, weights, &fo, err)) {
        cpu_destroy(s);
        return -1;
    }
    if (options->weights_q8)
        log_msg(LOG_INFO, "cpu backend: weights quantized to q8 (%.2f GB) in %.2f s",
                (double)ops_cpu_q8_bytes(&s->ops) / 1e9, seconds_now() - t0);
    *state = s;
    return 0;
}

static const char *cpu_device_name(void *state) {
    return NULL;
}

static int cpu_encode_image(void *state, const float *pixels, float *out, Error *err) {
    CpuState *s = state;
    if (!s->config->has_vision)
        return error_set(err, "this model has no vision tower (text-only checkpoint)");
    return forward_image(s->forward, pixels, out, s->has_cap ? s->cap.vision_hidden : NULL, err);
}

static int cpu_prefill(void *state, const int32_t *tokens, int n, const int32_t *image_block,
                       const float *image_embeds, float *logits, Error *err) {
    CpuState *s = state;
    if (n < 1 || n > s->opt.max_prefill)
        return error_set(err, "prefill of %d tokens (this backend takes 1..%d)", n, s->opt.max_prefill);
    return forward_text(s->forward, tokens, n, 0, image_block, image_embeds, logits,
                        s->has_cap ? &s->cap : NULL, err);
}

static int cpu_decode(void *state, int32_t token, int pos, float *logits, Error *err) {
    CpuState *s = state;
    if (pos < 1 || pos >= s->opt.max_context)
        return error_set(err, "decode at position %d (the KV cache holds %d)", pos, s->opt.max_context);
    return forward_text(s->forward, &token, 1, pos, NULL, NULL, logits, NULL, err);
}

static void cpu_set_capture(void *state, const BackendCapture *capture) {
    CpuState *s = state;
    s->has_cap = capture != NULL;
    if (capture)
        s->cap = *capture;
}

static const Backend cpu_backend = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .device_name = cpu_device_name,
    .encode_image = cpu_encode_image,
    .prefill = cpu_prefill,
    .decode = cpu_decode,
    .set_capture = cpu_set_capture,
};

const Backend *backend_cpu_get(void) {
    return &cpu_backend;
}
