/* `medgemma synth-model`: writes a random-weight checkpoint of a preset. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "engine/synth_model.h"

static void usage(FILE *f) {
    fprintf(
        f, "usage: medgemma synth-model --preset tiny|medgemma-4b|gemma3-270m --out DIR [--seed S]\n"
           "                            [--layout old|new] [--assets DIR] [--threads N]\n"
           "Writes config.json, generation_config.json, random bf16 safetensors with the preset's exact\n"
           "tensor names, shapes and dtypes (sharded with an index past 5 GiB), and the Gemma 3 tokenizer.\n"
           "  --layout  key layout of a multimodal preset: old = language_model.model.* (transformers 4.50,\n"
           "            the medgemma-4b default), new = model.language_model.*\n"
           "  --assets  folder with tokenizer.json(.xz) and tokenizer_config.json (default: the repo's\n"
           "            assets/gemma3-tokenizer; env MEDGEMMA_ASSETS)\n");
}

int cmd_synth_model(int argc, char **argv) {
    SynthOptions o = {.preset = NULL, .out_dir = NULL, .seed = 0, .old_layout = -1};
    static const struct option longopts[] = {
        {"preset", required_argument, 0, 'p'}, {"out", required_argument, 0, 'o'},
        {"seed", required_argument, 0, 's'},   {"layout", required_argument, 0, 'l'},
        {"assets", required_argument, 0, 'a'}, {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            o.preset = optarg;
            break;
        case 'o':
            o.out_dir = optarg;
            break;
        case 's':
            o.seed = strtoull(optarg, NULL, 10);
            break;
        case 'l':
            if (strcmp(optarg, "old") != 0 && strcmp(optarg, "new") != 0) {
                fprintf(stderr, "synth-model: --layout must be old or new\n");
                return 2;
            }
            o.old_layout = !strcmp(optarg, "old");
            break;
        case 'a':
            o.assets_dir = optarg;
            break;
        case 't':
            o.n_threads = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!o.preset || !o.out_dir) {
        usage(stderr);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    Error err;
    if (synth_model_write(&o, &err) != 0) {
        fprintf(stderr, "synth-model: %s\n", err.message);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "synth-model: wrote preset %s to %s in %.1f s\n", o.preset, o.out_dir,
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
