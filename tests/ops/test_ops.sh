#!/usr/bin/env bash
# The op table's conformance harness (tests/ops/op_harness.c): every op of
# kernels/ops.h on every backend table, against naive references: the CPU tables
# (build/op_harness), and the CUDA table with the real kernels executed on the CPU by
# cudaemu (build/op_harness_emu --cuda; on a GPU tests/gpu/run.sh runs op_harness --cuda).
BUILD="${BUILD:-build}"
rc=0
"$BUILD/op_harness" || rc=1
if [ -x "$BUILD/op_harness_emu" ]; then
    CUDAEMU_SCHEDULE=forward "$BUILD/op_harness_emu" --cuda | grep -v '^ok ops_table_rows' || rc=1
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
else
    echo "FAIL ops_cuda_built: $BUILD/op_harness_emu is missing; run make (tests/gpu/cudaemu/cudaemu.mk)"
    rc=1
fi
exit "$rc"
