#!/usr/bin/env bash
# Runs the whole CPU test suite and prints "N passed, N failed, N skipped" last.
#
# Every test program prints one line per test: "ok NAME", "FAIL NAME: why" or
# "skip NAME: why". Programs: build/unit_tests (C, tests/unit/), then every
# tests/*/test_*.sh and tests/*/test_*.py. A program that exits non-zero
# without printing a FAIL line counts as one failure.
#
# Env: BUILD (default build), TEST_FILTER (substring of program paths to run;
# several separated by '|').
set -u
cd "$(dirname "$0")/.."
export BUILD="${BUILD:-build}"
export REPO_ROOT="$PWD"
export MEDGEMMA_CACHE="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}"
log_dir="$BUILD/test-logs"
mkdir -p "$log_dir"

passed=0
failed=0
skipped=0
skip_lines=()
fail_lines=()

run_program() {
    local label="$1"
    shift
    if [ -n "${TEST_FILTER:-}" ]; then
        local f wanted=0
        IFS='|' read -ra filters <<<"$TEST_FILTER"
        for f in "${filters[@]}"; do
            [[ -n "$f" && "$label" == *"$f"* ]] && wanted=1
        done
        [ "$wanted" -eq 1 ] || return
    fi
    local log="$log_dir/$(echo "$label" | tr '/ ' '__').log"
    echo "== $label"
    local start=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    local p f s
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    s=$(grep -c '^skip ' "$log")
    grep -E '^(ok|FAIL|skip) ' "$log" | sed 's/^/   /'
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "   FAIL $label: exited with status $rc without naming a failed test; last lines:"
        tail -n 15 "$log" | sed 's/^/      /'
        fail_lines+=("FAIL $label: exit status $rc")
        f=1
    fi
    while IFS= read -r line; do fail_lines+=("$line"); done < <(grep '^FAIL ' "$log")
    while IFS= read -r line; do skip_lines+=("$line"); done < <(grep '^skip ' "$log")
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
    echo "   ($((SECONDS - start)) s, log: $log)"
}

if [ -x "$BUILD/unit_tests" ]; then
    run_program "unit_tests" "$BUILD/unit_tests"
else
    echo "FAIL: $BUILD/unit_tests is missing; run make first"
    failed=$((failed + 1))
fi

for t in tests/*/test_*.sh tests/*/test_*.py; do
    [ -e "$t" ] || continue
    case "$t" in
    *.sh) run_program "$t" bash "$t" ;;
    *.py) run_program "$t" python3 "$t" ;;
    esac
done

echo
if [ "${#skip_lines[@]}" -gt 0 ]; then
    echo "!! SKIPPED TESTS (each says why):"
    printf '!!   %s\n' "${skip_lines[@]}"
fi
if [ "${#fail_lines[@]}" -gt 0 ]; then
    echo "FAILED TESTS:"
    printf '  %s\n' "${fail_lines[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
