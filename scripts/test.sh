#!/usr/bin/env bash
# Install everything the tests need (Python packages, and as root the Debian packages for the
# real sshd, registry, builder and XFS tools), then run the whole suite.
# Extra arguments go to pytest, e.g. `./scripts/test.sh -m "not slow"` for the fast subset.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(openssh-server docker-registry buildah xfsprogs util-linux cmake g++ make)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in "${debian_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  mkdir -p /run/sshd
fi
# llama.cpp for the tests against the real llama-server: built once per pinned version, then reused
if [ -z "${LEVIATHAN_LLAMA_CPP_BIN:-}" ]; then
  LEVIATHAN_LLAMA_CPP_BIN="$(bash scripts/llama_cpp.sh | tail -n 1)"
  export LEVIATHAN_LLAMA_CPP_BIN
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"
exec python3 -m pytest -p no:cacheprovider "$@"
