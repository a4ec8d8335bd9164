#!/usr/bin/env bash
# Puts NVIDIA's CUDA 12.2 runtime and cuBLASLt (headers + libcudart.so.12 +
# libcublasLt.so.12, the versions the image ships) into
# $MEDGEMMA_CACHE/cuda-12.2, from their PyPI wheels, for
# tests/deploy/test_cuda122_host.sh. Downloads ~420 MB once; keeps ~530 MB.
set -euo pipefail
cache="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}/cuda-12.2"
if [ -f "$cache/ok" ]; then
    echo "already there: $cache"
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps -q -d "$tmp" nvidia-cuda-runtime-cu12==12.2.140 nvidia-cublas-cu12==12.2.5.6
mkdir -p "$tmp/x"
for w in "$tmp"/*.whl; do
    python3 -m zipfile -e "$w" "$tmp/x"
done
rm -rf "$cache"
mkdir -p "$cache/include" "$cache/lib"
cp -r "$tmp/x/nvidia/cuda_runtime/include/." "$tmp/x/nvidia/cublas/include/." "$cache/include/"
cp "$tmp/x/nvidia/cuda_runtime/lib/libcudart.so.12" "$tmp/x/nvidia/cublas/lib/libcublasLt.so.12" "$cache/lib/"
ln -s libcudart.so.12 "$cache/lib/libcudart.so"
ln -s libcublasLt.so.12 "$cache/lib/libcublasLt.so"
touch "$cache/ok"
echo "CUDA 12.2 runtime + cuBLASLt in $cache"
