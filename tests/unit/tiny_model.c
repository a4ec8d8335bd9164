/* The tiny synth checkpoint the engine tests share (test.h: test_tiny_model). */
#include <stdio.h>

#include "engine/synth_model.h"
#include "tests/unit/test.h"

const char *test_tiny_model(void) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/tiny-model", test_tmpdir());
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return dir;
    }
    SynthOptions so = {.preset = "tiny", .out_dir = dir, .seed = 3, .old_layout = -1, .n_threads = 2};
    Error err;
    if (synth_model_write(&so, &err) != 0)
        test_skip("synth-model tiny could not be written: %s", err.message);
    return dir;
}
