/* engine/config + engine/weights: both config forms, defaults, layer types,
 * both key layouts, dtype conversion, and errors that name what is wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "engine/safetensors.h"
#include "engine/synth_model.h"
#include "engine/weights.h"
#include "tests/unit/test.h"

TEST(config_old_form_medgemma) {
    const char *json =
        "{\"model_type\":\"gemma3\",\"mm_tokens_per_image\":256,\"eos_token_id\":[1,106],"
        "\"text_config\":{\"hidden_size\":2560,\"intermediate_size\":10240,\"num_hidden_layers\":34,"
        "\"sliding_window\":1024,\"rope_scaling\":{\"factor\":8.0,\"rope_type\":\"linear\"},"
        "\"model_type\":\"gemma3_text\"},"
        "\"vision_config\":{\"hidden_size\":1152,\"image_size\":896,\"intermediate_size\":4304,"
        "\"num_attention_heads\":16,\"num_hidden_layers\":27,\"patch_size\":14}}";
    ModelConfig c;
    Error err;
    CHECK_MSG(config_parse(&c, json, &err) == 0, "%s", err.message);
    CHECK(c.has_vision);
    CHECK_EQ_INT(c.text.num_heads, 8); /* transformers default */
    CHECK_EQ_INT(c.text.num_kv_heads, 4);
    CHECK_EQ_INT(c.text.head_dim, 256);
    CHECK_EQ_INT(c.text.vocab_size, 262208);
    CHECK_NEAR(c.text.rope_scale_global, 8.0, 0);
    CHECK_NEAR(c.text.rope_theta_global, 1e6, 0);
    CHECK_NEAR(c.text.rope_theta_local, 1e4, 0);
    CHECK_NEAR(c.text.rope_scale_local, 1.0, 0);
    CHECK_NEAR(c.text.query_pre_attn_scalar, 256, 0);
    for (int i = 0; i < 34; i++)
        CHECK_EQ_INT(c.text.layer_is_global[i], i % 6 == 5);
    CHECK_EQ_INT(c.image_token_id, 262144);
    CHECK_EQ_INT(c.vision.num_layers, 27);
    CHECK_EQ_INT(c.n_eos_ids, 2);
}

TEST(config_new_form_and_layer_types) {
    const char *json = "{\"model_type\":\"gemma3\",\"image_token_id\":99,\"mm_tokens_per_image\":16,"
                       "\"text_config\":{\"num_hidden_layers\":3,\"layer_types\":[\"full_attention\","
                       "\"sliding_attention\",\"full_attention\"],\"rope_parameters\":{\"full_attention\":"
                       "{\"rope_type\":\"linear\",\"factor\":4,\"rope_theta\":5000},\"sliding_attention\":"
                       "{\"rope_type\":\"default\",\"rope_theta\":100}}},"
                       "\"vision_config\":{\"image_size\":64,\"patch_size\":8,\"hidden_size\":32,\"num_"
                       "attention_heads\":2}}";
    ModelConfig c;
    Error err;
    CHECK_MSG(config_parse(&c, json, &err) == 0, "%s", err.message);
    CHECK_EQ_INT(c.text.layer_is_global[0], 1);
    CHECK_EQ_INT(c.text.layer_is_global[1], 0);
    CHECK_EQ_INT(c.text.layer_is_global[2], 1);
    CHECK_NEAR(c.text.rope_theta_global, 5000, 0);
    CHECK_NEAR(c.text.rope_scale_global, 4, 0);
    CHECK_NEAR(c.text.rope_theta_local, 100, 0);
    CHECK_EQ_INT(c.image_token_id, 99);
}

TEST(config_causal_lm) {
    const char *json = "{\"model_type\":\"gemma3_text\",\"hidden_size\":640,\"num_hidden_layers\":18,"
                       "\"num_attention_heads\":4,\"num_key_value_heads\":1,\"vocab_size\":262144,"
                       "\"rope_theta\":1000000,\"rope_local_base_freq\":10000,\"rope_scaling\":null,"
                       "\"sliding_window\":512,\"eos_token_id\":1}";
    ModelConfig c;
    Error err;
    CHECK_MSG(config_parse(&c, json, &err) == 0, "%s", err.message);
    CHECK(!c.has_vision);
    CHECK_EQ_INT(c.text.hidden_size, 640);
    CHECK_NEAR(c.text.rope_scale_global, 1, 0);
    CHECK_EQ_INT(c.text.layer_is_global[5], 1);
    CHECK_EQ_INT(c.text.layer_is_global[4], 0);
}

TEST(config_errors_name_the_field) {
    ModelConfig c;
    Error err;
    CHECK(config_parse(&c, "{not json", &err) == -1);
    CHECK_STR_CONTAINS(err.message, "not well-formed JSON");
    CHECK(config_parse(&c, "{\"model_type\":\"llama\"}", &err) == -1);
    CHECK_STR_CONTAINS(err.message, "model_type \"llama\"");
    CHECK(config_parse(&c, "{\"model_type\":\"gemma3_text\",\"hidden_size\":\"big\"}", &err) == -1);
    CHECK_STR_CONTAINS(err.message, "\"hidden_size\" must be an integer");
    CHECK(config_parse(&c,
                       "{\"model_type\":\"gemma3_text\",\"num_attention_heads\":3,\"num_key_value_heads\":2}",
                       &err) == -1);
    CHECK_STR_CONTAINS(err.message, "not a multiple of num_key_value_heads");
    CHECK(config_parse(&c, "{\"model_type\":\"gemma3_text\",\"rope_scaling\":{\"rope_type\":\"yarn\"}}",
                       &err) == -1);
    CHECK_STR_CONTAINS(err.message, "\"yarn\" is not supported");
    CHECK(config_parse(
              &c, "{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":2,\"layer_types\":[\"x\",\"y\"]}",
              &err) == -1);
    CHECK_STR_CONTAINS(err.message, "layer_types[0]");
    CHECK(config_load(&c, "/nonexistent", &err) == -1);
    CHECK_STR_CONTAINS(err.message, "config.json");
}

/* Writes a synth-model preset into the scratch dir and loads it back. */
static void load_synth(const char *preset, int old_layout) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s-%d", test_tmpdir(), preset, old_layout);
    SynthOptions o = {.preset = preset, .out_dir = dir, .seed = 1, .old_layout = old_layout, .n_threads = 2};
    Error err;
    CHECK_MSG(synth_model_write(&o, &err) == 0, "%s", err.message);
    ModelConfig c;
    CHECK_MSG(config_load(&c, dir, &err) == 0, "%s", err.message);
    Checkpoint *ck = NULL;
    CHECK_MSG(checkpoint_open(&ck, dir, &err) == 0, "%s", err.message);
    if (!ck)
        return;
    ModelWeights w;
    CHECK_MSG(weights_load(&w, &c, ck, &err) == 0, "%s", err.message);
    CHECK(w.embed && w.lm_head == w.embed && w.final_norm && w.layers);
    if (!w.layers)
        return;
    CHECK(w.layers[c.text.num_layers - 1].down_proj != NULL);
    if (c.has_vision)
        CHECK(w.mm_proj && w.vision_layers && w.vision_layers[c.vision.num_layers - 1].fc2_b);
    weights_free(&w, &c);
    checkpoint_close(ck);
}

TEST(weights_load_both_layouts_of_synth_model) {
    load_synth("tiny", 0);
    load_synth("tiny", 1);
}

/* Copies a tiny checkpoint while changing one tensor (rename, reshape, F32). */
static int rewrite_one(const char *src_dir, const char *dst_dir, const char *victim, const char *new_name,
                       int to_f32, int64_t new_dim0, Error *err) {
    Checkpoint *ck = NULL;
    if (checkpoint_open(&ck, src_dir, err) != 0)
        return -1;
    size_t n = checkpoint_count(ck);
    TensorSpec *specs = calloc(n, sizeof *specs);
    for (size_t i = 0; i < n; i++) {
        const TensorInfo *t = checkpoint_tensor(ck, i);
        specs[i] = (TensorSpec){t->name, t->dtype, t->n_dims, {0}};
        memcpy(specs[i].shape, t->shape, sizeof t->shape);
        if (!strcmp(t->name, victim)) {
            if (new_name)
                specs[i].name = new_name;
            if (to_f32)
                specs[i].dtype = DTYPE_F32;
            if (new_dim0)
                specs[i].shape[0] = new_dim0;
        }
    }
    char *header;
    size_t header_len, data_bytes;
    safetensors_build_header(specs, n, &header, &header_len, &data_bytes, err);
    char path[600];
    snprintf(path, sizeof path, "mkdir -p %s && cp %s/config.json %s/", dst_dir, src_dir, dst_dir);
    CHECK(system(path) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dst_dir);
    FILE *f = fopen(path, "wb");
    for (int b = 0; b < 8; b++)
        fputc((int)(((uint64_t)header_len >> (8 * b)) & 0xff), f);
    fwrite(header, 1, header_len, f);
    for (size_t i = 0; i < n; i++) {
        const TensorInfo *t = checkpoint_tensor(ck, i);
        size_t numel = 1;
        for (int d = 0; d < specs[i].n_dims; d++)
            numel *= (size_t)specs[i].shape[d];
        const uint16_t *src = t->data;
        for (size_t e = 0; e < numel; e++) {
            uint16_t v = e < (size_t)t->n_elements ? src[e] : 0;
            if (specs[i].dtype == DTYPE_F32) {
                float x = bf16_to_f32(v);
                fwrite(&x, 4, 1, f);
            } else {
                fwrite(&v, 2, 1, f);
            }
        }
    }
    fclose(f);
    free(header);
    free(specs);
    checkpoint_close(ck);
    return 0;
}

TEST(weights_convert_f32_and_report_missing_or_misshaped) {
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/src", test_tmpdir());
    SynthOptions o = {.preset = "tiny", .out_dir = src, .seed = 3, .old_layout = 0, .n_threads = 2};
    Error err;
    CHECK_MSG(synth_model_write(&o, &err) == 0, "%s", err.message);
    ModelConfig c;
    config_load(&c, src, &err);
    const char *norm = "model.language_model.layers.2.post_attention_layernorm.weight";

    /* F32 tensor: converted to bf16 exactly (values were bf16) */
    snprintf(dst, sizeof dst, "%s/f32", test_tmpdir());
    CHECK(rewrite_one(src, dst, norm, NULL, 1, 0, &err) == 0);
    Checkpoint *a = NULL, *b = NULL;
    checkpoint_open(&a, src, &err);
    checkpoint_open(&b, dst, &err);
    ModelWeights wa, wb;
    CHECK_MSG(weights_load(&wa, &c, a, &err) == 0, "%s", err.message);
    CHECK_MSG(weights_load(&wb, &c, b, &err) == 0, "%s", err.message);
    CHECK(wb.layers[2].post_attn_norm != wa.layers[2].post_attn_norm);
    CHECK(memcmp(wa.layers[2].post_attn_norm, wb.layers[2].post_attn_norm, 64 * 2) == 0);
    weights_free(&wa, &c);
    weights_free(&wb, &c);
    checkpoint_close(a);
    checkpoint_close(b);

    /* missing tensor */
    snprintf(dst, sizeof dst, "%s/missing", test_tmpdir());
    CHECK(rewrite_one(src, dst, norm, "renamed.weight", 0, 0, &err) == 0);
    checkpoint_open(&b, dst, &err);
    CHECK(weights_load(&wb, &c, b, &err) == -1);
    CHECK_STR_CONTAINS(err.message,
                       "'model.language_model.layers.2.post_attention_layernorm.weight' is missing");
    checkpoint_close(b);

    /* wrong shape */
    snprintf(dst, sizeof dst, "%s/shape", test_tmpdir());
    CHECK(rewrite_one(src, dst, norm, NULL, 0, 63, &err) == 0);
    checkpoint_open(&b, dst, &err);
    CHECK(weights_load(&wb, &c, b, &err) == -1);
    CHECK_STR_CONTAINS(err.message, "has shape [63], the config implies [64]");
    checkpoint_close(b);
}

/* Every committed transformers golden (both key layouts, sharded, F32, causal LM) loads. */
TEST(weights_load_every_golden_checkpoint) {
    const char *cases[] = {"text_long", "one_image", "two_images", "causal_lm", "old_layout", "bf16_scale"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tests/fixtures/golden/%s", cases[i]);
        ModelConfig c;
        Checkpoint *ck = NULL;
        ModelWeights w;
        Error err;
        CHECK_MSG(config_load(&c, dir, &err) == 0, "%s: %s", cases[i], err.message);
        CHECK_MSG(checkpoint_open(&ck, dir, &err) == 0, "%s: %s", cases[i], err.message);
        if (!ck)
            continue;
        CHECK_MSG(weights_load(&w, &c, ck, &err) == 0, "%s: %s", cases[i], err.message);
        if (c.has_vision)
            CHECK_MSG(w.patch_w != NULL, "%s: no vision tower", cases[i]);
        weights_free(&w, &c);
        checkpoint_close(ck);
    }
}
