/* A loaded model directory: config, checkpoint mapping, weight table, and
 * what follows from them that every backend needs (the embedding scale).
 * The engine owns one; tests open one to drive a backend directly. */
#ifndef ENGINE_MODEL_H
#define ENGINE_MODEL_H

#include "engine/config.h"
#include "engine/safetensors.h"
#include "engine/weights.h"
#include "util/error.h"

typedef struct {
    ModelConfig config;
    Checkpoint *ckpt;
    ModelWeights weights;
    int weights_loaded;
    /* sqrt(text hidden) rounded to the embedding's storage dtype, as
     * transformers computes it (bf16: 50.5 for 2560, not 50.596) */
    float embed_scale;
    DType embed_dtype;
} Model;

int model_open(Model *model, const char *model_dir, Error *err);
void model_close(Model *model);

/* The embedding scale for a hidden size and storage dtype. */
float model_embed_scale(int hidden_size, DType embed_dtype);

#endif
