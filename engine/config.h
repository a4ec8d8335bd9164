/* config.json of a Gemma 3 checkpoint: Gemma3ForConditionalGeneration
 * (text_config + vision_config, as MedGemma ships) or text-only
 * Gemma3ForCausalLM (270M, 1B). Missing fields get transformers' defaults.
 * Both rope forms are read: old `rope_scaling` + `rope_theta` /
 * `rope_local_base_freq`, and new `rope_parameters` per layer type. */
#ifndef ENGINE_CONFIG_H
#define ENGINE_CONFIG_H

#include <stdint.h>

#include "util/error.h"

#define CONFIG_MAX_LAYERS 256

typedef struct {
    int hidden_size;       /* 2560 */
    int intermediate_size; /* 10240 */
    int num_layers;        /* 34 */
    int num_heads;         /* 8 */
    int num_kv_heads;      /* 4 */
    int head_dim;          /* 256 */
    int vocab_size;        /* 262208 */
    int sliding_window;    /* 1024 */
    int max_position;      /* 131072 */
    float rms_norm_eps;
    float query_pre_attn_scalar;   /* attention scale = scalar^-0.5 */
    float rope_theta_global;       /* 1e6 */
    float rope_theta_local;        /* 1e4 */
    float rope_scale_global;       /* linear factor (8); inverse freqs divided by it */
    float rope_scale_local;        /* 1 */
    float attn_logit_softcapping;  /* 0 = none */
    float final_logit_softcapping; /* 0 = none */
    uint8_t layer_is_global[CONFIG_MAX_LAYERS];
    int tie_word_embeddings;
} TextConfig;

typedef struct {
    int hidden_size;       /* 1152 */
    int intermediate_size; /* 4304 */
    int num_layers;        /* 27 */
    int num_heads;         /* 16 */
    int patch_size;        /* 14 */
    int image_size;        /* 896 */
    int num_channels;      /* 3 */
    float layer_norm_eps;  /* 1e-6 */
} VisionConfig;

typedef struct {
    int has_vision; /* 0 for Gemma3ForCausalLM */
    TextConfig text;
    VisionConfig vision;
    int mm_tokens_per_image; /* 256 */
    int image_token_id;      /* 262144 */
    int boi_token_id;        /* 255999 */
    int eoi_token_id;        /* 256000 */
    int eos_ids[8];          /* from config / generation_config; always has 1 and 106 */
    int n_eos_ids;
    int bos_token_id;
    int pad_token_id;
} ModelConfig;

/* Reads model_dir/config.json (and generation_config.json when present). */
int config_load(ModelConfig *config, const char *model_dir, Error *err);
/* Parses config.json text; the fuzzable core of config_load. */
int config_parse(ModelConfig *config, const char *json_text, Error *err);

#endif
