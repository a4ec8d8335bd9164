/* build/gpu_tests: the CUDA backend checked on a real GPU (tests/gpu/run.sh).
 *   gpu_tests [--small] [--seed N] [--golden-dir DIR] [kernels|golden|prefix|all, or a comma list] [FILTER]
 * kernels: every kernel against its CPU twin (gpu_kernels.c);
 * golden:  the transformers goldens on the CUDA backend (gpu_golden.c);
 * prefix:  prefix reuse on the CUDA backend, continued vs cold (gpu_prefix.c).
 * Prints "ok NAME ..." / "FAIL NAME: ..." per test and "N passed, N failed" last;
 * exits 1 on any failure, 2 without a usable GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "tests/gpu/gpu_check.h"

int main(int argc, char **argv) {
    const char *what = "all", *golden_dir = "tests/fixtures/golden";
    uint64_t seed = (uint64_t)time(NULL);
    const char *seed_env = getenv("GPU_TEST_SEED");
    if (seed_env)
        seed = strtoull(seed_env, NULL, 10);
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--small")) {
            gpu_small = 1;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--golden-dir") && i + 1 < argc) {
            golden_dir = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: gpu_tests [--small] [--seed N] [--golden-dir DIR] "
                            "[kernels|golden|prefix|all] [FILTER]\n");
            return 2;
        } else if (positional++ == 0) {
            what = argv[i];
        } else {
            gpu_filter = argv[i];
        }
    }
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0) {
        printf("skip gpu_tests: no CUDA device (%s)\n",
               e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return 2;
    }
    struct cudaDeviceProp prop;
    GPU_OK(cudaGetDeviceProperties(&prop, 0));
    printf("# device: %s (compute capability %d.%d), input seed %llu (GPU_TEST_SEED to repeat)\n", prop.name,
           prop.major, prop.minor, (unsigned long long)seed);
    gpu_seed(seed);
    kernels_set_threads(0);
    int all = !strcmp(what, "all");
    if (all || strstr(what, "kernels"))
        gpu_kernel_tests();
    if (all || strstr(what, "golden"))
        gpu_golden_tests(golden_dir);
    if (all || strstr(what, "prefix"))
        gpu_prefix_tests(golden_dir);
    kernels_shutdown();
    printf("%d passed, %d failed\n", gpu_passes(), gpu_failures());
    return gpu_failures() ? 1 : 0;
}
