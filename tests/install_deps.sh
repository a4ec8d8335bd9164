#!/usr/bin/env bash
# Installs every build and test dependency on a fresh Debian 12 machine (as root).
# Debian packages for the build; PyPI packages only for what tests need
# (tests/requirements.txt). Safe to rerun.
set -euo pipefail
export PIP_BREAK_SYSTEM_PACKAGES=1 # Debian 12 python3 is "externally managed"
cd "$(dirname "$0")/.."

debs=(
    build-essential pkg-config git xz-utils curl ca-certificates
    libh2o-evloop-dev libssl-dev zlib1g-dev
    libspng-dev libturbojpeg0-dev libcjson-dev libcurl4-openssl-dev
    clang clang-format clang-tidy cppcheck libclang-rt-14-dev
    shellcheck wrk python3 python3-pip
    libgdcm-dev libgdcm-tools # image/dicom: GDCM + its codecs (CharLS, OpenJPEG); gdcmconv for tests
)
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The tests' Python packages (no torch: goldens are committed).
python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt
echo "deps: ok"
