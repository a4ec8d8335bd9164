#!/usr/bin/env bash
# `make run`: serve a real model on this machine in one command.
#   MEDGEMMA_MODEL_DIR set  -> serve that directory
#   HF_TOKEN set            -> download google/medgemma-1.5-4b-it (weights-fetch) and serve it
#   neither                 -> serve the real Gemma 3 270M (text only, converted by `make models`)
# The backend is chosen automatically (CUDA when a GPU is present, else CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${MEDGEMMA_CACHE:-$HOME/.cache/medgemma-engine}"
model="${MEDGEMMA_MODEL_DIR:-}"
if [ -z "$model" ] && [ -n "${HF_TOKEN:-}" ]; then
    repo="${MEDGEMMA_MODEL_REPO:-google/medgemma-1.5-4b-it}"
    model="$cache/$(basename "$repo")"
    echo "run: fetching $repo into $model" >&2
    build/weights-fetch "$repo" --out "$model"
fi
if [ -z "$model" ]; then
    model="$cache/gemma3-270m"
    echo "run: no MEDGEMMA_MODEL_DIR or HF_TOKEN: serving the real Gemma 3 270M from $model (text endpoints)" >&2
fi
exec build/medgemma serve --model "$model" --host "${MEDGEMMA_HOST:-127.0.0.1}" --port "${PORT:-8080}" "$@"
