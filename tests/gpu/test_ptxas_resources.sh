#!/usr/bin/env bash
# Static resource check of the CUDA kernels (tests/gpu/ptxas_check.py): ptxas's
# registers, spills and shared memory for sm_89 and sm_90 (kept by the nvcc build,
# kernels/cuda/cuda.mk) against the launch sizes the host code uses (logged by the
# CPU emulator running gpu_tests: tests/gpu/test_cudaemu.sh's log when it is newer
# than the program, else a --small run here). Lines "[ptxas:<arch>]"; the table
# goes to $BUILD/gpu-cudaemu/ptxas_table.md (docs/gpu.md keeps a copy).
set -u
cd "${REPO_ROOT:-$(dirname "$0")/../..}" || exit 1
BUILD="${BUILD:-build}"
OUT="$BUILD/gpu-cudaemu"
mkdir -p "$OUT"
if ! ls "$BUILD"/obj/kernels/cuda/*.o >/dev/null 2>&1; then
    echo "skip [ptxas] resources: $BUILD has no CUDA objects (no nvcc, or NO_CUDA=1 as in make test-asan): the kernels' registers, spills and shared memory are NOT checked in this run"
    exit 0
fi
# the report of every kernels/cuda/*.cu (a stale one of a removed file is not read)
reports="" n_found=0 n_cu=0
for cu in kernels/cuda/*.cu; do
    n_cu=$((n_cu + 1))
    report="$BUILD/obj/${cu%.cu}.ptxas.txt"
    if [ -e "$report" ]; then
        reports="$reports $report"
        n_found=$((n_found + 1))
    fi
done
if [ "$n_found" -eq 0 ]; then
    if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
        echo "FAIL [ptxas] reports: nvcc is installed but $BUILD/obj/kernels/cuda/*.ptxas.txt are missing; run make"
        exit 1
    fi
    echo "skip [ptxas] resources: NO NVCC on this machine, so no ptxas report: the kernels' registers, spills and shared memory are NOT checked"
    exit 0
fi
if [ "$n_found" -ne "$n_cu" ]; then
    echo "FAIL [ptxas] reports: $n_found ptxas reports for $n_cu kernels/cuda/*.cu; run make"
    exit 1
fi
launches="$OUT/launches.txt"
if [ ! -s "$launches" ] || [ "$launches" -ot "$BUILD/gpu_tests_emu" ]; then
    launches="$OUT/launches_ptxas.txt"
    rm -f "$launches"
    if ! CUDAEMU_LAUNCH_LOG="$launches" "$BUILD/gpu_tests_emu" --seed 1 --small all >"$OUT/ptxas_launches.log" 2>&1; then
        echo "FAIL [ptxas] launch_sizes: gpu_tests_emu failed while logging the launch sizes; see $OUT/ptxas_launches.log"
        exit 1
    fi
fi
# shellcheck disable=SC2086
exec python3 tests/gpu/ptxas_check.py --launches "$launches" --table "$OUT/ptxas_table.md" $reports
