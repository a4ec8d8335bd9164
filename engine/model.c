/* A loaded model directory (see model.h). */
#include "engine/model.h"

#include <math.h>
#include <string.h>

/* The embedding tensor's name in each key layout (MODEL.md "Checkpoint"). */
static const char *const embed_names[] = {
    "model.language_model.embed_tokens.weight",
    "language_model.model.embed_tokens.weight",
    "model.embed_tokens.weight",
};

/* Rounds to the nearest float16 value (ties to even), for F16 checkpoints. */
static float round_to_f16(float f) {
    if (!(fabsf(f) < 65520.0f))
        return f;
    int e;
    frexpf(f, &e);                         /* f = m * 2^e, 0.5 <= |m| < 1 */
    int bits = e - 1 < -14 ? -24 : e - 11; /* spacing of f16 values near f: 2^bits */
    float q = ldexpf(1.0f, bits);
    return nearbyintf(f / q) * q;
}

float model_embed_scale(int hidden_size, DType embed_dtype) {
    float s = sqrtf((float)hidden_size);
    if (embed_dtype == DTYPE_BF16)
        return round_to_bf16(s);
    if (embed_dtype == DTYPE_F16)
        return round_to_f16(s);
    return s;
}

int model_open(Model *model, const char *model_dir, Error *err) {
    memset(model, 0, sizeof *model);
    if (!model_dir || !*model_dir)
        return error_set(err, "no model directory given");
    if (config_load(&model->config, model_dir, err) != 0)
        return error_prefix(err, "%s", model_dir);
    if (checkpoint_open(&model->ckpt, model_dir, err) != 0) {
        model_close(model);
        return -1;
    }
    if (weights_load(&model->weights, &model->config, model->ckpt, err) != 0) {
        model_close(model);
        return -1;
    }
    model->weights_loaded = 1;
    model->embed_dtype = DTYPE_BF16;
    for (size_t i = 0; i < sizeof embed_names / sizeof embed_names[0]; i++) {
        const TensorInfo *t = checkpoint_find(model->ckpt, embed_names[i]);
        if (t) {
            model->embed_dtype = t->dtype;
            break;
        }
    }
    model->embed_scale = model_embed_scale(model->config.text.hidden_size, model->embed_dtype);
    return 0;
}

void model_close(Model *model) {
    if (model->weights_loaded)
        weights_free(&model->weights, &model->config);
    if (model->ckpt)
        checkpoint_close(model->ckpt);
    memset(model, 0, sizeof *model);
}
