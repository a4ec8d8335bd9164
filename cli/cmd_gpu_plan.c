/* `medgemma gpu-plan`: the CUDA backend's device memory plan for a model
 * (engine/cuda/device_plan.h), from its config.json alone: what one GPU must
 * hold before the first request, region by region. Needs no GPU. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "engine/config.h"
#include "engine/cuda/device_plan.h"

#define DEFAULT_MAX_CONTEXT 32768 /* the engine's (engine.c) */
#define DEFAULT_RING_EXTRA 1024   /* the engine's with the prefix cache on (MEDGEMMA_PREFIX_RING_EXTRA) */

static void usage(FILE *f) {
    fprintf(f,
            "usage: medgemma gpu-plan --model DIR [--max-context N] [--max-prefill N] [--ring-extra N] [--sm "
            "89|90]\n"
            "                         [--regions]\n"
            "Prints the CUDA backend's device memory plan: one allocation holding the weights, the KV\n"
            "cache, the activations and cuBLASLt's workspace. Reads DIR/config.json only; no GPU needed.\n"
            "  --max-context N  KV cache positions (default min(32768, the model's), as the server)\n"
            "  --max-prefill N  prompt rows the activations hold (default: max-context, as the engine)\n"
            "  --ring-extra N   local layers' ring slots past the window (default 1024, the engine's with\n"
            "                   the prefix cache on; 0 as with MEDGEMMA_PREFIX_CACHE=0)\n"
            "  --sm 89|90       compute capability: 89 = L4 (default), 90 = H100/H200 (bigger workspace)\n"
            "  --regions        every region with its offset and size, not only the groups\n"
            "The lm_head is counted as tied to the embedding when config.json says so.\n");
}

int cmd_gpu_plan(int argc, char **argv) {
    const char *model_dir = NULL;
    long max_context = 0, max_prefill = 0, sm = 89, ring_extra = DEFAULT_RING_EXTRA;
    int all_regions = 0;
    enum { O_MODEL = 1, O_CONTEXT, O_PREFILL, O_SM, O_RING, O_REGIONS, O_HELP };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},
        {"max-context", required_argument, 0, O_CONTEXT},
        {"max-prefill", required_argument, 0, O_PREFILL},
        {"sm", required_argument, 0, O_SM},
        {"ring-extra", required_argument, 0, O_RING},
        {"regions", no_argument, 0, O_REGIONS},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_MODEL:
            model_dir = optarg;
            break;
        case O_RING:
            ring_extra = strtol(optarg, &end, 10);
            if (!*optarg || *end || ring_extra < 0 || ring_extra > 1 << 24) {
                fprintf(stderr, "gpu-plan: --ring-extra wants a number >= 0, got '%s'\n", optarg);
                return 2;
            }
            break;
        case O_CONTEXT:
        case O_PREFILL:
        case O_SM: {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v <= 0 || v > 1 << 24) {
                fprintf(stderr, "gpu-plan: %s wants a positive number, got '%s'\n", argv[optind - 2], optarg);
                return 2;
            }
            *(c == O_CONTEXT ? &max_context : c == O_PREFILL ? &max_prefill : &sm) = v;
            break;
        }
        case O_REGIONS:
            all_regions = 1;
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!model_dir || optind < argc) {
        usage(stderr);
        return 2;
    }
    ModelConfig cfg;
    Error err = {{0}};
    if (config_load(&cfg, model_dir, &err) != 0) {
        fprintf(stderr, "gpu-plan: %s\n", err.message);
        return 1;
    }
    if (max_context == 0)
        max_context =
            cfg.text.max_position < DEFAULT_MAX_CONTEXT ? cfg.text.max_position : DEFAULT_MAX_CONTEXT;
    if (max_prefill == 0)
        max_prefill = max_context;
    if (ring_extra > max_context)
        ring_extra = max_context; /* as the engine */
    DevicePlanOptions o = {(int)max_context, (int)max_prefill, !cfg.text.tie_word_embeddings,
                           device_plan_gemm_workspace((int)(sm / 10)), (int)ring_extra};
    DevicePlan plan;
    if (device_plan_build(&plan, &cfg, &o, &err) != 0) {
        fprintf(stderr, "gpu-plan: %s\n", err.message);
        return 1;
    }
    device_plan_print(&plan, stdout, all_regions);
    return 0;
}
