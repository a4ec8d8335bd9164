# syntax=docker/dockerfile:1
# medgemma-engine container image for an NVIDIA L4 on Cloud Run (docs/deploy.md).
#
# Stages:
#   cuda           NVIDIA's CUDA 12.2 devel image, used only as a source of the toolkit
#   build          Debian 12 + our Debian build deps + that toolkit; compiles build/medgemma
#                  and build/weights-fetch with SASS for sm_89 (L4) and compute_89 PTX
#   weights-none   an empty /weights (the default: fetch at start or a Cloud Storage mount)
#   weights-baked  /weights filled by weights-fetch at build time; the Hugging Face token
#                  comes in as a BuildKit secret and is never written to a layer
#   runtime        debian:12-slim, the two binaries, libcublasLt + libcudart, the runtime
#                  Debian libraries, a non-root user. Serves on $PORT (default 8080).
#
# Why Debian 12 and not the nvidia/cuda Ubuntu 22.04 image: the code builds against
# Debian 12 packages, and Ubuntu 22.04 has no libspng-dev. NVIDIA's Debian 12 apt repo
# starts at CUDA 12.3, newer than the L4 driver (535, CUDA 12.2) on Cloud Run, so the
# 12.2 toolkit is copied out of NVIDIA's image instead (its binaries need only glibc, and
# CUDA 12.2 accepts Debian 12's gcc 12).
#
#   docker build -t medgemma .                                        # weights fetched at start
#   docker build --build-arg WEIGHTS=baked \
#       --secret id=hf_token,src=$HOME/.cache/huggingface/token -t medgemma .   # weights baked in

ARG CUDA_IMAGE=nvidia/cuda:12.2.2-devel-ubuntu22.04
ARG DEBIAN_IMAGE=debian:12
ARG RUNTIME_IMAGE=debian:12-slim
ARG WEIGHTS=none

FROM ${CUDA_IMAGE} AS cuda

FROM ${DEBIAN_IMAGE} AS build
# Unpinned Debian versions on purpose: bookworm only takes security fixes.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config ca-certificates xz-utils \
      libh2o-evloop-dev libssl-dev zlib1g-dev \
      libspng-dev libturbojpeg0-dev libcjson-dev libcurl4-openssl-dev \
      libgdcm-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=cuda /usr/local/cuda-12.2 /usr/local/cuda-12.2
ENV CUDA_HOME=/usr/local/cuda-12.2
WORKDIR /src
COPY . .
# Only sm_89 SASS (+ compute_89 PTX): the image runs on an L4; the H100/H200 SASS of a
# plain `make` would only make the binary bigger.
RUN make -j"$(nproc)" NVCC=/usr/local/cuda-12.2/bin/nvcc CUDA_HOME=/usr/local/cuda-12.2 \
      CUDA_ARCH_FLAGS="-gencode arch=compute_89,code=sm_89 -gencode arch=compute_89,code=compute_89" \
      build/medgemma build/weights-fetch
# Stage what the runtime needs: the binaries, and the CUDA libraries they link
# (cp -L turns the soname symlinks into plain files).
RUN mkdir -p /out/bin /out/lib \
 && install -m 0755 build/medgemma build/weights-fetch /out/bin/ \
 && cp -L /usr/local/cuda-12.2/lib64/libcublasLt.so.12 /usr/local/cuda-12.2/lib64/libcudart.so.12 /out/lib/

FROM build AS weights-none
RUN mkdir -p /weights

FROM build AS weights-baked
ARG MODEL_REPO=google/medgemma-1.5-4b-it
ARG MODEL_REVISION=main
# The token is read from the secret mount inside this one RUN; it is not in ARG, ENV or
# any file of the layer. .weights-fetch/ (resume state) is dropped from the image.
RUN --mount=type=secret,id=hf_token,required=true \
    HF_TOKEN="$(cat /run/secrets/hf_token)" \
      /out/bin/weights-fetch "${MODEL_REPO}" --revision "${MODEL_REVISION}" --out /weights \
 && rm -rf /weights/.weights-fetch

# A stage chosen by build arg (weights-none or weights-baked), not an image from a registry.
# hadolint ignore=DL3006
FROM weights-${WEIGHTS} AS weights

FROM ${RUNTIME_IMAGE} AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libh2o-evloop0.13 libssl3 zlib1g libspng0 libturbojpeg0 \
      libcjson1 libcurl4 libstdc++6 libgdcm3.0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 medgemma \
 && useradd --system --uid 10001 --gid medgemma --home-dir /home/medgemma --create-home \
      --shell /usr/sbin/nologin medgemma \
 && mkdir -p /models/medgemma \
 && chown 10001:10001 /models/medgemma
COPY --from=build /out/lib/ /usr/local/lib/medgemma/
COPY --from=build /out/bin/medgemma /out/bin/weights-fetch /usr/local/bin/
# Fails the build if a library the binaries need is missing from this stage.
RUN echo /usr/local/lib/medgemma > /etc/ld.so.conf.d/medgemma.conf \
 && ldconfig \
 && ldd /usr/local/bin/medgemma /usr/local/bin/weights-fetch > /tmp/ldd.txt \
 && if grep 'not found' /tmp/ldd.txt; then exit 1; fi \
 && rm /tmp/ldd.txt
COPY --from=weights --chown=10001:10001 /weights /models/medgemma

# The GPU driver (libcuda.so.1) comes from the host: Google's platforms mount it under
# /usr/local/nvidia; the NVIDIA container toolkit (docker --gpus) injects it itself.
ENV PORT=8080 \
    MEDGEMMA_HOST=0.0.0.0 \
    MEDGEMMA_MODEL_DIR=/models/medgemma \
    MEDGEMMA_MODEL_REPO=google/medgemma-1.5-4b-it \
    MEDGEMMA_BACKEND=auto \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
WORKDIR /home/medgemma
EXPOSE 8080
# No --port here: serve reads PORT, which Cloud Run sets.
ENTRYPOINT ["/usr/local/bin/medgemma", "serve"]
