/* engine/cuda/device_plan: the CUDA backend's one device allocation, checked
 * without a GPU. Regions aligned, disjoint and inside the allocation for
 * several shapes; the MedGemma 4B totals derived by hand from the published
 * shapes; the KV ring rule; tied heads, text-only models, bad options. */
#include <stdint.h>
#include <stdlib.h>

#include "engine/config.h"
#include "engine/cuda/device_plan.h"
#include "tests/unit/test.h"

/* google/medgemma-1.5-4b-it's config.json (the fields the engine reads). */
static const char *const config_4b =
    "{\"architectures\": [\"Gemma3ForConditionalGeneration\"], \"model_type\": \"gemma3\","
    " \"boi_token_index\": 255999, \"eoi_token_index\": 256000, \"image_token_index\": 262144,"
    " \"eos_token_id\": [1, 106], \"mm_tokens_per_image\": 256,"
    " \"text_config\": {\"model_type\": \"gemma3_text\", \"head_dim\": 256, \"hidden_size\": 2560,"
    "  \"intermediate_size\": 10240, \"max_position_embeddings\": 131072, \"num_attention_heads\": 8,"
    "  \"num_hidden_layers\": 34, \"num_key_value_heads\": 4, \"query_pre_attn_scalar\": 256,"
    "  \"rms_norm_eps\": 1e-06, \"rope_local_base_freq\": 10000.0,"
    "  \"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"linear\"}, \"rope_theta\": 1000000.0,"
    "  \"sliding_window\": 1024, \"sliding_window_pattern\": 6, \"vocab_size\": 262208},"
    " \"vision_config\": {\"model_type\": \"siglip_vision_model\", \"hidden_size\": 1152, \"image_size\": "
    "896,"
    "  \"intermediate_size\": 4304, \"num_attention_heads\": 16, \"num_hidden_layers\": 27,"
    "  \"patch_size\": 14, \"vision_use_head\": false}}";

/* A small text-only Gemma 3 (odd sizes: slices that are not multiples of 256 bytes). */
static const char *const config_small_text =
    "{\"architectures\": [\"Gemma3ForCausalLM\"], \"model_type\": \"gemma3_text\", \"head_dim\": 24,"
    " \"hidden_size\": 72, \"intermediate_size\": 100, \"num_attention_heads\": 3, \"num_hidden_layers\": 7,"
    " \"num_key_value_heads\": 1, \"vocab_size\": 1001, \"sliding_window\": 16, \"sliding_window_pattern\": "
    "3,"
    " \"max_position_embeddings\": 4096, \"tie_word_embeddings\": true}";

static int parse(ModelConfig *c, const char *json) {
    Error err = {{0}};
    if (config_parse(c, json, &err) != 0) {
        test_fail(__FILE__, __LINE__, "config_parse: %s", err.message);
        return -1;
    }
    return 0;
}

/* Every region: aligned, its slices inside it, regions one after the other
 * without overlap, all inside the allocation, the groups adding up. */
static void check_layout(const DevicePlan *p) {
    size_t end = 0, groups = 0;
    for (int i = 0; i < REGION_COUNT; i++) {
        const DeviceRegion *r = &p->region[i];
        CHECK_MSG(r->name != NULL, "region %d has no name", i);
        CHECK_MSG(r->offset % DEVICE_PLAN_ALIGN == 0, "%s at offset %zu", r->name, r->offset);
        CHECK_MSG(r->stride % DEVICE_PLAN_ALIGN == 0, "%s stride %zu", r->name, r->stride);
        CHECK_MSG(r->stride >= r->bytes_each && r->stride - r->bytes_each < DEVICE_PLAN_ALIGN,
                  "%s: stride %zu for %zu bytes", r->name, r->stride, r->bytes_each);
        CHECK_MSG(r->bytes == r->count * r->stride, "%s: %zu bytes for %zu slices", r->name, r->bytes,
                  r->count);
        CHECK_MSG(r->offset >= end, "%s at %zu overlaps the region before (ends at %zu)", r->name, r->offset,
                  end);
        end = r->offset + r->bytes;
        CHECK_MSG(end <= p->total, "%s ends at %zu, past the allocation (%zu)", r->name, end, p->total);
        for (size_t s = 0; s < r->count; s++) {
            char *base = (char *)(uintptr_t)4096; /* a fake, aligned base address */
            char *at = device_plan_slice(p, base, (DeviceRegionId)i, s);
            CHECK_MSG(at == base + r->offset + s * r->stride, "%s slice %zu", r->name, s);
        }
        CHECK(device_plan_slice(p, NULL, (DeviceRegionId)i, r->count) == NULL);
    }
    for (int g = 0; g < PLAN_GROUP_COUNT; g++)
        groups += p->group_bytes[g];
    CHECK_EQ_INT(groups, p->total);
    CHECK_EQ_INT(end, p->total);
}

TEST(device_plan_4b_regions_aligned_disjoint_inside) {
    ModelConfig c;
    if (parse(&c, config_4b))
        return;
    int contexts[] = {1, 1024, 1025, 32768, 131072};
    for (size_t i = 0; i < sizeof contexts / sizeof contexts[0]; i++) {
        DevicePlanOptions o = {contexts[i], contexts[i] < 4096 ? contexts[i] : 4096, i % 2, (size_t)4 << 20};
        DevicePlan p;
        Error err = {{0}};
        CHECK_MSG(device_plan_build(&p, &c, &o, &err) == 0, "max_context %d: %s", contexts[i], err.message);
        check_layout(&p);
    }
}

TEST(device_plan_small_regions_aligned_disjoint_inside) {
    ModelConfig c;
    if (parse(&c, config_small_text))
        return;
    DevicePlanOptions o = {100, 37, 0, 12345};
    DevicePlan p;
    Error err = {{0}};
    CHECK(device_plan_build(&p, &c, &o, &err) == 0);
    check_layout(&p);
    /* a text-only model: no vision region takes a byte */
    CHECK_EQ_INT(p.group_bytes[PLAN_VISION_ACTIVATIONS], 0);
    CHECK_EQ_INT(p.region[REGION_PATCH_W].count, 0);
    CHECK_EQ_INT(p.region[REGION_V_WQ].bytes, 0);
    /* 7 layers, every 3rd global: 2 full, 5 ring (window 16 < 100) */
    CHECK_EQ_INT(p.n_full_layers, 2);
    CHECK_EQ_INT(p.n_ring_layers, 5);
    CHECK_EQ_INT(p.region[REGION_KV_FULL].count, 4);
    CHECK_EQ_INT(p.region[REGION_KV_RING].bytes_each, 16 * 24 * 2);
}

/* MedGemma 4B on an L4 (cuBLASLt workspace 4 MiB), max_context = max_prefill = 32768
 * as the engine opens it. Figures by hand from the published shapes:
 *  text weights, elements: per layer q, k, v (2048 + 1024 + 1024) x 2560 = 10,485,760; o 2560 x
 *    2048 = 5,242,880; gate, up 2 x 10240 x 2560 = 52,428,800; down 2560 x 10240 = 26,214,400; norms
 *    4 x 2560 + 2 x 256 = 10,752: 94,382,592 x 34 = 3,209,008,128; embedding 262208 x 2560
 *    = 671,252,480; final norm 2560: 3,880,263,168 (tied head).
 *  vision + projector: per layer q, k, v 3,981,312 + biases 3456 + o 1,327,104 + 1152 +
 *    fc1 4,958,208 + 4304 + fc2 4,958,208 + 1152 + 4 norms 4608 = 15,239,504 x 27 =
 *    411,466,608; patch conv 1152 x 592 (588 padded to a multiple of 8) = 681,984 + bias
 *    1152; positions 4096 x 1152 = 4,718,592; post norm 2304; soft norm 1152; projection
 *    1152 x 2560 = 2,949,120: 419,820,912.
 *  bf16: 2 x 4,300,084,080 = 8,600,168,160 bytes, + 96 bytes of alignment after each
 *    of the 27 fc1 biases (8608 bytes) = 8,600,170,752.
 *  KV cache: 5 global layers (every 6th) x K,V x 32768 x 4 heads x 256 x 2 bytes =
 *    671,088,640; 29 local layers x K,V x 1024 slots x 1024 x 2 = 121,634,816.
 *  text activations (engine/forward.c's): per prefill row x, xn 2 x 5120 + q 4096 + k, v
 *    2 x 2048 + attn 4096 + ids, image block 2 x 4 = 22,536 bytes x 32768 = 738,459,648;
 *    gate, up for 256 rows (the MLP's chunk) 2 x 5,242,880; fp32 logits 1,048,832;
 *    positions+token 256 (aligned); decode scratch 64 splits x 8 heads x 258 x 4 =
 *    528,384: 750,522,880.
 *  vision activations: pixels 3 x 896 x 896 x 4 = 9,633,792; patches 4096 x 592 x 2 =
 *    4,849,664; x, xn, q, k, v, attn 6 x 9,437,184; mlp 35,258,368; pooled 589,824;
 *    projected 1,310,720: 108,265,472. */
TEST(device_plan_4b_totals_for_an_l4) {
    ModelConfig c;
    if (parse(&c, config_4b))
        return;
    DevicePlanOptions o = {32768, 32768, 0, device_plan_gemm_workspace(8)};
    DevicePlan p;
    Error err = {{0}};
    CHECK(device_plan_build(&p, &c, &o, &err) == 0);
    CHECK_EQ_INT(p.group_bytes[PLAN_WEIGHTS], 8600170752ull);
    CHECK_EQ_INT(p.group_bytes[PLAN_KV_CACHE], 671088640ull + 121634816ull);
    CHECK_EQ_INT(p.group_bytes[PLAN_TEXT_ACTIVATIONS], 750522880ull);
    CHECK_EQ_INT(p.group_bytes[PLAN_VISION_ACTIVATIONS], 108265472ull);
    CHECK_EQ_INT(p.group_bytes[PLAN_GEMM_WORKSPACE], 4194304ull);
    CHECK_EQ_INT(p.total, 10255876864ull);
    CHECK_EQ_INT(p.n_full_layers, 5);
    CHECK_EQ_INT(p.n_ring_layers, 29);
    /* an L4 has 23,034 MiB; the plan and 256 MiB for the driver fit with room to spare */
    CHECK(p.total + ((size_t)256 << 20) < (size_t)23034 << 20);
    /* an untied head adds its copy of the embedding */
    DevicePlanOptions untied = o;
    untied.separate_lm_head = 1;
    DevicePlan q;
    CHECK(device_plan_build(&q, &c, &untied, &err) == 0);
    CHECK_EQ_INT(q.total - p.total, 262208ull * 2560 * 2);
    /* on Hopper the workspace is 32 MiB */
    CHECK_EQ_INT(device_plan_gemm_workspace(9), (size_t)32 << 20);
}

TEST(device_plan_kv_ring_rule) {
    ModelConfig c;
    if (parse(&c, config_4b))
        return;
    CHECK_EQ_INT(device_plan_kv_ring(&c, 32768, 0), 1024); /* local */
    CHECK_EQ_INT(device_plan_kv_ring(&c, 32768, 5), 0);    /* global: every position */
    CHECK_EQ_INT(device_plan_kv_ring(&c, 1024, 0), 0);     /* the window covers the context */
    CHECK_EQ_INT(device_plan_kv_ring(&c, 1025, 0), 1024);
    DevicePlanOptions o = {1024, 512, 0, 0};
    DevicePlan p;
    Error err = {{0}};
    CHECK(device_plan_build(&p, &c, &o, &err) == 0);
    CHECK_EQ_INT(p.n_full_layers, 34);
    CHECK_EQ_INT(p.region[REGION_KV_RING].bytes, 0);
}

TEST(device_plan_refuses_bad_options_and_overflow) {
    ModelConfig c;
    if (parse(&c, config_4b))
        return;
    DevicePlan p;
    Error err = {{0}};
    DevicePlanOptions bad[] = {{0, 0, 0, 0}, {100, 101, 0, 0}, {100, 0, 0, 0}, {-5, -5, 0, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(device_plan_build(&p, &c, &bad[i], &err) == -1);
        CHECK_STR_CONTAINS(err.message, "bad sizes");
    }
    ModelConfig huge = c;
    huge.text.hidden_size = 2000000000;
    huge.text.intermediate_size = 2000000000;
    DevicePlanOptions o = {32768, 32768, 0, 0};
    CHECK(device_plan_build(&p, &huge, &o, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "overflow");
}

TEST(device_plan_prints_every_region) {
    ModelConfig c;
    if (parse(&c, config_4b))
        return;
    DevicePlanOptions o = {32768, 32768, 0, (size_t)4 << 20};
    DevicePlan p;
    Error err = {{0}};
    CHECK(device_plan_build(&p, &c, &o, &err) == 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    device_plan_print(&p, f, 1);
    fclose(f);
    for (int i = 0; i < REGION_COUNT; i++)
        CHECK_STR_CONTAINS(text, p.region[i].name);
    CHECK_STR_CONTAINS(text, "10255876864");
    free(text);
    char line[400];
    device_plan_summary(&p, line, sizeof line);
    CHECK_STR_CONTAINS(line, "9.55 GiB in one allocation: weights 8.01 GiB, KV cache 756.0 MiB");
}
