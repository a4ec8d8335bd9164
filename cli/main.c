/* build/medgemma: one program, several commands (API.md "Programs"). Each
 * command lives in its own cli/cmd_*.c file. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"serve", cmd_serve, "the HTTP service"},
    {"generate", cmd_generate, "one request from the command line"},
    {"tokenize", cmd_tokenize, "stdin text -> JSON array of token ids"},
    {"synth-model", cmd_synth_model, "write a random-weight checkpoint of a preset"},
    {"gpu-plan", cmd_gpu_plan, "the CUDA backend's device memory plan for a model (no GPU needed)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: medgemma COMMAND [options]   (COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "medgemma: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
