/* libFuzzer target over engine/config.c: config.json and generation_config.json
 * as a model directory holds them. The input is split at its first NUL byte:
 * before it config.json, after it generation_config.json (absent when there
 * is no NUL). Both are written into a private scratch directory (in /dev/shm
 * when it exists) and loaded with config_load, the server's own path. A
 * loaded config must be usable: positive sizes, eos ids inside the vocabulary.
 * Build: make fuzz; run: build-fuzz/fuzz_config -max_total_time=300 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/config.h"

static char dir[256];

static void write_file(const char *name, const uint8_t *data, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(data, 1, n, f) != n)
        abort();
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/fuzz_config.XXXXXX", base);
    if (!mkdtemp(dir))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t n_config = nul ? (size_t)(nul - data) : size;
    write_file("config.json", data, n_config);
    char gen_path[512];
    snprintf(gen_path, sizeof gen_path, "%s/generation_config.json", dir);
    if (nul)
        write_file("generation_config.json", nul + 1, size - n_config - 1);
    else
        unlink(gen_path);
    ModelConfig c;
    memset(&c, 0, sizeof c);
    Error err;
    if (config_load(&c, dir, &err) != 0) {
        if (!memchr(err.message, 0, sizeof err.message) || !err.message[0])
            __builtin_trap();
        return 0;
    }
    if (c.text.vocab_size <= 0 || c.text.hidden_size <= 0 || c.text.num_layers <= 0 ||
        c.text.num_layers > CONFIG_MAX_LAYERS || c.n_eos_ids < 0 || c.n_eos_ids > 8)
        __builtin_trap();
    for (int i = 0; i < c.n_eos_ids; i++)
        if (c.eos_ids[i] < 0)
            __builtin_trap();
    return 0;
}
