#!/usr/bin/env bash
# The op table's conformance harness (tests/ops/op_harness.c): every op of
# kernels/ops.h on every backend table, against naive references.
BUILD="${BUILD:-build}"
exec "$BUILD/op_harness"
