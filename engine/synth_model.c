/* synth-model: writes a random-weight checkpoint of a preset; see synth_model.h.
 *
 * Values are uniform in +-scale, scale ~ 1/sqrt(fan_in), so activations stay
 * in a sane range through the whole network; norm weights (stored as scale-1)
 * are small. Generation and writing are split over threads in 8 MiB chunks
 * (pwrite at fixed offsets), so 8.6 GB takes seconds on many cores. */
#include "engine/synth_model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/safetensors.h"
#include "util/bf16.h"

typedef struct {
    const char *name;
    int text_hidden, text_inter, text_layers, heads, kv_heads, head_dim, vocab, window, max_pos;
    float query_scalar;
    int has_vision;
    int vis_hidden, vis_inter, vis_layers, vis_heads, patch, image, mm_tokens;
    int old_layout_default;
    size_t shard_bytes; /* split into shards past this size */
} Preset;

static const Preset presets[] = {
    /* A small multimodal model with the real vocabulary, for fast tests. */
    {"tiny", 64, 128, 6, 2, 1, 32, 262208, 64, 131072, 32, 1, 32, 64, 1, 2, 14, 224, 64, 0, (size_t)1 << 40},
    /* google/medgemma-1.5-4b-it */
    {"medgemma-4b", 2560, 10240, 34, 8,  4,   256, 262208, 1024,           131072, 256, 1,
     1152,          4304, 27,    16, 14, 896, 256, 1,      (size_t)5 << 30},
    /* google/gemma-3-270m (text only) */
    {"gemma3-270m",  640, 2048, 18, 4, 1, 256, 262144, 512, 32768, 256, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     (size_t)1 << 40},
};

typedef struct {
    char name[160];
    int n_dims;
    int64_t shape[4];
    float scale;   /* uniform in +-scale */
    int shard;     /* which file */
    size_t offset; /* byte offset of its data in that file */
    size_t bytes;
} SynthTensor;

typedef struct {
    SynthTensor *items;
    int n, cap;
} TensorList;

static void add(TensorList *l, const char *name, int n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                float scale) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        SynthTensor *grown = realloc(l->items, (size_t)l->cap * sizeof *l->items);
        PANIC_IF(!grown, "out of memory");
        l->items = grown;
    }
    SynthTensor *t = &l->items[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    int64_t dims[4] = {d0, d1, d2, d3};
    size_t numel = 1;
    for (int d = 0; d < n_dims; d++) {
        t->shape[d] = dims[d];
        numel *= (size_t)dims[d];
    }
    t->bytes = numel * 2;
    t->scale = scale;
}

#define NORM_SCALE 0.1f

/* One tensor of a layer: its key below "<prefix><group>.<layer>.", at most 2 dims. */
typedef struct {
    const char *key;
    int n_dims;
    int64_t d0, d1;
    float scale;
} LayerTensor;

static void add_layer(TensorList *l, const char *prefix, const char *group, int layer,
                      const LayerTensor *items, size_t n_items) {
    char name[160];
    for (size_t k = 0; k < n_items; k++) {
        snprintf(name, sizeof name, "%s%s.%d.%s", prefix, group, layer, items[k].key);
        add(l, name, items[k].n_dims, items[k].d0, items[k].d1, 0, 0, items[k].scale);
    }
}

static void list_tensors(const Preset *p, int old_layout, TensorList *l) {
    char n[160];
    const char *tp = !p->has_vision ? "model."
                     : old_layout   ? "language_model.model."
                                    : "model.language_model.";
    const char *vp = old_layout ? "vision_tower.vision_model." : "model.vision_tower.vision_model.";
    const char *pp = old_layout ? "multi_modal_projector." : "model.multi_modal_projector.";
    const int64_t H = p->text_hidden, I = p->text_inter, D = p->head_dim;
    const int64_t Q = (int64_t)p->heads * D, KV = (int64_t)p->kv_heads * D;
    const float sh = 1.0f / sqrtf((float)H), si = 1.0f / sqrtf((float)I), sq = 1.0f / sqrtf((float)Q);
    snprintf(n, sizeof n, "%sembed_tokens.weight", tp);
    add(l, n, 2, p->vocab, H, 0, 0, 0.05f);
    for (int i = 0; i < p->text_layers; i++) {
        const LayerTensor items[] = {
            {"input_layernorm.weight", 1, H, 0, NORM_SCALE},
            {"mlp.down_proj.weight", 2, H, I, si},
            {"mlp.gate_proj.weight", 2, I, H, sh},
            {"mlp.up_proj.weight", 2, I, H, sh},
            {"post_attention_layernorm.weight", 1, H, 0, NORM_SCALE},
            {"post_feedforward_layernorm.weight", 1, H, 0, NORM_SCALE},
            {"pre_feedforward_layernorm.weight", 1, H, 0, NORM_SCALE},
            {"self_attn.k_norm.weight", 1, D, 0, NORM_SCALE},
            {"self_attn.k_proj.weight", 2, KV, H, sh},
            {"self_attn.o_proj.weight", 2, H, Q, sq},
            {"self_attn.q_norm.weight", 1, D, 0, NORM_SCALE},
            {"self_attn.q_proj.weight", 2, Q, H, sh},
            {"self_attn.v_proj.weight", 2, KV, H, sh},
        };
        add_layer(l, tp, "layers", i, items, sizeof items / sizeof items[0]);
    }
    snprintf(n, sizeof n, "%snorm.weight", tp);
    add(l, n, 1, H, 0, 0, 0, NORM_SCALE);
    if (!p->has_vision)
        return;

    const int64_t VH = p->vis_hidden, VI = p->vis_inter, P = p->patch, grid = p->image / p->patch;
    const float svh = 1.0f / sqrtf((float)VH), svi = 1.0f / sqrtf((float)VI);
    snprintf(n, sizeof n, "%smm_input_projection_weight", pp);
    add(l, n, 2, VH, H, 0, 0, svh);
    snprintf(n, sizeof n, "%smm_soft_emb_norm.weight", pp);
    add(l, n, 1, VH, 0, 0, 0, NORM_SCALE);
    snprintf(n, sizeof n, "%sembeddings.patch_embedding.bias", vp);
    add(l, n, 1, VH, 0, 0, 0, 0.02f);
    snprintf(n, sizeof n, "%sembeddings.patch_embedding.weight", vp);
    add(l, n, 4, VH, 3, P, P, 1.0f / sqrtf((float)(3 * P * P)));
    snprintf(n, sizeof n, "%sembeddings.position_embedding.weight", vp);
    add(l, n, 2, grid * grid, VH, 0, 0, 0.02f);
    for (int i = 0; i < p->vis_layers; i++) {
        const LayerTensor items[] = {
            {"layer_norm1.bias", 1, VH, 0, 0.02f},
            {"layer_norm1.weight", 1, VH, 0, 1.0f},
            {"layer_norm2.bias", 1, VH, 0, 0.02f},
            {"layer_norm2.weight", 1, VH, 0, 1.0f},
            {"mlp.fc1.bias", 1, VI, 0, 0.02f},
            {"mlp.fc1.weight", 2, VI, VH, svh},
            {"mlp.fc2.bias", 1, VH, 0, 0.02f},
            {"mlp.fc2.weight", 2, VH, VI, svi},
            {"self_attn.k_proj.bias", 1, VH, 0, 0.02f},
            {"self_attn.k_proj.weight", 2, VH, VH, svh},
            {"self_attn.out_proj.bias", 1, VH, 0, 0.02f},
            {"self_attn.out_proj.weight", 2, VH, VH, svh},
            {"self_attn.q_proj.bias", 1, VH, 0, 0.02f},
            {"self_attn.q_proj.weight", 2, VH, VH, svh},
            {"self_attn.v_proj.bias", 1, VH, 0, 0.02f},
            {"self_attn.v_proj.weight", 2, VH, VH, svh},
        };
        add_layer(l, vp, "encoder.layers", i, items, sizeof items / sizeof items[0]);
    }
    snprintf(n, sizeof n, "%spost_layernorm.bias", vp);
    add(l, n, 1, VH, 0, 0, 0, 0.02f);
    snprintf(n, sizeof n, "%spost_layernorm.weight", vp);
    add(l, n, 1, VH, 0, 0, 0, 1.0f);
}

/* ---- random data, written by a pool of threads ---- */

#define CHUNK_ELEMS ((size_t)4 << 20) /* 8 MiB of bf16 */

typedef struct {
    int fd;
    size_t file_offset; /* where this chunk's bytes go */
    size_t n_elems;
    float scale;
    uint64_t stream; /* seed for this chunk */
} Chunk;

typedef struct {
    Chunk *chunks;
    size_t n_chunks;
    size_t next;
    int failed;
    int error_no;
    pthread_mutex_t lock;
} ChunkQueue;

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *write_chunks(void *arg) {
    ChunkQueue *q = arg;
    bf16 *buf = malloc(CHUNK_ELEMS * sizeof *buf);
    for (;;) {
        pthread_mutex_lock(&q->lock);
        size_t i = q->next++;
        int stop = q->failed || !buf;
        pthread_mutex_unlock(&q->lock);
        if (stop || i >= q->n_chunks)
            break;
        const Chunk *c = &q->chunks[i];
        uint64_t state = c->stream;
        for (size_t e = 0; e + 1 < c->n_elems; e += 2) {
            uint64_t r = splitmix64(&state);
            /* two uniforms in [-1, 1) from the high 24 bits of each half */
            float a = (float)((r >> 40) & 0xffffff) * (2.0f / 16777216.0f) - 1.0f;
            float b = (float)((r >> 8) & 0xffffff) * (2.0f / 16777216.0f) - 1.0f;
            buf[e] = f32_to_bf16(a * c->scale);
            buf[e + 1] = f32_to_bf16(b * c->scale);
        }
        if (c->n_elems % 2)
            buf[c->n_elems - 1] = f32_to_bf16(0.0f);
        size_t bytes = c->n_elems * sizeof *buf, done = 0;
        while (done < bytes) {
            ssize_t w = pwrite(c->fd, (const char *)buf + done, bytes - done, (off_t)(c->file_offset + done));
            if (w <= 0) {
                pthread_mutex_lock(&q->lock);
                q->failed = 1;
                q->error_no = w < 0 ? errno : ENOSPC;
                pthread_mutex_unlock(&q->lock);
                break;
            }
            done += (size_t)w;
        }
    }
    if (!buf) {
        pthread_mutex_lock(&q->lock);
        q->failed = 1;
        q->error_no = ENOMEM;
        pthread_mutex_unlock(&q->lock);
    }
    free(buf);
    return NULL;
}

/* ---- files ---- */

static int write_text(const char *dir, const char *name, const char *text, Error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return error_set(err, "%s: cannot create: %s", path, strerror(errno));
    int ok = fputs(text, f) >= 0;
    ok &= fclose(f) == 0;
    return ok ? 0 : error_set(err, "%s: write failed", path);
}

static cJSON *text_config_json(const Preset *p, int new_rope_form) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "hidden_size", p->text_hidden);
    cJSON_AddNumberToObject(t, "intermediate_size", p->text_inter);
    cJSON_AddNumberToObject(t, "num_hidden_layers", p->text_layers);
    cJSON_AddNumberToObject(t, "num_attention_heads", p->heads);
    cJSON_AddNumberToObject(t, "num_key_value_heads", p->kv_heads);
    cJSON_AddNumberToObject(t, "head_dim", p->head_dim);
    cJSON_AddNumberToObject(t, "vocab_size", p->vocab);
    cJSON_AddNumberToObject(t, "sliding_window", p->window);
    cJSON_AddNumberToObject(t, "max_position_embeddings", p->max_pos);
    cJSON_AddNumberToObject(t, "query_pre_attn_scalar", p->query_scalar);
    cJSON_AddNumberToObject(t, "rms_norm_eps", 1e-6);
    cJSON_AddStringToObject(t, "hidden_activation", "gelu_pytorch_tanh");
    cJSON *types = cJSON_AddArrayToObject(t, "layer_types");
    for (int i = 0; i < p->text_layers; i++)
        cJSON_AddItemToArray(types,
                             cJSON_CreateString((i + 1) % 6 == 0 ? "full_attention" : "sliding_attention"));
    if (new_rope_form) {
        cJSON *rp = cJSON_AddObjectToObject(t, "rope_parameters");
        cJSON *full = cJSON_AddObjectToObject(rp, "full_attention");
        cJSON_AddStringToObject(full, "rope_type", p->has_vision ? "linear" : "default");
        if (p->has_vision)
            cJSON_AddNumberToObject(full, "factor", 8.0);
        cJSON_AddNumberToObject(full, "rope_theta", 1e6);
        cJSON *sliding = cJSON_AddObjectToObject(rp, "sliding_attention");
        cJSON_AddStringToObject(sliding, "rope_type", "default");
        cJSON_AddNumberToObject(sliding, "rope_theta", 1e4);
    } else {
        cJSON_AddNumberToObject(t, "rope_theta", 1e6);
        cJSON_AddNumberToObject(t, "rope_local_base_freq", 1e4);
        if (p->has_vision) {
            cJSON *rs = cJSON_AddObjectToObject(t, "rope_scaling");
            cJSON_AddStringToObject(rs, "rope_type", "linear");
            cJSON_AddNumberToObject(rs, "factor", 8.0);
        } else {
            cJSON_AddNullToObject(t, "rope_scaling");
        }
    }
    return t;
}

static int write_configs(const Preset *p, const char *dir, int old_layout, Error *err) {
    cJSON *root;
    if (p->has_vision) {
        root = cJSON_CreateObject();
        cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
        cJSON_AddItemToArray(arch, cJSON_CreateString("Gemma3ForConditionalGeneration"));
        cJSON_AddStringToObject(root, "model_type", "gemma3");
        cJSON_AddNumberToObject(root, "boi_token_index", 255999);
        cJSON_AddNumberToObject(root, "eoi_token_index", 256000);
        cJSON_AddNumberToObject(root, "image_token_index", 262144);
        cJSON_AddNumberToObject(root, "mm_tokens_per_image", p->mm_tokens);
        cJSON *eos = cJSON_AddArrayToObject(root, "eos_token_id");
        cJSON_AddItemToArray(eos, cJSON_CreateNumber(1));
        cJSON_AddItemToArray(eos, cJSON_CreateNumber(106));
        cJSON *text = text_config_json(p, !old_layout);
        cJSON_AddStringToObject(text, "model_type", "gemma3_text");
        cJSON_AddItemToObject(root, "text_config", text);
        cJSON *v = cJSON_AddObjectToObject(root, "vision_config");
        cJSON_AddStringToObject(v, "model_type", "siglip_vision_model");
        cJSON_AddNumberToObject(v, "hidden_size", p->vis_hidden);
        cJSON_AddNumberToObject(v, "intermediate_size", p->vis_inter);
        cJSON_AddNumberToObject(v, "num_hidden_layers", p->vis_layers);
        cJSON_AddNumberToObject(v, "num_attention_heads", p->vis_heads);
        cJSON_AddNumberToObject(v, "patch_size", p->patch);
        cJSON_AddNumberToObject(v, "image_size", p->image);
        cJSON_AddNumberToObject(v, "layer_norm_eps", 1e-6);
        cJSON_AddBoolToObject(v, "vision_use_head", 0);
        cJSON_AddStringToObject(root, "torch_dtype", "bfloat16");
    } else {
        root = text_config_json(p, 0);
        cJSON *arch = cJSON_CreateArray();
        cJSON_AddItemToArray(arch, cJSON_CreateString("Gemma3ForCausalLM"));
        cJSON_AddItemToObject(root, "architectures", arch);
        cJSON_AddStringToObject(root, "model_type", "gemma3_text");
        cJSON_AddNumberToObject(root, "bos_token_id", 2);
        cJSON_AddNumberToObject(root, "eos_token_id", 1);
        cJSON_AddNumberToObject(root, "pad_token_id", 0);
        cJSON_AddStringToObject(root, "torch_dtype", "bfloat16");
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    int rc = write_text(dir, "config.json", text, err);
    free(text);
    if (rc != 0)
        return -1;
    return write_text(dir, "generation_config.json",
                      "{\n  \"bos_token_id\": 2,\n  \"eos_token_id\": [1, 106],\n  \"pad_token_id\": 0\n}\n",
                      err);
}

/* Finds the vendored tokenizer: next to the binary's repo, or the working directory. */
static int find_assets(char *out, size_t len) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *env = getenv("MEDGEMMA_ASSETS");
    if (env) {
        snprintf(out, len, "%s", env);
        return 0;
    }
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = 0;
        const char *candidates[] = {"%s/../assets/gemma3-tokenizer", "%s/../share/medgemma/gemma3-tokenizer"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(out, len, candidates[i], exe);
            char probe[4200];
            snprintf(probe, sizeof probe, "%s/tokenizer_config.json", out);
            if (access(probe, R_OK) == 0)
                return 0;
        }
    }
    snprintf(out, len, "assets/gemma3-tokenizer");
    return 0;
}

static int copy_tokenizer(const char *assets, const char *dir, Error *err) {
    char cmd[9000], src[4200];
    snprintf(src, sizeof src, "%s/tokenizer.json", assets);
    if (access(src, R_OK) == 0)
        snprintf(cmd, sizeof cmd, "cp '%s/tokenizer.json' '%s/tokenizer.json'", assets, dir);
    else
        snprintf(cmd, sizeof cmd, "xz -dc '%s/tokenizer.json.xz' > '%s/tokenizer.json'", assets, dir);
    if (strchr(assets, '\'') || strchr(dir, '\''))
        return error_set(err, "paths with a single quote are not supported: %s, %s", assets, dir);
    if (system(cmd) != 0)
        return error_set(err, "cannot unpack the tokenizer from %s (is xz installed? --assets DIR)", assets);
    snprintf(cmd, sizeof cmd, "cp '%s/tokenizer_config.json' '%s/tokenizer_config.json'", assets, dir);
    if (system(cmd) != 0)
        return error_set(err, "cannot copy %s/tokenizer_config.json", assets);
    return 0;
}

/* Writes shard files: headers first, then random data through the pool. */
static int write_shards(const Preset *p, const SynthOptions *o, TensorList *l, Error *err) {
    /* assign tensors to shards in order, closing a shard past shard_bytes */
    int n_shards = 1;
    size_t in_shard = 0;
    for (int i = 0; i < l->n; i++) {
        if (in_shard > 0 && in_shard + l->items[i].bytes > p->shard_bytes) {
            n_shards++;
            in_shard = 0;
        }
        l->items[i].shard = n_shards - 1;
        in_shard += l->items[i].bytes;
    }
    int *fds = calloc((size_t)n_shards, sizeof *fds);
    Chunk *chunks = NULL;
    size_t n_chunks = 0, cap_chunks = 0;
    int rc = 0;
    cJSON *index = cJSON_CreateObject();
    cJSON *weight_map = NULL;
    size_t total_bytes = 0;
    for (int s = 0; s < n_shards && rc == 0; s++) {
        char file[128], path[4096];
        if (n_shards == 1)
            snprintf(file, sizeof file, "model.safetensors");
        else
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        snprintf(path, sizeof path, "%s/%s", o->out_dir, file);
        TensorSpec *specs = calloc((size_t)l->n, sizeof *specs);
        SynthTensor **members =
            calloc((size_t)l->n, sizeof *members); // NOLINT(bugprone-sizeof-expression): an array of pointers
        PANIC_IF(!specs || !members, "out of memory");
        size_t n = 0;
        for (int i = 0; i < l->n; i++) {
            if (l->items[i].shard != s)
                continue;
            specs[n] = (TensorSpec){l->items[i].name, DTYPE_BF16, l->items[i].n_dims, {0}};
            memcpy(specs[n].shape, l->items[i].shape, sizeof l->items[i].shape);
            members[n++] = &l->items[i];
        }
        char *header = NULL;
        size_t header_len = 0, data_bytes = 0;
        rc = safetensors_build_header(specs, n, &header, &header_len, &data_bytes, err);
        free(specs);
        fds[s] = rc == 0 ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        if (rc == 0 && fds[s] < 0)
            rc = error_set(err, "%s: cannot create: %s", path, strerror(errno));
        if (rc == 0) {
            uint8_t len8[8];
            for (int b = 0; b < 8; b++)
                len8[b] = (uint8_t)((uint64_t)header_len >> (8 * b));
            if (pwrite(fds[s], len8, 8, 0) != 8 ||
                pwrite(fds[s], header, header_len, 8) != (ssize_t)header_len ||
                ftruncate(fds[s], (off_t)(8 + header_len + data_bytes)) != 0)
                rc = error_set(err, "%s: write failed: %s", path, strerror(errno));
        }
        free(header);
        size_t offset = 8 + header_len;
        if (n_shards > 1 && !weight_map)
            weight_map = cJSON_AddObjectToObject(index, "weight_map");
        for (size_t k = 0; k < n && rc == 0; k++) {
            /* the header lists tensors in the order given, back to back */
            members[k]->offset = offset;
            offset += members[k]->bytes;
            total_bytes += members[k]->bytes;
            if (weight_map)
                cJSON_AddStringToObject(weight_map, members[k]->name, file);
            size_t elems = members[k]->bytes / 2;
            for (size_t e = 0; e < elems; e += CHUNK_ELEMS) {
                if (n_chunks == cap_chunks) {
                    cap_chunks = cap_chunks ? cap_chunks * 2 : 1024;
                    Chunk *grown = realloc(chunks, cap_chunks * sizeof *chunks);
                    PANIC_IF(!grown, "out of memory");
                    chunks = grown;
                }
                size_t count = elems - e < CHUNK_ELEMS ? elems - e : CHUNK_ELEMS;
                chunks[n_chunks] =
                    (Chunk){fds[s], members[k]->offset + 2 * e, count, members[k]->scale,
                            o->seed * 0x100000001b3ull ^ (uint64_t)(n_chunks + 1) * 0x9e3779b97f4a7c15ull};
                n_chunks++;
            }
        }
        free(members);
    }
    if (rc == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int n_threads = o->n_threads > 0 ? o->n_threads : (int)(cores > 0 ? cores : 1);
        ChunkQueue q = {chunks, n_chunks, 0, 0, 0, PTHREAD_MUTEX_INITIALIZER};
        pthread_t *threads = calloc((size_t)n_threads, sizeof *threads);
        for (int t = 0; t < n_threads; t++)
            pthread_create(&threads[t], NULL, write_chunks, &q);
        for (int t = 0; t < n_threads; t++)
            pthread_join(threads[t], NULL);
        free(threads);
        if (q.failed)
            rc = error_set(err, "%s: writing weights failed: %s", o->out_dir, strerror(q.error_no));
    }
    for (int s = 0; s < n_shards; s++)
        if (fds[s] > 0 && close(fds[s]) != 0 && rc == 0)
            rc = error_set(err, "%s: closing a shard failed: %s", o->out_dir, strerror(errno));
    if (rc == 0 && weight_map) {
        cJSON *meta = cJSON_CreateObject();
        cJSON_AddNumberToObject(meta, "total_size", (double)total_bytes);
        cJSON_AddItemToObject(index, "metadata", meta);
        char *text = cJSON_Print(index);
        rc = write_text(o->out_dir, "model.safetensors.index.json", text, err);
        free(text);
    }
    cJSON_Delete(index);
    free(chunks);
    free(fds);
    return rc;
}

int synth_model_write(const SynthOptions *o, Error *err) {
    const Preset *p = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(presets[i].name, o->preset))
            p = &presets[i];
    if (!p)
        return error_set(err, "unknown preset '%s' (tiny, medgemma-4b, gemma3-270m)", o->preset);
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST)
        return error_set(err, "%s: cannot create directory: %s", o->out_dir, strerror(errno));
    int old_layout = o->old_layout >= 0 ? o->old_layout : p->old_layout_default;

    char assets[4096];
    if (o->assets_dir)
        snprintf(assets, sizeof assets, "%s", o->assets_dir);
    else
        find_assets(assets, sizeof assets);
    if (write_configs(p, o->out_dir, old_layout, err) != 0 || copy_tokenizer(assets, o->out_dir, err) != 0)
        return -1;

    TensorList list = {0};
    list_tensors(p, old_layout, &list);
    int rc = write_shards(p, o, &list, err);
    free(list.items);
    return rc;
}
