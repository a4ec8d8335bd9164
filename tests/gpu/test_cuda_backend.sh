#!/usr/bin/env bash
# The CUDA backend's host code on the fake device (tests/gpu/fake/, built by
# tests/gpu/fake/fake.mk): build/cuda_backend_tests (tests/gpu/backend/test_*.c:
# the one planned allocation at 34 layers against the CPU backend, create's
# errors, sticky and transient request-time errors, the engine's backend
# choice). The server on the same fake device is tests/gpu/test_fake_gpu_server.py.
set -u
cd "${REPO_ROOT:-$(dirname "$0")/../..}" || exit 1
BUILD="${BUILD:-build}"
if [ ! -x "$BUILD/cuda_backend_tests" ]; then
    echo "FAIL cuda_backend_tests_built: $BUILD/cuda_backend_tests is missing; run make"
    exit 1
fi
# One child per test (tests/unit/main.c); the JSON log lines of the backend go with the output.
exec "$BUILD/cuda_backend_tests"
