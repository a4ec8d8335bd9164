/* The CUDA backend's host code on the fake device (tests/gpu/fake/): its one
 * planned allocation at 34 layers, the errors of create, the request-time
 * errors (sticky ones lose the device, an allocation failure only that
 * request), and the engine's backend choice (auto's loud fallback, cuda's
 * refusal to fall back). Built by tests/gpu/fake/fake.mk as
 * build/cuda_backend_tests with tests/unit/main.c (one forked child per
 * test, so each starts with a fresh fake device). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_runtime_api.h"
#include "engine/backend.h"
#include "engine/cuda/device_plan.h"
#include "engine/engine.h"
#include "engine/synth_model.h"
#include "kernels/kernels.h"
#include "tests/unit/test.h"
#include "util/bf16.h"

/* ---- a model built in memory: MedGemma's layer count and layer pattern at toy widths */

#define MEM_LAYERS 34
#define MEM_VOCAB 300
#define MEM_IMAGE_TOKEN 299

typedef struct {
    ModelConfig cfg;
    ModelWeights w;
    TextLayerWeights layers[MEM_LAYERS];
    VisionLayerWeights vlayers[2];
    void *bufs[1024];
    int n_bufs;
    uint64_t seed;
} MemModel;

static const bf16 *rnd(MemModel *m, size_t n, float scale) {
    bf16 *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        m->seed = m->seed * 6364136223846793005ull + 1442695040888963407ull;
        float u = (float)((m->seed >> 40) & 0xFFFFFF) / 16777216.0f; /* [0, 1) */
        p[i] = f32_to_bf16((2 * u - 1) * scale);
    }
    m->bufs[m->n_bufs++] = p;
    return p;
}

static void mem_model_init(MemModel *m) {
    memset(m, 0, sizeof *m);
    m->seed = 7;
    ModelConfig *c = &m->cfg;
    TextConfig *t = &c->text;
    t->hidden_size = 64;
    t->intermediate_size = 128;
    t->num_layers = MEM_LAYERS;
    t->num_heads = 4;
    t->num_kv_heads = 2;
    t->head_dim = 16;
    t->vocab_size = MEM_VOCAB;
    t->sliding_window = 8;
    t->max_position = 4096;
    t->rms_norm_eps = 1e-6f;
    t->query_pre_attn_scalar = 16;
    t->rope_theta_global = 1e6f;
    t->rope_theta_local = 1e4f;
    t->rope_scale_global = 8;
    t->rope_scale_local = 1;
    t->tie_word_embeddings = 1;
    for (int l = 0; l < MEM_LAYERS; l++)
        t->layer_is_global[l] = l % 6 == 5;
    c->has_vision = 1;
    VisionConfig *v = &c->vision;
    v->hidden_size = 32;
    v->intermediate_size = 64;
    v->num_layers = 2;
    v->num_heads = 2;
    v->patch_size = 14;
    v->image_size = 56;
    v->num_channels = 3;
    v->layer_norm_eps = 1e-6f;
    c->mm_tokens_per_image = 4;
    c->image_token_id = MEM_IMAGE_TOKEN;
    c->boi_token_id = 297;
    c->eoi_token_id = 298;
    c->eos_ids[0] = 1;
    c->n_eos_ids = 1;
    c->bos_token_id = 2;

    const size_t D = 64, I = 128, Q = 64, KV = 32, Dh = 16, Dv = 32, Iv = 64;
    const float sd = 1 / sqrtf(D), si = 1 / sqrtf(I), sq = 1 / sqrtf(Q), sdv = 1 / sqrtf(Dv),
                siv = 1 / sqrtf(Iv);
    ModelWeights *w = &m->w;
    w->embed = rnd(m, MEM_VOCAB * D, 0.05f);
    w->lm_head = w->embed;
    w->final_norm = rnd(m, D, 0.1f);
    w->layers = m->layers;
    for (int l = 0; l < MEM_LAYERS; l++) {
        TextLayerWeights *tw = &m->layers[l];
        tw->input_norm = rnd(m, D, 0.1f);
        tw->q_proj = rnd(m, Q * D, sd);
        tw->k_proj = rnd(m, KV * D, sd);
        tw->v_proj = rnd(m, KV * D, sd);
        tw->o_proj = rnd(m, D * Q, sq);
        tw->q_norm = rnd(m, Dh, 0.1f);
        tw->k_norm = rnd(m, Dh, 0.1f);
        tw->post_attn_norm = rnd(m, D, 0.1f);
        tw->pre_ff_norm = rnd(m, D, 0.1f);
        tw->post_ff_norm = rnd(m, D, 0.1f);
        tw->gate_proj = rnd(m, I * D, sd);
        tw->up_proj = rnd(m, I * D, sd);
        tw->down_proj = rnd(m, D * I, si);
    }
    w->patch_w = rnd(m, Dv * 3 * 14 * 14, 1 / sqrtf(3 * 14 * 14));
    w->patch_b = rnd(m, Dv, 0.02f);
    w->pos_embed = rnd(m, 16 * Dv, 0.02f);
    w->vision_layers = m->vlayers;
    for (int l = 0; l < 2; l++) {
        VisionLayerWeights *vw = &m->vlayers[l];
        vw->ln1_w = rnd(m, Dv, 1), vw->ln1_b = rnd(m, Dv, 0.02f);
        vw->ln2_w = rnd(m, Dv, 1), vw->ln2_b = rnd(m, Dv, 0.02f);
        vw->q_w = rnd(m, Dv * Dv, sdv), vw->q_b = rnd(m, Dv, 0.02f);
        vw->k_w = rnd(m, Dv * Dv, sdv), vw->k_b = rnd(m, Dv, 0.02f);
        vw->v_w = rnd(m, Dv * Dv, sdv), vw->v_b = rnd(m, Dv, 0.02f);
        vw->out_w = rnd(m, Dv * Dv, sdv), vw->out_b = rnd(m, Dv, 0.02f);
        vw->fc1_w = rnd(m, Iv * Dv, sdv), vw->fc1_b = rnd(m, Iv, 0.02f);
        vw->fc2_w = rnd(m, Dv * Iv, siv), vw->fc2_b = rnd(m, Dv, 0.02f);
    }
    w->post_ln_w = rnd(m, Dv, 1);
    w->post_ln_b = rnd(m, Dv, 0.02f);
    w->mm_soft_norm = rnd(m, Dv, 0.1f);
    w->mm_proj = rnd(m, Dv * D, sdv);
}

static void mem_model_free(MemModel *m) {
    for (int i = 0; i < m->n_bufs; i++)
        free(m->bufs[i]);
}

/* The prompt: bos, text, boi, 4 image tokens, eoi, text (20 tokens: past the window of 8). */
#define PROMPT_LEN 20
static void prompt(int32_t *ids, int32_t *image_block) {
    for (int t = 0; t < PROMPT_LEN; t++) {
        ids[t] = 3 + (t * 37) % 290;
        image_block[t] = -1;
    }
    ids[0] = 2;
    ids[5] = 297;
    for (int t = 6; t < 10; t++)
        ids[t] = MEM_IMAGE_TOKEN, image_block[t] = 0;
    ids[10] = 298;
}

static float pixels[3 * 56 * 56];
static void make_pixels(void) {
    for (size_t i = 0; i < sizeof pixels / sizeof pixels[0]; i++)
        pixels[i] = sinf((float)i * 0.37f) * 0.9f;
}

static const BackendOptions mem_options = {
    .n_threads = 1, .max_context = 64, .max_prefill = 32, .embed_scale = 8};

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Runs image + prefill + 3 decode steps (fixed tokens); logits [4, V]. */
static int run_sequence(const Backend *be, void *state, float *logits, Error *err) {
    int32_t ids[PROMPT_LEN], block[PROMPT_LEN];
    prompt(ids, block);
    float embeds[4 * 64];
    int rc = be->encode_image(state, pixels, embeds, err);
    if (rc == 0)
        rc = be->prefill(state, ids, PROMPT_LEN, block, embeds, logits, err);
    for (int s = 1; s < 4 && rc == 0; s++)
        rc = be->decode(state, 3 + 11 * s, PROMPT_LEN + s - 1, logits + (size_t)s * MEM_VOCAB, err);
    return rc;
}

static void *create_cuda(MemModel *m) {
    void *state = NULL;
    Error err = {{0}};
    if (backend_cuda_get()->create(&state, &m->cfg, &m->w, &mem_options, &err) != 0)
        test_fail(__FILE__, __LINE__, "create: %s", err.message);
    return state;
}

/* The test's own plan, as the backend makes it on the fake device (compute capability 8.9). */
static size_t planned_bytes(const MemModel *m) {
    DevicePlanOptions o = {mem_options.max_context, mem_options.max_prefill, 0,
                           device_plan_gemm_workspace(8)};
    DevicePlan p;
    Error err = {{0}};
    if (device_plan_build(&p, &m->cfg, &o, &err) != 0)
        test_fail(__FILE__, __LINE__, "plan: %s", err.message);
    return p.total;
}

TEST(cuda_backend_34_layers_one_allocation_matches_cpu) {
    MemModel m;
    mem_model_init(&m);
    make_pixels();
    kernels_set_threads(1);
    void *state = create_cuda(&m);
    if (!state) {
        mem_model_free(&m);
        return;
    }
    int n_allocs = -1;
    size_t bytes = 0;
    fake_device_allocations(&n_allocs, &bytes);
    CHECK_EQ_INT(n_allocs, 1);
    CHECK_EQ_INT(bytes, planned_bytes(&m));
    const Backend *cuda = backend_cuda_get(), *cpu = backend_cpu_get();
    static float got[4 * MEM_VOCAB], want[4 * MEM_VOCAB];
    Error err = {{0}};
    CHECK_MSG(run_sequence(cuda, state, got, &err) == 0, "cuda: %s", err.message);
    cuda->destroy(state);
    fake_device_allocations(&n_allocs, &bytes);
    CHECK_EQ_INT(n_allocs, 0);

    void *cpu_state = NULL;
    CHECK(cpu->create(&cpu_state, &m.cfg, &m.w, &mem_options, &err) == 0);
    CHECK_MSG(run_sequence(cpu, cpu_state, want, &err) == 0, "cpu: %s", err.message);
    cpu->destroy(cpu_state);
    /* bf16 activations against the CPU's fp32 (docs/gpu.md: the envelope is 6e-2) */
    for (int s = 0; s < 4; s++) {
        double e = rel_err(got + s * MEM_VOCAB, want + s * MEM_VOCAB, MEM_VOCAB);
        printf("# step %d: logits rel. err. %.4f\n", s, e);
        CHECK_MSG(e < 6e-2, "step %d: rel. err. %.4f", s, e);
    }
    mem_model_free(&m);
}

TEST(cuda_backend_refuses_a_model_that_does_not_fit) {
    MemModel m;
    mem_model_init(&m);
    size_t need = planned_bytes(&m);
    fake_set_device_memory(need + ((size_t)100 << 20)); /* less than the plan + the driver's 256 MiB */
    void *state = NULL;
    Error err = {{0}};
    CHECK(backend_cuda_get()->create(&state, &m.cfg, &m.w, &mem_options, &err) == -1);
    CHECK(state == NULL);
    CHECK_STR_CONTAINS(err.message, "the model needs");
    CHECK_STR_CONTAINS(err.message, "in one allocation: weights");
    CHECK_STR_CONTAINS(err.message, "free");
    int n = -1;
    size_t bytes = 1;
    fake_device_allocations(&n, &bytes);
    CHECK_EQ_INT(n, 0);
    fake_set_device_memory(need + ((size_t)300 << 20)); /* enough */
    state = create_cuda(&m);
    if (state)
        backend_cuda_get()->destroy(state);
    mem_model_free(&m);
}

TEST(cuda_backend_failed_malloc_at_create_leaves_nothing) {
    MemModel m;
    mem_model_init(&m);
    fake_fail_malloc(1, cudaErrorMemoryAllocation);
    void *state = NULL;
    Error err = {{0}};
    CHECK(backend_cuda_get()->create(&state, &m.cfg, &m.w, &mem_options, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "cudaMalloc");
    CHECK_STR_CONTAINS(err.message, "out of memory");
    int n = -1;
    size_t bytes = 1;
    fake_device_allocations(&n, &bytes);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(bytes, 0);
    mem_model_free(&m);
}

/* A sticky error at the n-th launch of one call, then every call refuses. */
static void check_sticky(long nth, cudaError_t error, int where /* 0 image, 1 prefill, 2 decode */) {
    MemModel m;
    mem_model_init(&m);
    make_pixels();
    void *state = create_cuda(&m);
    if (!state) {
        mem_model_free(&m);
        return;
    }
    const Backend *be = backend_cuda_get();
    static float logits[4 * MEM_VOCAB];
    float embeds[4 * 64];
    int32_t ids[PROMPT_LEN], block[PROMPT_LEN];
    prompt(ids, block);
    Error err = {{0}};
    CHECK(be->encode_image(state, pixels, embeds, &err) == 0);
    if (where >= 2)
        CHECK(be->prefill(state, ids, PROMPT_LEN, block, embeds, logits, &err) == 0);
    fake_fail_launch(nth, error);
    int rc = where == 0   ? be->encode_image(state, pixels, embeds, &err)
             : where == 1 ? be->prefill(state, ids, PROMPT_LEN, block, embeds, logits, &err)
                          : be->decode(state, 5, PROMPT_LEN, logits, &err);
    CHECK_EQ_INT(rc, ENGINE_ERR_DEVICE_LOST);
    CHECK_STR_CONTAINS(err.message, cudaGetErrorString(error));
    /* the device stays lost, even once the (fake) runtime would work again */
    fake_reset();
    long launches = fake_launch_count();
    CHECK_EQ_INT(be->prefill(state, ids, PROMPT_LEN, block, embeds, logits, &err), ENGINE_ERR_DEVICE_LOST);
    CHECK_STR_CONTAINS(err.message, "failed earlier");
    CHECK_EQ_INT(be->decode(state, 5, PROMPT_LEN, logits, &err), ENGINE_ERR_DEVICE_LOST);
    CHECK_EQ_INT(be->encode_image(state, pixels, embeds, &err), ENGINE_ERR_DEVICE_LOST);
    CHECK_EQ_INT(fake_launch_count(), launches); /* refused before touching the device */
    be->destroy(state);
    mem_model_free(&m);
}

TEST(cuda_backend_illegal_address_in_prefill_loses_the_device) {
    check_sticky(7, cudaErrorIllegalAddress, 1);
}
TEST(cuda_backend_launch_failure_in_the_decode_graph_loses_the_device) {
    check_sticky(12, cudaErrorLaunchFailure, 2);
}
TEST(cuda_backend_illegal_address_in_the_vision_tower_loses_the_device) {
    check_sticky(3, cudaErrorIllegalAddress, 0);
}

/* An allocation failure at the n-th launch of a prefill fails that prefill
 * only; the next one gives the same logits. */
static void check_transient(long nth, const char *failed_call) {
    MemModel m;
    mem_model_init(&m);
    void *state = create_cuda(&m);
    if (!state) {
        mem_model_free(&m);
        return;
    }
    const Backend *be = backend_cuda_get();
    int32_t ids[PROMPT_LEN], block[PROMPT_LEN];
    prompt(ids, block);
    static float ref[MEM_VOCAB], again[MEM_VOCAB];
    Error err = {{0}};
    CHECK(be->prefill(state, ids, PROMPT_LEN, NULL, NULL, ref, &err) == 0); /* text only */
    fake_fail_launch(nth, cudaErrorMemoryAllocation);
    CHECK_EQ_INT(be->prefill(state, ids, PROMPT_LEN, NULL, NULL, again, &err), ENGINE_ERR_OUT_OF_MEMORY);
    CHECK_STR_CONTAINS(err.message, failed_call);
    CHECK_MSG(be->prefill(state, ids, PROMPT_LEN, NULL, NULL, again, &err) == 0, "after: %s", err.message);
    int same = 1;
    for (int i = 0; i < MEM_VOCAB; i++)
        same &= ref[i] == again[i];
    CHECK_MSG(same, "the logits after the failed prefill differ");
    CHECK(be->decode(state, 5, PROMPT_LEN, again, &err) == 0);
    be->destroy(state);
    mem_model_free(&m);
}

TEST(cuda_backend_out_of_memory_at_a_kernel_launch_fails_that_request_only) {
    check_transient(1, "cuda_embedding_lookup");
}
TEST(cuda_backend_out_of_memory_in_cublaslt_fails_that_request_only) {
    check_transient(3, "cublasLtMatmul"); /* embedding, rmsnorm, then layer 0's q|k|v GEMM */
}

TEST(cuda_backend_refused_arguments_are_input_errors) {
    MemModel m;
    mem_model_init(&m);
    void *state = create_cuda(&m);
    if (!state) {
        mem_model_free(&m);
        return;
    }
    const Backend *be = backend_cuda_get();
    int32_t ids[40] = {2};
    static float logits[MEM_VOCAB];
    Error err = {{0}};
    CHECK_EQ_INT(be->prefill(state, ids, 40, NULL, NULL, logits, &err), ENGINE_ERR_INPUT); /* > max_prefill */
    CHECK_STR_CONTAINS(err.message, "1..32");
    ids[3] = MEM_VOCAB;
    CHECK_EQ_INT(be->prefill(state, ids, 5, NULL, NULL, logits, &err), ENGINE_ERR_INPUT);
    CHECK_EQ_INT(be->decode(state, 5, 64, logits, &err), ENGINE_ERR_INPUT);
    ids[3] = 7;
    CHECK(be->prefill(state, ids, 5, NULL, NULL, logits, &err) == 0);
    be->destroy(state);
    mem_model_free(&m);
}

/* ---- the engine's backend choice, on the tiny synth checkpoint */

static Engine *open_engine(BackendKind kind, Error *err) {
    Engine *e = NULL;
    EngineOptions eo = {.model_dir = test_tiny_model(), .backend = kind, .n_threads = 1, .max_context = 128};
    if (engine_open(&e, &eo, err) != 0)
        return NULL;
    return e;
}

TEST(engine_auto_uses_the_gpu) {
    Error err = {{0}};
    Engine *e = open_engine(BACKEND_AUTO, &err);
    CHECK_MSG(e != NULL, "%s", err.message);
    if (!e)
        return;
    EngineInfo info;
    engine_info(e, &info);
    CHECK_STR_CONTAINS(info.backend, "cuda");
    CHECK_STR_CONTAINS(info.gpu_name, "fake GPU");
    CHECK_EQ_INT(info.gpu_available, 1);
    CHECK(info.fallback_reason == NULL);
    engine_close(e);
}

TEST(engine_auto_falls_back_loudly_when_the_gpu_cannot_take_the_model) {
    fake_set_device_memory((size_t)1 << 20);
    Error err = {{0}};
    Engine *e = open_engine(BACKEND_AUTO, &err);
    CHECK_MSG(e != NULL, "%s", err.message);
    if (!e)
        return;
    EngineInfo info;
    engine_info(e, &info);
    CHECK_STR_CONTAINS(info.backend, "cpu");
    CHECK(info.gpu_name == NULL);
    CHECK_EQ_INT(info.gpu_available, 1);
    CHECK_STR_CONTAINS(info.fallback_reason, "the model needs");
    engine_close(e);
}

TEST(engine_cuda_never_falls_back) {
    fake_set_device_memory((size_t)1 << 20);
    Error err = {{0}};
    Engine *e = open_engine(BACKEND_CUDA, &err);
    CHECK(e == NULL);
    CHECK_STR_CONTAINS(err.message, "backend cuda (no fallback to the CPU");
    CHECK_STR_CONTAINS(err.message, "the model needs");
    fake_set_device_memory((size_t)80 << 30);
    fake_set_device_count(0);
    e = open_engine(BACKEND_CUDA, &err);
    CHECK(e == NULL);
    CHECK_STR_CONTAINS(err.message, "no CUDA device");
}

TEST(engine_auto_without_a_gpu_is_the_cpu_without_fallback) {
    fake_set_device_count(0);
    Error err = {{0}};
    Engine *e = open_engine(BACKEND_AUTO, &err);
    CHECK_MSG(e != NULL, "%s", err.message);
    if (!e)
        return;
    EngineInfo info;
    engine_info(e, &info);
    CHECK_STR_CONTAINS(info.backend, "cpu");
    CHECK_EQ_INT(info.gpu_available, 0);
    CHECK(info.fallback_reason == NULL);
    engine_close(e);
}

static int generate(Engine *e, Error *err) {
    int32_t ids[12] = {2, 105, 2364, 107, 818, 563, 496, 3499, 236881, 106, 107, 105};
    GenerateRequest r = {.tokens = ids, .n_tokens = 12, .max_new_tokens = 4, .top_p = 1};
    GenerateResult res;
    return engine_generate(e, &r, &res, err);
}

TEST(engine_device_lost_fails_every_later_request) {
    Error err = {{0}};
    Engine *e = open_engine(BACKEND_CUDA, &err);
    CHECK_MSG(e != NULL, "%s", err.message);
    if (!e)
        return;
    CHECK(generate(e, &err) == 0);
    CHECK(engine_device_error(e) == NULL);
    fake_fail_launch(4, cudaErrorIllegalAddress);
    CHECK_EQ_INT(generate(e, &err), ENGINE_ERR_DEVICE_LOST);
    CHECK_STR_CONTAINS(engine_device_error(e), "illegal memory access");
    long launches = fake_launch_count();
    CHECK_EQ_INT(generate(e, &err), ENGINE_ERR_DEVICE_LOST);
    CHECK_STR_CONTAINS(err.message, "the GPU failed earlier");
    CHECK_EQ_INT(fake_launch_count(), launches);
    engine_close(e);
}

TEST(engine_out_of_memory_then_the_next_request_works) {
    Error err = {{0}};
    Engine *e = open_engine(BACKEND_CUDA, &err);
    CHECK_MSG(e != NULL, "%s", err.message);
    if (!e)
        return;
    fake_fail_launch(2, cudaErrorMemoryAllocation);
    CHECK_EQ_INT(generate(e, &err), ENGINE_ERR_OUT_OF_MEMORY);
    CHECK(engine_device_error(e) == NULL);
    CHECK_MSG(generate(e, &err) == 0, "%s", err.message);
    engine_close(e);
}
