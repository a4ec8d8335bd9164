/* Random-weight checkpoints with the exact tensor names, shapes and dtypes of
 * a preset (API.md `synth-model`): for tests, and for benchmarks at true size
 * where real weights are not at hand. Writes config.json,
 * generation_config.json, safetensors (sharded with an index when large) and
 * the Gemma 3 tokenizer files. */
#ifndef ENGINE_SYNTH_MODEL_H
#define ENGINE_SYNTH_MODEL_H

#include <stdint.h>

#include "util/error.h"

typedef struct {
    const char *preset;  /* "tiny", "medgemma-4b", "gemma3-270m" */
    const char *out_dir; /* created if missing */
    uint64_t seed;
    const char *assets_dir; /* holds tokenizer.json.xz + tokenizer_config.json; NULL = find it */
    int old_layout; /* -1 = preset's default; 1 = language_model.model.*; 0 = model.language_model.* */
    int n_threads;  /* 0 = all cores */
} SynthOptions;

int synth_model_write(const SynthOptions *options, Error *err);

#endif
