#!/usr/bin/env bash
# Keeps the libFuzzer targets building and finding nothing in a short run:
# `make fuzz`, then each tests/fuzz/fuzz_*.c target for FUZZ_SMOKE_S seconds
# (default 10), starting from its seeds in tests/fuzz/corpus/NAME (copied into
# a scratch corpus) and its dictionary tests/fuzz/NAME.dict when they exist.
# The long runs (5 minutes each, results in tests/fuzz/RESULTS.md) are manual:
#   make fuzz && bash tests/fuzz/run_long.sh
set -u
cd "$(dirname "$0")/../.."
secs="${FUZZ_SMOKE_S:-10}"
if ! command -v clang >/dev/null; then
    echo "skip fuzz_targets_build: clang is not installed (make deps installs it)"
    exit 0
fi
if ! make -s fuzz >build-fuzz.log 2>&1; then
    echo "FAIL fuzz_targets_build: make fuzz failed: $(tail -n 3 build-fuzz.log | tr '\n' ' ')"
    exit 1
fi
echo "ok fuzz_targets_build"
rm -f build-fuzz.log
failed=0
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    corpus=$(mktemp -d)
    log=$(mktemp)
    [ -d tests/fuzz/corpus/"$name" ] && cp tests/fuzz/corpus/"$name"/* "$corpus"/
    dict=()
    [ -f tests/fuzz/"$name".dict ] && dict=(-dict=tests/fuzz/"$name".dict)
    if build-fuzz/"$name" "${dict[@]}" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 "$corpus" >"$log" 2>&1; then
        runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
        echo "ok $name ($runs runs in ${secs}s)"
    else
        echo "FAIL $name: $(grep -m1 -E 'ERROR|SUMMARY|deadly' "$log" || tail -n 1 "$log")"
        failed=1
    fi
    rm -rf "$corpus" "$log"
done
exit $failed
