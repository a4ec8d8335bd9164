#!/usr/bin/env bash
# Builds the medgemma-engine image and deploys it to Cloud Run on an NVIDIA L4.
# Options, defaults and the reasons behind them: docs/deploy.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: deploy.sh [options] [PROJECT] [REGION]

Builds the image (Cloud Build by default) and deploys it to Cloud Run with one
NVIDIA L4 per instance. PROJECT defaults to `gcloud config get-value project`,
REGION to us-central1 (it must offer Cloud Run L4 GPUs).

Build:
  --build cloud|local|none  Cloud Build (cloudbuild.yaml), local docker + push, or
                            no build (needs --image)              [cloud]
  --image URI               image to deploy (default: an Artifact Registry URI
                            REGION-docker.pkg.dev/PROJECT/REPO/SERVICE:TAG)
  --repo NAME               Artifact Registry repository          [medgemma]
  --tag TAG                 image tag                 [git commit, else a timestamp]
Weights (--weights):
  fetch                     downloaded at start by weights-fetch; the Hugging Face
                            token comes from Secret Manager        [default]
  baked                     downloaded at build time into the image
  gcs                       read from a Cloud Storage volume (--bucket, --bucket-path)
  --model-repo REPO         Hugging Face repo          [google/medgemma-1.5-4b-it]
  --model-revision REV      branch, tag or commit (baked only)     [main]
  --hf-secret NAME          Secret Manager secret with the HF token [hf-token]
  --hf-token-file FILE      token file for a local baked build
                                            [~/.cache/huggingface/token]
  --bucket NAME             bucket holding the model files (gcs)
  --bucket-path PATH        folder of the model inside the bucket (gcs) [bucket root]
Service:
  --service NAME            Cloud Run service name                 [medgemma]
  --max-queue N             requests waiting per instance; concurrency is N+1 [8]
  --min-instances N         instances kept warm (billed while idle) [0]
  --max-instances N         scale-out limit (L4 quota)              [1]
  --cpu N                   vCPUs, 4 or 8                           [4]
  --memory SIZE             e.g. 16Gi, 32Gi     [32Gi with fetch, else 16Gi]
  --timeout SECONDS         request timeout, queue wait included, at most 3600 [900];
                            the server gives up 10 s earlier, so clients get its error
  --startup-timeout SECONDS how long /health may answer 503 at start, at most 1800 [1200]
  --service-account EMAIL   runtime service account     [the default compute account]
  --api-key-secret NAME     also require `Authorization: Bearer KEY` (key in this secret)
  --no-zonal-redundancy     --no-gpu-zonal-redundancy: cheaper, needs less quota
  --allow-unauthenticated   make the service public (default: IAM-authenticated only)
Other:
  --dry-run                 print every command instead of running it
  -h, --help                this text
EOF
}

die() {
    echo "deploy.sh: $*" >&2
    exit 1
}

# Runs a command, or prints it with --dry-run: one line, each word quoted only
# when the shell needs it, so the line can be pasted into a shell.
run() {
    if [ "$dry_run" = 1 ]; then
        local word line="+"
        for word in "$@"; do
            if [[ "$word" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
                line+=" $word"
            else
                line+=" '${word//\'/\'\\\'\'}'"
            fi
        done
        printf '%s\n' "$line"
    else
        "$@"
    fi
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# Size like 16Gi / 16384Mi / 16G -> MiB, for the minimum check.
memory_mib() {
    local n unit
    [[ "$1" =~ ^([0-9]+)(Mi|Gi|M|G)$ ]] || return 1
    n="${BASH_REMATCH[1]}"
    unit="${BASH_REMATCH[2]}"
    case "$unit" in
    Gi | G) echo $((n * 1024)) ;;
    *) echo "$n" ;;
    esac
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Defaults.
project=""
region=""
build_mode=cloud
image=""
ar_repo=medgemma
tag=""
weights=fetch
model_repo=google/medgemma-1.5-4b-it
model_revision=main
hf_secret=hf-token
hf_token_file="${HOME:-}/.cache/huggingface/token"
bucket=""
bucket_path=""
service=medgemma
max_queue=8
min_instances=0
max_instances=1
cpu=4
memory=""
timeout=900
startup_timeout=1200
service_account=""
api_key_secret=""
zonal_redundancy=1
public=0
dry_run=0

positional=()
while [ $# -gt 0 ]; do
    opt="$1"
    case "$opt" in
    -h | --help)
        usage
        exit 0
        ;;
    --dry-run) dry_run=1 ;;
    --no-zonal-redundancy) zonal_redundancy=0 ;;
    --allow-unauthenticated) public=1 ;;
    --build | --image | --repo | --tag | --weights | --model-repo | --model-revision | \
        --hf-secret | --hf-token-file | --bucket | --bucket-path | --service | --max-queue | \
        --min-instances | --max-instances | --cpu | --memory | --timeout | --startup-timeout | \
        --service-account | --api-key-secret)
        [ $# -ge 2 ] || die "$opt needs a value (see --help)"
        val="$2"
        shift
        case "$opt" in
        --build) build_mode="$val" ;;
        --image) image="$val" ;;
        --repo) ar_repo="$val" ;;
        --tag) tag="$val" ;;
        --weights) weights="$val" ;;
        --model-repo) model_repo="$val" ;;
        --model-revision) model_revision="$val" ;;
        --hf-secret) hf_secret="$val" ;;
        --hf-token-file) hf_token_file="$val" ;;
        --bucket) bucket="$val" ;;
        --bucket-path) bucket_path="$val" ;;
        --service) service="$val" ;;
        --max-queue) max_queue="$val" ;;
        --min-instances) min_instances="$val" ;;
        --max-instances) max_instances="$val" ;;
        --cpu) cpu="$val" ;;
        --memory) memory="$val" ;;
        --timeout) timeout="$val" ;;
        --startup-timeout) startup_timeout="$val" ;;
        --service-account) service_account="$val" ;;
        --api-key-secret) api_key_secret="$val" ;;
        esac
        ;;
    --*=*) die "write '${opt%%=*} ${opt#*=}' (a space, not '='), see --help" ;;
    -*) die "unknown option '$opt' (see --help)" ;;
    *) positional+=("$opt") ;;
    esac
    shift
done
[ "${#positional[@]}" -le 2 ] || die "too many arguments: ${positional[*]} (expected [PROJECT] [REGION])"
project="${positional[0]:-}"
region="${positional[1]:-us-central1}"

# ---- validate the options before touching anything
case "$build_mode" in cloud | local | none) ;; *) die "--build must be cloud, local or none, not '$build_mode'" ;; esac
case "$weights" in fetch | baked | gcs) ;; *) die "--weights must be fetch, baked or gcs, not '$weights'" ;; esac
[ "$build_mode" != none ] || [ -n "$image" ] || die "--build none needs --image URI"
if [ "$weights" = gcs ]; then
    [ -n "$bucket" ] || die "--weights gcs needs --bucket NAME (the bucket holding the model files)"
fi
[ "$weights" = gcs ] || [ -z "$bucket$bucket_path" ] || die "--bucket/--bucket-path only apply to --weights gcs"
for pair in "max-queue:$max_queue" "min-instances:$min_instances" "max-instances:$max_instances" \
    "cpu:$cpu" "timeout:$timeout" "startup-timeout:$startup_timeout"; do
    is_uint "${pair#*:}" || die "--${pair%%:*} must be a whole number, not '${pair#*:}'"
done
if [ "$max_queue" -lt 1 ] || [ "$max_queue" -gt 999 ]; then
    die "--max-queue must be 1..999 (the server needs a queue; Cloud Run concurrency is at most 1000)"
fi
[ "$max_instances" -ge 1 ] || die "--max-instances must be at least 1"
[ "$min_instances" -le "$max_instances" ] ||
    die "--min-instances ($min_instances) is above --max-instances ($max_instances)"
case "$cpu" in 4 | 8) ;; *) die "--cpu must be 4 or 8 (an L4 instance needs at least 4 vCPU)" ;; esac
if [ -z "$memory" ]; then
    # Files written at start live in the instance's in-memory filesystem: room for 8.6 GB.
    if [ "$weights" = fetch ]; then memory=32Gi; else memory=16Gi; fi
fi
mib="$(memory_mib "$memory")" || die "--memory must look like 16Gi or 32768Mi, not '$memory'"
[ "$mib" -ge 16384 ] || die "--memory must be at least 16Gi with an L4 GPU, not '$memory'"
[ "$mib" -le 32768 ] || die "--memory can be at most 32Gi with an L4 GPU, not '$memory'"
if [ "$timeout" -lt 20 ] || [ "$timeout" -gt 3600 ]; then
    die "--timeout must be 20..3600 seconds"
fi
if [ "$startup_timeout" -lt 10 ] || [ "$startup_timeout" -gt 1800 ]; then
    die "--startup-timeout must be 10..1800 seconds (Cloud Run's limit for GPU services)"
fi
# These end up inside comma-separated gcloud values.
for pair in "image:$image" "model-repo:$model_repo" "model-revision:$model_revision" \
    "hf-secret:$hf_secret" "bucket:$bucket" "bucket-path:$bucket_path" "api-key-secret:$api_key_secret" \
    "service:$service" "repo:$ar_repo" "tag:$tag"; do
    [[ "${pair#*:}" =~ ^[A-Za-z0-9._/:@-]*$ ]] ||
        die "--${pair%%:*} '${pair#*:}' may only hold letters, digits and . _ / : @ -"
done
[[ "$region" =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "'$region' does not look like a region (e.g. us-central1)"
case "$region" in
us-central1 | us-east4 | europe-west1 | europe-west4 | asia-southeast1 | asia-south1) ;;
*) echo "deploy.sh: warning: $region was not known to offer Cloud Run L4 GPUs when this was written" >&2 ;;
esac

if ! command -v gcloud >/dev/null 2>&1; then
    [ "$dry_run" = 1 ] || die "gcloud not found on PATH: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install) and run 'gcloud auth login'"
    echo "deploy.sh: note: gcloud not found; printing the commands anyway (--dry-run)" >&2
fi
if [ -z "$project" ]; then
    # Reads the local gcloud configuration only (also with --dry-run).
    project="$(gcloud config get-value project 2>/dev/null || true)"
    if [ -z "$project" ] || [ "$project" = "(unset)" ]; then
        die "no project: pass PROJECT as the first argument or run 'gcloud config set project ID'"
    fi
fi
[[ "$project" =~ ^[a-z][a-z0-9:.-]{4,}[a-z0-9]$ ]] || die "'$project' is not a valid project id"
if [ "$build_mode" = local ] && [ "$dry_run" = 0 ]; then
    command -v docker >/dev/null 2>&1 || die "--build local needs docker on PATH (or use --build cloud)"
fi
if [ "$build_mode" = local ] && [ "$weights" = baked ] && [ "$dry_run" = 0 ]; then
    [ -s "$hf_token_file" ] || die "--weights baked with --build local needs a Hugging Face token in $hf_token_file (--hf-token-file)"
fi

if [ -z "$tag" ]; then
    if tag="$(git -C "$repo_root" rev-parse --short=12 HEAD 2>/dev/null)"; then
        # Uncommitted changes get their own tag, so they never overwrite the commit's image.
        git -C "$repo_root" diff --quiet HEAD 2>/dev/null || tag+="-dirty-$(date -u +%Y%m%d-%H%M%S)"
    else
        tag="$(date -u +%Y%m%d-%H%M%S)"
    fi
fi
ar_host="${region}-docker.pkg.dev"
[ -n "$image" ] || image="${ar_host}/${project}/${ar_repo}/${service}:${tag}"
concurrency=$((max_queue + 1))
period=10
failure_threshold=$(((startup_timeout + period - 1) / period))
case "$weights" in
fetch | baked) model_dir=/models/medgemma ;;
gcs) model_dir="/mnt/weights${bucket_path:+/${bucket_path#/}}" ;;
esac
model_dir="${model_dir%/}"

echo "deploy.sh: project=$project region=$region service=$service image=$image weights=$weights" >&2

# ---- APIs, registry, secrets (all idempotent)
apis=(run.googleapis.com)
[ "$build_mode" = none ] || apis+=(artifactregistry.googleapis.com)
[ "$build_mode" != cloud ] || apis+=(cloudbuild.googleapis.com)
if [ "$weights" = fetch ] || [ -n "$api_key_secret" ] || { [ "$weights" = baked ] && [ "$build_mode" = cloud ]; }; then
    apis+=(secretmanager.googleapis.com)
fi
run gcloud services enable "${apis[@]}" --project="$project"

if [ "$build_mode" != none ]; then
    if [ "$dry_run" = 1 ]; then
        run gcloud artifacts repositories describe "$ar_repo" --location="$region" --project="$project"
        echo "# (only if missing:)"
        run gcloud artifacts repositories create "$ar_repo" --repository-format=docker \
            --location="$region" --project="$project"
    elif ! gcloud artifacts repositories describe "$ar_repo" --location="$region" \
        --project="$project" >/dev/null 2>&1; then
        run gcloud artifacts repositories create "$ar_repo" --repository-format=docker \
            --location="$region" --project="$project"
    fi
fi

# A secret must exist before a deploy or a build refers to it.
require_secret() {
    local name="$1" why="$2"
    if [ "$dry_run" = 1 ]; then
        run gcloud secrets describe "$name" --project="$project"
    elif ! gcloud secrets describe "$name" --project="$project" >/dev/null 2>&1; then
        die "secret '$name' ($why) not found in project $project. Create it with:
  printf %s \"\$TOKEN\" | gcloud secrets create $name --data-file=- --project=$project"
    fi
}
# The runtime service account reads the secrets and the bucket the service mounts.
runtime_sa="$service_account"
resolve_runtime_sa() {
    if [ -z "$runtime_sa" ]; then
        if [ "$dry_run" = 1 ]; then
            run gcloud projects describe "$project" --format='value(projectNumber)'
            runtime_sa="PROJECT_NUMBER-compute@developer.gserviceaccount.com"
        else
            local number
            number="$(gcloud projects describe "$project" --format='value(projectNumber)')"
            [ -n "$number" ] || die "could not read the project number of $project"
            runtime_sa="${number}-compute@developer.gserviceaccount.com"
        fi
    fi
}
grant_secret() {
    local name="$1"
    resolve_runtime_sa
    run gcloud secrets add-iam-policy-binding "$name" --project="$project" \
        --member="serviceAccount:${runtime_sa}" --role=roles/secretmanager.secretAccessor \
        --condition=None --quiet
}
secrets=()
if [ "$weights" = fetch ]; then
    require_secret "$hf_secret" "the Hugging Face token"
    grant_secret "$hf_secret"
    secrets+=("HF_TOKEN=${hf_secret}:latest")
fi
if [ -n "$api_key_secret" ]; then
    require_secret "$api_key_secret" "the API key"
    grant_secret "$api_key_secret"
    secrets+=("/secrets/api-key/key=${api_key_secret}:latest")
fi
if [ "$weights" = baked ] && [ "$build_mode" = cloud ]; then
    require_secret "$hf_secret" "the Hugging Face token for the build"
fi
if [ "$weights" = gcs ]; then
    resolve_runtime_sa
    run gcloud storage buckets add-iam-policy-binding "gs://${bucket}" --project="$project" \
        --member="serviceAccount:${runtime_sa}" --role=roles/storage.objectViewer
fi

# ---- build
case "$build_mode" in
cloud)
    # Cloud Build's service account needs secretAccessor on the token secret for
    # --weights baked (docs/deploy.md).
    run gcloud builds submit "$repo_root" --project="$project" \
        --config="$repo_root/cloudbuild.yaml" \
        --substitutions="_IMAGE=${image},_WEIGHTS=$([ "$weights" = baked ] && echo baked || echo none),_MODEL_REPO=${model_repo},_MODEL_REVISION=${model_revision},_HF_SECRET=${hf_secret}"
    ;;
local)
    build_args=(docker build --pull --tag "$image" --build-arg "WEIGHTS=none")
    if [ "$weights" = baked ]; then
        build_args=(docker build --pull --tag "$image" --build-arg "WEIGHTS=baked"
            --build-arg "MODEL_REPO=${model_repo}" --build-arg "MODEL_REVISION=${model_revision}"
            --secret "id=hf_token,src=${hf_token_file}")
    fi
    run env DOCKER_BUILDKIT=1 "${build_args[@]}" "$repo_root"
    run gcloud auth configure-docker "$ar_host" --quiet
    run docker push "$image"
    ;;
none) ;;
esac

# ---- deploy
# The server's own deadline (queue wait included) ends a request 10 s before Cloud Run
# would cut it with a bare 504, so the client gets a JSON error and the GPU moves on.
env_vars="MEDGEMMA_MAX_QUEUE=${max_queue},MEDGEMMA_REQUEST_TIMEOUT_S=$((timeout - 10)),MEDGEMMA_BACKEND=cuda"
env_vars+=",MEDGEMMA_MODEL_DIR=${model_dir},MEDGEMMA_MODEL_REPO=${model_repo}"
[ -z "$api_key_secret" ] || env_vars+=",MEDGEMMA_API_KEY_FILE=/secrets/api-key/key"
deploy=(gcloud run deploy "$service" --project="$project" --region="$region" --image="$image"
    --gpu=1 --gpu-type=nvidia-l4 --cpu="$cpu" --memory="$memory" --no-cpu-throttling
    --execution-environment=gen2 --concurrency="$concurrency"
    --min-instances="$min_instances" --max-instances="$max_instances" --timeout="$timeout"
    --port=8080 --use-http2
    --startup-probe="httpGet.path=/health,httpGet.port=8080,initialDelaySeconds=0,periodSeconds=${period},timeoutSeconds=5,failureThreshold=${failure_threshold}"
    --set-env-vars="$env_vars" --labels=app=medgemma-engine)
if [ "$public" = 1 ]; then
    echo "deploy.sh: warning: --allow-unauthenticated makes the service public; it handles patient data" >&2
    deploy+=(--allow-unauthenticated)
else
    deploy+=(--no-allow-unauthenticated)
fi
[ "${#secrets[@]}" -eq 0 ] || deploy+=("--update-secrets=$(
    IFS=,
    echo "${secrets[*]}"
)")
[ -z "$service_account" ] || deploy+=(--service-account="$service_account")
[ "$zonal_redundancy" = 1 ] || deploy+=(--no-gpu-zonal-redundancy)
if [ "$weights" = gcs ]; then
    deploy+=(--add-volume="name=weights,type=cloud-storage,bucket=${bucket},readonly=true"
        --add-volume-mount="volume=weights,mount-path=/mnt/weights")
fi
run "${deploy[@]}"

describe=(gcloud run services describe "$service" --project="$project" --region="$region"
    --format='value(status.url)')
if [ "$dry_run" = 1 ]; then
    run "${describe[@]}"
else
    url="$("${describe[@]}")"
    echo "deployed: $url"
    echo "try:  curl -H \"Authorization: Bearer \$(gcloud auth print-identity-token)\" $url/health"
fi
