#!/usr/bin/env bash
# Tests deploy.sh without a cloud: fake `gcloud` and `docker` on PATH record
# their argv (one tab-separated line per call), and the tests assert the flags
# deploy.sh passed. Where the real Google Cloud CLI is installed, every flag
# deploy.sh uses is also checked against that CLI's own --help (offline, with an
# empty config dir, so no account or credential is read).
# Prints "ok NAME" / "FAIL NAME: why" / "skip NAME: why"; exits 1 on a failure.
# Helpers are called through want/wantnot, which shellcheck cannot follow:
# shellcheck disable=SC2317
set -u
cd "${REPO_ROOT:-$(dirname "$0")/../..}" || exit 1
repo="$PWD"
real_gcloud="$(command -v gcloud || true)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=0

ok() { echo "ok $1"; }
fail() {
    echo "FAIL $1: $2"
    failed=1
}

# ---- the sandbox: fake tools first, then only the system tools deploy.sh uses
mkdir -p "$tmp/bin" "$tmp/nogcloud" "$tmp/sys" "$tmp/home"
for tool in bash env cat dirname date git; do
    ln -s "$(command -v "$tool")" "$tmp/sys/$tool"
done
cat >"$tmp/bin/gcloud" <<'EOF'
#!/usr/bin/env bash
# Fake gcloud: records argv, answers the few queries deploy.sh makes.
{
    printf 'gcloud'
    printf '\t%s' "$@"
    printf '\n'
} >>"$FAKE_LOG"
case "${1:-} ${2:-}" in
"config get-value") printf '%s\n' "${FAKE_PROJECT:-}" ;;
"secrets describe") [ -z "${FAKE_NO_SECRET:-}" ] || { echo "NOT_FOUND: secret" >&2; exit 1; } ;;
"artifacts repositories") [ "${3:-}" != describe ] || [ -z "${FAKE_NO_REPO:-}" ] || exit 1 ;;
"projects describe") echo 123456789012 ;;
"run deploy") [ -z "${FAKE_DEPLOY_FAILS:-}" ] || { echo "ERROR: Quota exceeded" >&2; exit 1; } ;;
"run services") echo "https://medgemma-test.a.run.app" ;;
esac
exit 0
EOF
cat >"$tmp/bin/docker" <<'EOF'
#!/usr/bin/env bash
{
    printf 'docker'
    printf '\t%s' "$@"
    printf '\n'
} >>"$FAKE_LOG"
exit 0
EOF
chmod +x "$tmp/bin/gcloud" "$tmp/bin/docker"
cp "$tmp/bin/docker" "$tmp/nogcloud/docker"

# run_deploy PATHDIR [VAR=VALUE...] -- ARGS... : runs deploy.sh in a clean env;
# sets $out, $err, $rc, $log (the file of recorded calls).
run_deploy() {
    local pathdir="$1"
    shift
    local vars=()
    while [ "$1" != -- ]; do
        vars+=("$1")
        shift
    done
    shift
    log="$tmp/calls.$RANDOM"
    : >"$log"
    env -i HOME="$tmp/home" PATH="$pathdir:$tmp/sys" FAKE_LOG="$log" "${vars[@]}" \
        bash "$repo/deploy.sh" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out="$(cat "$tmp/out")"
    err="$(cat "$tmp/err")"
}

T=$'\t'
# call_line WORD...: the first recorded call whose argv starts with these words.
call_line() {
    local prefix="$1"
    shift
    local w
    for w in "$@"; do prefix+="$T$w"; done
    grep -m1 -F -- "$prefix$T" "$log" || true
}
# flag_value LINE --flag: the value of --flag=VALUE in a recorded call.
flag_value() {
    local word
    local -a words
    IFS="$T" read -ra words <<<"$1"
    for word in "${words[@]}"; do
        if [[ "$word" == "$2="* ]]; then
            printf '%s' "${word#"$2"=}"
            return 0
        fi
    done
    return 1
}
# has_word LINE WORD: the call has exactly this argument.
has_word() { [[ "$T$1$T" == *"$T$2$T"* ]]; }
# in_list LIST ITEM: ITEM is one entry of the comma-separated LIST.
in_list() { [[ ",$1," == *",$2,"* ]]; }
logged() { grep -qF -- "$1" "$log"; }
# Assertions collect reasons in $why; result prints the test's line.
why=""
want() {
    local what="$1"
    shift
    "$@" || why+="${why:+; }$what"
}
wantnot() {
    local what="$1"
    shift
    ! "$@" || why+="${why:+; }$what"
}
result() {
    if [ -z "$why" ]; then ok "$1"; else fail "$1" "$why"; fi
    why=""
}

# ---- 1. shellcheck
if command -v shellcheck >/dev/null 2>&1; then
    if sc_out="$(shellcheck deploy.sh tests/deploy/test_deploy.sh 2>&1)"; then
        ok shellcheck_clean
    else
        fail shellcheck_clean "$(echo "$sc_out" | head -n 5 | tr '\n' ' ')"
    fi
else
    echo "skip shellcheck_clean: shellcheck is not installed (apt-get install shellcheck)"
fi

# ---- 2. --help
run_deploy "$tmp/bin" -- --help
if [ "$rc" = 0 ] && [[ "$out" == *"usage: deploy.sh"* ]] && [[ "$out" == *--dry-run* ]] && [ ! -s "$log" ]; then
    ok help_prints_usage_runs_nothing
else
    fail help_prints_usage_runs_nothing "rc=$rc, calls: $(wc -l <"$log")"
fi

# ---- 3. clear errors
run_deploy "$tmp/bin" -- --bogus my-project
if [ "$rc" != 0 ] && [[ "$err" == *"unknown option '--bogus'"* ]] && [ ! -s "$log" ]; then
    ok unknown_option_named
else
    fail unknown_option_named "rc=$rc err=$err"
fi

run_deploy "$tmp/nogcloud" -- my-project
if [ "$rc" != 0 ] && [[ "$err" == *"gcloud not found"* ]]; then
    ok missing_gcloud_is_a_clear_error
else
    fail missing_gcloud_is_a_clear_error "rc=$rc err=$err"
fi

run_deploy "$tmp/bin" FAKE_PROJECT= --
if [ "$rc" != 0 ] && [[ "$err" == *"no project"* ]] && ! grep -q $'\trun\tdeploy' "$log"; then
    ok no_project_is_a_clear_error
else
    fail no_project_is_a_clear_error "rc=$rc err=$err"
fi

for bad in "--max-queue abc" "--max-queue 0" "--max-queue 1000" "--cpu 2" "--memory 8Gi" "--memory 64Gi" "--startup-timeout 4000" \
    "--timeout 10" "--timeout 3601" "--min-instances 3 --max-instances 2" "--max-instances 0" \
    "--weights gcs" "--weights s3" "--build none" "--bucket-path a,b --weights gcs --bucket x" \
    "--timeout=60"; do
    # shellcheck disable=SC2086 # word splitting of the option list is intended
    run_deploy "$tmp/bin" -- $bad my-project
    if [ "$rc" = 0 ] || [ -z "$err" ] || [ -s "$log" ]; then
        why+="${why:+; }'$bad' accepted (rc=$rc, $(wc -l <"$log") calls)"
    fi
done
for args in "my-project Bad_Region" "my-project us-central1 extra" "Not_A_Project"; do
    # shellcheck disable=SC2086
    run_deploy "$tmp/bin" -- $args
    if [ "$rc" = 0 ] || [ -z "$err" ] || [ -s "$log" ]; then
        why+="${why:+; }'$args' accepted (rc=$rc, $(wc -l <"$log") calls)"
    fi
done
result bad_values_rejected_before_any_call

# ---- 4. the default deploy: Cloud Build, weights fetched at start
run_deploy "$tmp/bin" HF_TOKEN=hf_LEAKCHECK_ENV -- --tag t0 my-project
default_log="$log"
deploy="$(call_line gcloud run deploy)"
build="$(call_line gcloud builds submit)"
envs="$(flag_value "$deploy" --set-env-vars || true)"
probe="$(flag_value "$deploy" --startup-probe || true)"
subs="$(flag_value "$build" --substitutions || true)"
image="$(flag_value "$deploy" --image || true)"
cpu="$(flag_value "$deploy" --cpu || echo 0)"
want "exit status $rc ($err)" [ "$rc" = 0 ]
want "no 'gcloud run deploy' call" [ -n "$deploy" ]
want "no 'gcloud builds submit' call" [ -n "$build" ]
want "--gpu=1" has_word "$deploy" --gpu=1
want "--gpu-type=nvidia-l4" has_word "$deploy" --gpu-type=nvidia-l4
want "--cpu=$cpu below 4" [ "$cpu" -ge 4 ]
want "--memory not 32Gi (fetch mode keeps 8.6 GB in the in-memory filesystem)" has_word "$deploy" --memory=32Gi
want "--no-cpu-throttling" has_word "$deploy" --no-cpu-throttling
want "--no-allow-unauthenticated" has_word "$deploy" --no-allow-unauthenticated
wantnot "public access requested" has_word "$deploy" --allow-unauthenticated
want "--use-http2" has_word "$deploy" --use-http2
want "--region=us-central1" has_word "$deploy" --region=us-central1
want "--project=my-project" has_word "$deploy" --project=my-project
want "--max-instances=1" has_word "$deploy" --max-instances=1
want "--min-instances=0" has_word "$deploy" --min-instances=0
want "MEDGEMMA_MAX_QUEUE=8 in env" in_list "$envs" MEDGEMMA_MAX_QUEUE=8
want "--concurrency=9 (1 running + 8 queued)" has_word "$deploy" --concurrency=9
want "MEDGEMMA_BACKEND=cuda" in_list "$envs" MEDGEMMA_BACKEND=cuda
want "--timeout=900" has_word "$deploy" --timeout=900
want "server deadline not 10 s inside Cloud Run's timeout" in_list "$envs" MEDGEMMA_REQUEST_TIMEOUT_S=890
want "MEDGEMMA_MODEL_DIR=/models/medgemma" in_list "$envs" MEDGEMMA_MODEL_DIR=/models/medgemma
wantnot "HF_TOKEN as a plain env var" grep -q HF_TOKEN <<<"$envs"
want "--update-secrets=HF_TOKEN=hf-token:latest" has_word "$deploy" --update-secrets=HF_TOKEN=hf-token:latest
want "probe path /health" in_list "$probe" httpGet.path=/health
want "probe port 8080" in_list "$probe" httpGet.port=8080
period="$(sed -n 's/.*periodSeconds=\([0-9]*\).*/\1/p' <<<"$probe")"
threshold="$(sed -n 's/.*failureThreshold=\([0-9]*\).*/\1/p' <<<"$probe")"
window=$((${period:-0} * ${threshold:-0}))
want "probe window ${window}s below 600 s" [ "$window" -ge 600 ]
want "probe window ${window}s above Cloud Run's 1800 s" [ "$window" -le 1800 ]
want "deployed image $image is not the one Cloud Build built ($subs)" in_list "$subs" "_IMAGE=$image"
want "image not REGION-docker.pkg.dev/PROJECT/REPO/SERVICE:TAG" \
    [ "$image" = us-central1-docker.pkg.dev/my-project/medgemma/medgemma:t0 ]
want "_WEIGHTS=none" in_list "$subs" _WEIGHTS=none
want "--config=cloudbuild.yaml" has_word "$build" "--config=$repo/cloudbuild.yaml"
build_at="$(grep -n -F "gcloud${T}builds${T}submit" "$log" | cut -d: -f1)"
deploy_at="$(grep -n -F "gcloud${T}run${T}deploy" "$log" | cut -d: -f1)"
want "deploy before build" [ "${build_at:-99}" -lt "${deploy_at:-0}" ]
want "secret not checked" logged "gcloud${T}secrets${T}describe${T}hf-token"
want "runtime account not granted secretAccessor" \
    logged "add-iam-policy-binding${T}hf-token${T}--project=my-project${T}--member=serviceAccount:123456789012-compute@developer.gserviceaccount.com${T}--role=roles/secretmanager.secretAccessor"
wantnot "registry created though it exists" logged "repositories${T}create"
wantnot "token value in argv or output" grep -rq hf_LEAKCHECK_ENV "$log" "$tmp/out" "$tmp/err"
wantnot "docker used with Cloud Build" grep -q '^docker' "$log"
result default_deploy_flags

# ---- 5. region, queue bound, instances
run_deploy "$tmp/bin" -- --max-queue 3 --min-instances 1 --max-instances 4 --no-zonal-redundancy \
    --service-account sa@my-project.iam.gserviceaccount.com my-project europe-west4
deploy="$(call_line gcloud run deploy)"
envs="$(flag_value "$deploy" --set-env-vars || true)"
want "exit status $rc ($err)" [ "$rc" = 0 ]
want "--region=europe-west4" has_word "$deploy" --region=europe-west4
want "--concurrency=4" has_word "$deploy" --concurrency=4
want "MEDGEMMA_MAX_QUEUE=3" in_list "$envs" MEDGEMMA_MAX_QUEUE=3
want "--min-instances=1" has_word "$deploy" --min-instances=1
want "--max-instances=4" has_word "$deploy" --max-instances=4
want "--no-gpu-zonal-redundancy" has_word "$deploy" --no-gpu-zonal-redundancy
want "--service-account" has_word "$deploy" --service-account=sa@my-project.iam.gserviceaccount.com
want "secret not granted to the given account" logged "--member=serviceAccount:sa@my-project.iam.gserviceaccount.com"
want "image not in europe-west4-docker.pkg.dev" grep -q -- "--image=europe-west4-docker.pkg.dev/" <<<"$deploy"
result region_queue_and_instances

run_deploy "$tmp/bin" FAKE_NO_REPO=1 -- my-project europe-west1
want "exit status $rc ($err)" [ "$rc" = 0 ]
want "registry not created in the region" \
    logged "gcloud${T}artifacts${T}repositories${T}create${T}medgemma${T}--repository-format=docker${T}--location=europe-west1"
result missing_registry_is_created_in_the_region

# ---- 6. --dry-run prints every command and runs none
run_deploy "$tmp/bin" -- --dry-run --tag t0 my-project
want "exit status $rc ($err)" [ "$rc" = 0 ]
want "$(wc -l <"$log") commands were executed" [ ! -s "$log" ]
want "nothing printed" [ -n "$out" ]
# Each call the real run of test 4 made (same options) is printed word for word;
# in a dry run the project number is a placeholder, and quotes appear where needed.
printed="$(sed -e 's/PROJECT_NUMBER/123456789012/' -e "s/'//g" <<<"$out")"
while IFS="$T" read -ra words; do
    [[ $'\n'"$printed"$'\n' == *$'\n'"+ ${words[*]}"$'\n'* ]] || why+="${why:+; }not printed: ${words[*]:0:4}"
done <"$default_log"
result dry_run_prints_all_runs_nothing

run_deploy "$tmp/bin" FAKE_PROJECT=from-config -- --dry-run
want "exit status $rc ($err)" [ "$rc" = 0 ]
want "calls other than 'gcloud config get-value': $(cut -f1-3 "$log" | tr '\t\n' ' ;')" \
    [ "$(cut -f1-3 "$log")" = "gcloud${T}config${T}get-value" ]
want "project from the config not used" grep -q -- --project=from-config <<<"$out"
result dry_run_only_reads_project_from_config

# ---- 7. weights from a Cloud Storage volume
run_deploy "$tmp/bin" -- --weights gcs --bucket my-weights --bucket-path models/medgemma-1.5 my-project
deploy="$(call_line gcloud run deploy)"
envs="$(flag_value "$deploy" --set-env-vars || true)"
want "exit status $rc ($err)" [ "$rc" = 0 ]
want "--add-volume" has_word "$deploy" --add-volume=name=weights,type=cloud-storage,bucket=my-weights,readonly=true
want "--add-volume-mount" has_word "$deploy" --add-volume-mount=volume=weights,mount-path=/mnt/weights
want "model dir not in the mount" in_list "$envs" MEDGEMMA_MODEL_DIR=/mnt/weights/models/medgemma-1.5
wantnot "HF token secret on a gcs service" grep -q HF_TOKEN <<<"$deploy"
want "--memory=16Gi" has_word "$deploy" --memory=16Gi
want "bucket not readable by the runtime account" \
    logged "gcloud${T}storage${T}buckets${T}add-iam-policy-binding${T}gs://my-weights${T}--project=my-project${T}--member=serviceAccount:123456789012-compute@developer.gserviceaccount.com${T}--role=roles/storage.objectViewer"
result weights_from_cloud_storage

# ---- 8. baked weights, local docker build: the token only as a BuildKit secret file
printf 'hf_LEAKCHECK_FILE' >"$tmp/token"
run_deploy "$tmp/bin" -- --build local --weights baked --hf-token-file "$tmp/token" --tag t1 my-project
dbuild="$(call_line docker build)"
deploy="$(call_line gcloud run deploy)"
image="$(flag_value "$deploy" --image || true)"
want "exit status $rc ($err)" [ "$rc" = 0 ]
want "no docker build" [ -n "$dbuild" ]
want "no --secret id=hf_token,src=FILE" grep -qF -- "--secret${T}id=hf_token,src=$tmp/token" <<<"$dbuild"
want "no WEIGHTS=baked" grep -qF -- "--build-arg${T}WEIGHTS=baked" <<<"$dbuild"
want "no docker push of the deployed image" logged "docker${T}push${T}$image"
want "no registry login" logged "gcloud${T}auth${T}configure-docker${T}us-central1-docker.pkg.dev"
wantnot "token value in argv or output" grep -rq hf_LEAKCHECK_FILE "$log" "$tmp/out" "$tmp/err"
wantnot "HF secret on a baked service" grep -q HF_TOKEN <<<"$deploy"
wantnot "Cloud Build used" logged "builds${T}submit"
result baked_local_build_uses_buildkit_secret

# ---- 9. failures stop the script
run_deploy "$tmp/bin" FAKE_NO_SECRET=1 -- my-project
want "exit status 0" [ "$rc" != 0 ]
want "message does not say how to create the secret: $err" grep -q "gcloud secrets create hf-token" <<<"$err"
wantnot "deployed anyway" logged "run${T}deploy"
result missing_secret_stops_before_deploy

run_deploy "$tmp/bin" FAKE_DEPLOY_FAILS=1 -- --build none --image us-docker.pkg.dev/p/r/i:1 my-project
want "exit status 0" [ "$rc" != 0 ]
wantnot "built with --build none" logged "builds${T}submit"
want "--image not passed" grep -qF -- "--image=us-docker.pkg.dev/p/r/i:1" <<<"$(call_line gcloud run deploy)"
result deploy_failure_is_the_exit_status

# ---- 10. every flag is one the real gcloud knows
if [ -z "$real_gcloud" ]; then
    echo "skip flags_known_to_gcloud: the Google Cloud CLI is not installed here"
else
    export CLOUDSDK_CONFIG="$tmp/gcloud-config" CLOUDSDK_CORE_DISABLE_PROMPTS=1 \
        CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=1 CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=true
    cat "$tmp"/calls.* | grep '^gcloud' | sort -u >"$tmp/all_calls"
    : >"$tmp/unknown_flags"
    checked=0
    for cmd in "services enable" "artifacts repositories describe" "artifacts repositories create" \
        "secrets describe" "secrets add-iam-policy-binding" "projects describe" "builds submit" \
        "run deploy" "run services describe" "auth configure-docker" "config get-value" \
        "storage buckets add-iam-policy-binding"; do
        prefix="gcloud	${cmd// /	}	"
        flags="$(grep -F "$prefix" "$tmp/all_calls" | tr '\t' '\n' | grep '^--' | sed 's/=.*//' | sort -u)"
        [ -n "$flags" ] || continue
        # shellcheck disable=SC2086 # the command words are meant to split
        help="$("$real_gcloud" $cmd --help 2>&1 | sed 's/\x1b\[[0-9;]*m//g')"
        known=" $(grep -o -- '--\(\[no-\]\)\?[a-z0-9-]*' <<<"$help" | sed 's/^--\[no-\]\(.*\)/--\1 --no-\1/' | tr '\n' ' ') "
        for flag in $flags; do
            checked=$((checked + 1))
            [[ "$known" == *" $flag "* ]] || echo "gcloud $cmd has no $flag" >>"$tmp/unknown_flags"
        done
    done
    if [ -s "$tmp/unknown_flags" ]; then
        fail flags_known_to_gcloud "$(tr '\n' ';' <"$tmp/unknown_flags")"
    elif [ "$checked" -lt 30 ]; then
        fail flags_known_to_gcloud "only $checked flags checked; the recorded calls are missing"
    else
        ok flags_known_to_gcloud
    fi
fi

exit "$failed"
