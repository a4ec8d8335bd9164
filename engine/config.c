/* config.json reading; see config.h. Defaults are transformers' own
 * (Gemma3TextConfig, SiglipVisionConfig, Gemma3Config) so that a field left
 * out of config.json means what it means to transformers. */
#include "engine/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads an integer field into *out when present; fails on a wrong type or range. */
static int read_int(const cJSON *obj, const char *key, int *out, int min, int max, const char *where,
                    Error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble))
        return error_set(err, "config.json: %s\"%s\" must be an integer", where, key);
    if (item->valuedouble < min || item->valuedouble > max)
        return error_set(err, "config.json: %s\"%s\" = %.0f is outside [%d, %d]", where, key,
                         item->valuedouble, min, max);
    *out = (int)item->valuedouble;
    return 0;
}

static int read_float(const cJSON *obj, const char *key, float *out, const char *where, Error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return error_set(err, "config.json: %s\"%s\" must be a number", where, key);
    *out = (float)item->valuedouble;
    return 0;
}

static int read_bool(const cJSON *obj, const char *key, int *out, const char *where, Error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsBool(item))
        return error_set(err, "config.json: %s\"%s\" must be true or false", where, key);
    *out = cJSON_IsTrue(item);
    return 0;
}

/* One rope entry: {"rope_type": "default"|"linear", "factor": f, "rope_theta": t}. */
static int read_rope_entry(const cJSON *entry, float *theta, float *scale, const char *what, Error *err) {
    if (!cJSON_IsObject(entry))
        return error_set(err, "config.json: %s must be an object", what);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(entry, "rope_type");
    if (!type)
        type = cJSON_GetObjectItemCaseSensitive(entry, "type");
    if (type && !cJSON_IsString(type))
        return error_set(err, "config.json: %s.rope_type must be a string", what);
    const char *name = type ? type->valuestring : "default";
    if (!strcmp(name, "linear")) {
        float factor = 1.0f;
        if (read_float(entry, "factor", &factor, what, err) != 0)
            return -1;
        if (!(factor > 0))
            return error_set(err, "config.json: %s.factor must be positive", what);
        *scale = factor;
    } else if (!strcmp(name, "default")) {
        *scale = 1.0f;
    } else {
        return error_set(err, "config.json: %s.rope_type \"%.32s\" is not supported (default or linear)",
                         what, name);
    }
    return read_float(entry, "rope_theta", theta, what, err);
}

static int parse_text(TextConfig *t, const cJSON *obj, const char *where, Error *err) {
    /* transformers' Gemma3TextConfig defaults */
    *t = (TextConfig){
        .hidden_size = 2304,
        .intermediate_size = 9216,
        .num_layers = 26,
        .num_heads = 8,
        .num_kv_heads = 4,
        .head_dim = 256,
        .vocab_size = 262208,
        .sliding_window = 4096,
        .max_position = 131072,
        .rms_norm_eps = 1e-6f,
        .query_pre_attn_scalar = 256,
        .rope_theta_global = 1e6f,
        .rope_theta_local = 1e4f,
        .rope_scale_global = 1.0f,
        .rope_scale_local = 1.0f,
        .tie_word_embeddings = 1,
    };
    const int big = 1 << 30;
    if (read_int(obj, "hidden_size", &t->hidden_size, 1, 1 << 20, where, err) ||
        read_int(obj, "intermediate_size", &t->intermediate_size, 1, 1 << 22, where, err) ||
        read_int(obj, "num_hidden_layers", &t->num_layers, 1, CONFIG_MAX_LAYERS, where, err) ||
        read_int(obj, "num_attention_heads", &t->num_heads, 1, 1024, where, err) ||
        read_int(obj, "num_key_value_heads", &t->num_kv_heads, 1, 1024, where, err) ||
        read_int(obj, "head_dim", &t->head_dim, 2, 4096, where, err) ||
        read_int(obj, "vocab_size", &t->vocab_size, 1, big, where, err) ||
        read_int(obj, "sliding_window", &t->sliding_window, 1, big, where, err) ||
        read_int(obj, "max_position_embeddings", &t->max_position, 1, big, where, err) ||
        read_float(obj, "rms_norm_eps", &t->rms_norm_eps, where, err) ||
        read_float(obj, "query_pre_attn_scalar", &t->query_pre_attn_scalar, where, err) ||
        read_float(obj, "attn_logit_softcapping", &t->attn_logit_softcapping, where, err) ||
        read_float(obj, "final_logit_softcapping", &t->final_logit_softcapping, where, err) ||
        read_bool(obj, "tie_word_embeddings", &t->tie_word_embeddings, where, err))
        return -1;
    if (t->num_heads % t->num_kv_heads != 0)
        return error_set(err,
                         "config.json: %snum_attention_heads %d is not a multiple of num_key_value_heads %d",
                         where, t->num_heads, t->num_kv_heads);
    if (t->head_dim % 2 != 0)
        return error_set(err, "config.json: %shead_dim %d must be even for RoPE", where, t->head_dim);
    if (!(t->query_pre_attn_scalar > 0) || !(t->rms_norm_eps > 0))
        return error_set(err, "config.json: %squery_pre_attn_scalar and rms_norm_eps must be positive",
                         where);

    const cJSON *act = cJSON_GetObjectItemCaseSensitive(obj, "hidden_activation");
    if (act && !cJSON_IsNull(act) &&
        (!cJSON_IsString(act) ||
         (strcmp(act->valuestring, "gelu_pytorch_tanh") != 0 && strcmp(act->valuestring, "gelu_tanh") != 0)))
        return error_set(err, "config.json: %shidden_activation must be \"gelu_pytorch_tanh\"", where);
    int bidirectional = 0;
    if (read_bool(obj, "use_bidirectional_attention", &bidirectional, where, err))
        return -1;
    if (bidirectional)
        return error_set(
            err, "config.json: %suse_bidirectional_attention=true (an embedding model) is not supported",
            where);

    /* Layer types: explicit list, else every `sliding_window_pattern`-th layer is global. */
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(obj, "layer_types");
    if (types && !cJSON_IsNull(types)) {
        if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != t->num_layers)
            return error_set(err, "config.json: %slayer_types must be a list of %d strings", where,
                             t->num_layers);
        for (int i = 0; i < t->num_layers; i++) {
            const cJSON *lt = cJSON_GetArrayItem(types, i);
            if (cJSON_IsString(lt) && !strcmp(lt->valuestring, "full_attention"))
                t->layer_is_global[i] = 1;
            else if (cJSON_IsString(lt) && !strcmp(lt->valuestring, "sliding_attention"))
                t->layer_is_global[i] = 0;
            else
                return error_set(
                    err, "config.json: %slayer_types[%d] must be \"full_attention\" or \"sliding_attention\"",
                    where, i);
        }
    } else {
        int pattern = 6;
        if (read_int(obj, "sliding_window_pattern", &pattern, 1, CONFIG_MAX_LAYERS, where, err))
            return -1;
        for (int i = 0; i < t->num_layers; i++)
            t->layer_is_global[i] = (i + 1) % pattern == 0;
    }

    /* RoPE: old form (rope_theta, rope_local_base_freq, rope_scaling for global layers)
     * or new form (rope_parameters per layer type). */
    if (read_float(obj, "rope_theta", &t->rope_theta_global, where, err) ||
        read_float(obj, "rope_local_base_freq", &t->rope_theta_local, where, err))
        return -1;
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(obj, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling) &&
        read_rope_entry(scaling, &t->rope_theta_global, &t->rope_scale_global, "rope_scaling", err))
        return -1;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(obj, "rope_parameters");
    if (params && !cJSON_IsNull(params)) {
        const cJSON *full = cJSON_GetObjectItemCaseSensitive(params, "full_attention");
        const cJSON *sliding = cJSON_GetObjectItemCaseSensitive(params, "sliding_attention");
        if (full || sliding) {
            if (full && read_rope_entry(full, &t->rope_theta_global, &t->rope_scale_global,
                                        "rope_parameters.full_attention", err))
                return -1;
            if (sliding && read_rope_entry(sliding, &t->rope_theta_local, &t->rope_scale_local,
                                           "rope_parameters.sliding_attention", err))
                return -1;
        } else if (read_rope_entry(params, &t->rope_theta_global, &t->rope_scale_global, "rope_parameters",
                                   err)) {
            return -1;
        }
    }
    if (!(t->rope_theta_global > 0) || !(t->rope_theta_local > 0))
        return error_set(err, "config.json: %srope theta must be positive", where);
    return 0;
}

static int parse_vision(VisionConfig *v, const cJSON *obj, Error *err) {
    /* transformers' SiglipVisionConfig defaults */
    *v = (VisionConfig){
        .hidden_size = 768,
        .intermediate_size = 3072,
        .num_layers = 12,
        .num_heads = 12,
        .patch_size = 16,
        .image_size = 224,
        .num_channels = 3,
        .layer_norm_eps = 1e-6f,
    };
    const char *where = "vision_config.";
    if (read_int(obj, "hidden_size", &v->hidden_size, 1, 1 << 16, where, err) ||
        read_int(obj, "intermediate_size", &v->intermediate_size, 1, 1 << 18, where, err) ||
        read_int(obj, "num_hidden_layers", &v->num_layers, 1, CONFIG_MAX_LAYERS, where, err) ||
        read_int(obj, "num_attention_heads", &v->num_heads, 1, 1024, where, err) ||
        read_int(obj, "patch_size", &v->patch_size, 1, 1024, where, err) ||
        read_int(obj, "image_size", &v->image_size, 1, 8192, where, err) ||
        read_int(obj, "num_channels", &v->num_channels, 1, 4, where, err) ||
        read_float(obj, "layer_norm_eps", &v->layer_norm_eps, where, err))
        return -1;
    if (v->hidden_size % v->num_heads != 0)
        return error_set(
            err, "config.json: vision_config.hidden_size %d is not a multiple of num_attention_heads %d",
            v->hidden_size, v->num_heads);
    if (v->image_size % v->patch_size != 0)
        return error_set(err, "config.json: vision_config.image_size %d is not a multiple of patch_size %d",
                         v->image_size, v->patch_size);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(obj, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu_pytorch_tanh") != 0))
        return error_set(err, "config.json: vision_config.hidden_act must be \"gelu_pytorch_tanh\"");
    return 0;
}

/* eos_token_id may be an int or a list; adds each new id to the config. */
static int add_eos_ids(ModelConfig *c, const cJSON *item, const char *file, Error *err) {
    if (!item || cJSON_IsNull(item))
        return 0;
    const cJSON *list = cJSON_IsArray(item) ? item->child : item;
    for (const cJSON *e = list; e; e = cJSON_IsArray(item) ? e->next : NULL) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (1 << 30))
            return error_set(err, "%s: eos_token_id must be a token id or a list of them", file);
        int id = (int)e->valuedouble;
        int present = 0;
        for (int i = 0; i < c->n_eos_ids; i++)
            present |= c->eos_ids[i] == id;
        if (!present && c->n_eos_ids < (int)(sizeof c->eos_ids / sizeof c->eos_ids[0]))
            c->eos_ids[c->n_eos_ids++] = id;
    }
    return 0;
}

static int read_token_id(const cJSON *root, const char *key, const char *alias, int *out, Error *err) {
    if (read_int(root, key, out, 0, 1 << 30, "", err))
        return -1;
    return read_int(root, alias, out, 0, 1 << 30, "", err);
}

int config_parse(ModelConfig *c, const char *json_text, Error *err) {
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_Parse(json_text);
    if (!root)
        return error_set(err, "config.json: not well-formed JSON");
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        error_set(err, "config.json: not a JSON object");
        goto done;
    }
    const cJSON *model_type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    const char *type = cJSON_IsString(model_type) ? model_type->valuestring : "";
    c->mm_tokens_per_image = 256;
    c->image_token_id = 262144;
    c->boi_token_id = 255999;
    c->eoi_token_id = 256000;
    c->bos_token_id = 2;
    c->pad_token_id = 0;

    if (!strcmp(type, "gemma3") || text) {
        /* Gemma3ForConditionalGeneration */
        if (text && !cJSON_IsObject(text)) {
            error_set(err, "config.json: \"text_config\" must be an object");
            goto done;
        }
        if (parse_text(&c->text, text, "text_config.", err))
            goto done;
        const cJSON *vision = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
        if (vision && !cJSON_IsObject(vision)) {
            error_set(err, "config.json: \"vision_config\" must be an object");
            goto done;
        }
        if (parse_vision(&c->vision, vision, err))
            goto done;
        c->has_vision = 1;
        c->text.tie_word_embeddings = 1;
        if (read_bool(root, "tie_word_embeddings", &c->text.tie_word_embeddings, "", err) ||
            read_int(root, "mm_tokens_per_image", &c->mm_tokens_per_image, 1, 1 << 20, "", err) ||
            read_token_id(root, "image_token_index", "image_token_id", &c->image_token_id, err) ||
            read_token_id(root, "boi_token_index", "boi_token_id", &c->boi_token_id, err) ||
            read_token_id(root, "eoi_token_index", "eoi_token_id", &c->eoi_token_id, err))
            goto done;
        int grid = c->vision.image_size / c->vision.patch_size;
        int side = (int)lround(sqrt((double)c->mm_tokens_per_image));
        if (side * side != c->mm_tokens_per_image || grid % side != 0) {
            error_set(err,
                      "config.json: mm_tokens_per_image %d must be a square whose side divides the %dx%d "
                      "patch grid",
                      c->mm_tokens_per_image, grid, grid);
            goto done;
        }
        if (add_eos_ids(c, cJSON_GetObjectItemCaseSensitive(text, "eos_token_id"), "config.json", err))
            goto done;
    } else if (!strcmp(type, "gemma3_text")) {
        /* Gemma3ForCausalLM: the text fields are at the top level */
        if (parse_text(&c->text, root, "", err))
            goto done;
    } else {
        error_set(
            err,
            "config.json: model_type \"%.40s\" is not supported (expected \"gemma3\" or \"gemma3_text\")",
            type);
        goto done;
    }
    if (read_int(root, "bos_token_id", &c->bos_token_id, 0, 1 << 30, "", err) ||
        read_int(root, "pad_token_id", &c->pad_token_id, 0, 1 << 30, "", err) ||
        add_eos_ids(c, cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"), "config.json", err))
        goto done;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

static char *read_file_text(const char *path, int *missing) {
    FILE *f = fopen(path, "rb");
    *missing = !f && errno == ENOENT;
    if (!f)
        return NULL;
    char *text = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && size < (16L << 20) && fseek(f, 0, SEEK_SET) == 0) {
            text = malloc((size_t)size + 1);
            if (text && fread(text, 1, (size_t)size, f) == (size_t)size) {
                text[size] = 0;
            } else {
                free(text);
                text = NULL;
            }
        }
    }
    fclose(f);
    return text;
}

int config_load(ModelConfig *c, const char *model_dir, Error *err) {
    char path[4096];
    int missing = 0;
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    char *text = read_file_text(path, &missing);
    if (!text)
        return error_set(err, "%s: %s", path,
                         missing ? "missing (is this a Hugging Face model directory?)" : "cannot be read");
    int rc = config_parse(c, text, err);
    free(text);
    if (rc != 0)
        return error_prefix(err, "%s", model_dir);

    /* generation_config.json may add stop ids */
    snprintf(path, sizeof path, "%s/generation_config.json", model_dir);
    text = read_file_text(path, &missing);
    if (text) {
        cJSON *gen = cJSON_Parse(text);
        free(text);
        if (!gen)
            return error_set(err, "%s: not well-formed JSON", path);
        rc = add_eos_ids(c, cJSON_GetObjectItemCaseSensitive(gen, "eos_token_id"), path, err);
        cJSON_Delete(gen);
        if (rc != 0)
            return -1;
    }
    /* Gemma 3 chat turns end with <end_of_turn> (106): always a stop id. */
    int fixed[2] = {1, 106};
    for (int i = 0; i < 2; i++) {
        cJSON *id = cJSON_CreateNumber(fixed[i]);
        if (fixed[i] < c->text.vocab_size)
            add_eos_ids(c, id, "config", NULL);
        cJSON_Delete(id);
    }
    return 0;
}
