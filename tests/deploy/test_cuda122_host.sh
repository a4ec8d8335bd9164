#!/usr/bin/env bash
# The image must run on Cloud Run's L4 driver (535 = CUDA 12.2), so the host
# code may use only what CUDA 12.2's runtime and cuBLASLt offer. Without the
# 12.2 toolkit here, this checks what it can with the real 12.2 headers and
# libraries (tests/deploy/fetch_cuda122.sh caches them):
#   - engine/cuda/*.c compile against the 12.2 headers, no implicit declarations;
#   - build/medgemma links against libcudart.so.12 + libcublasLt.so.12 (12.2),
#     with the kernels' objects from the local nvcc, and then starts.
# The kernels themselves are compiled by the local nvcc, not 12.2's: nvcc 12.2
# runs only in the Docker build.
# Prints "ok NAME" / "FAIL NAME: why" / "skip NAME: why"; exits 1 on a failure.
set -u
cd "${REPO_ROOT:-$(dirname "$0")/../..}" || exit 1
BUILD="${BUILD:-build}"
cache="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}/cuda-12.2"

if [ ! -f "$cache/ok" ]; then
    for t in host_code_compiles_against_cuda_12_2 links_and_starts_with_cuda_12_2_libs; do
        echo "skip $t: CUDA 12.2 headers/libraries not cached; run bash tests/deploy/fetch_cuda122.sh (~420 MB from PyPI)"
    done
    exit 0
fi
if ! ls "$BUILD"/obj/kernels/cuda/*.o >/dev/null 2>&1 || [ ! -f "$BUILD/libmedgemma.a" ]; then
    for t in host_code_compiles_against_cuda_12_2 links_and_starts_with_cuda_12_2_libs; do
        echo "skip $t: $BUILD has no CUDA objects (make without nvcc, or NO_CUDA)"
    done
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=0

# 1. compile the host CUDA code against the 12.2 headers
why=""
for f in engine/cuda/*.c; do
    [ -e "$f" ] || continue
    o="$tmp/$(echo "$f" | tr / _).o"
    if ! gcc -std=c11 -O0 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -DMEDGEMMA_CUDA=1 -I. -I"$cache/include" -pthread \
        -Werror=implicit-function-declaration -Werror=int-conversion -c "$f" -o "$o" 2>"$tmp/cc.err"; then
        why+="${why:+; }$f: $(grep -m2 error "$tmp/cc.err" | tr '\n' ' ')"
    fi
done
if [ -z "$why" ]; then echo "ok host_code_compiles_against_cuda_12_2"; else
    echo "FAIL host_code_compiles_against_cuda_12_2: $why"
    failed=1
fi

# 2. link build/medgemma's objects against the 12.2 libraries; the 12.2-compiled
#    host objects come first, so the archive's own copies are not pulled in.
if [ "$failed" = 0 ]; then
    if gcc -pthread "$BUILD"/obj/cli/*.o "$tmp"/*.o "$BUILD/libmedgemma.a" -L"$cache/lib" -Wl,-rpath,"$cache/lib" \
        -lcublasLt -lcudart -lstdc++ -lh2o-evloop -lssl -lcrypto -lz -lcjson -lspng -lturbojpeg -lcurl -lm -ldl \
        -o "$tmp/medgemma-cuda122" 2>"$tmp/ld.err"; then
        libs="$(ldd "$tmp/medgemma-cuda122")"
        if [[ "$libs" != *"libcudart.so.12 => $cache/lib/"* || "$libs" != *"libcublasLt.so.12 => $cache/lib/"* ]]; then
            echo "FAIL links_and_starts_with_cuda_12_2_libs: not bound to the 12.2 libraries: $(grep -E 'cudart|cublas' <<<"$libs" | tr '\n' ' ')"
            failed=1
        elif ! "$tmp/medgemma-cuda122" --help >/dev/null 2>"$tmp/run.err"; then
            echo "FAIL links_and_starts_with_cuda_12_2_libs: --help failed: $(head -c 300 "$tmp/run.err")"
            failed=1
        else
            echo "ok links_and_starts_with_cuda_12_2_libs"
        fi
    else
        echo "FAIL links_and_starts_with_cuda_12_2_libs: $(grep -m3 -E 'undefined|error' "$tmp/ld.err" | tr '\n' ' ' | head -c 400)"
        failed=1
    fi
else
    echo "skip links_and_starts_with_cuda_12_2_libs: the host code did not compile against 12.2"
fi
exit "$failed"
