#!/usr/bin/env bash
# The long fuzz runs behind tests/fuzz/RESULTS.md: each libFuzzer target for
# FUZZ_LONG_S seconds (default 300), one at a time under `nice`, from its seeds
# (tests/fuzz/corpus/NAME) and dictionary, with ASan/UBSan (make fuzz builds
# them so). Prints one markdown table row per target:
#   | target | runs | seconds | corpus units | result |
# Usage: make fuzz && bash tests/fuzz/run_long.sh [target...]
set -u
cd "$(dirname "$0")/../.."
secs="${FUZZ_LONG_S:-300}"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    for src in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi
mkdir -p build-fuzz/long
status=0
for name in "${targets[@]}"; do
    corpus=build-fuzz/long/corpus-$name
    mkdir -p "$corpus"
    [ -d tests/fuzz/corpus/"$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$corpus"/
    dict=()
    [ -f tests/fuzz/"$name".dict ] && dict=(-dict=tests/fuzz/"$name".dict)
    log=build-fuzz/long/$name.log
    start=$SECONDS
    if nice build-fuzz/"$name" "${dict[@]}" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix=build-fuzz/long/"$name"- "$corpus" >"$log" 2>&1; then
        result="clean"
    else
        result="FAILED: $(grep -m1 -E 'ERROR|SUMMARY|deadly' "$log" | cut -c1-120)"
        status=1
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
    units=$(ls "$corpus" | wc -l)
    echo "| $name | ${runs:-?} | $((SECONDS - start)) | $units | $result |"
done
exit $status
