#!/usr/bin/env bash
# Install everything the tests need (Python packages, and as root the Debian packages for the
# real sshd, registry, builder and XFS tools), then run the whole suite.
# Extra arguments go to pytest, e.g. `./scripts/test.sh -m "not slow"` for the fast subset.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(openssh-server docker-registry buildah xfsprogs util-linux)
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

python3 -m pip install -q --disable-pip-version-check -e ".[test]"
exec python3 -m pytest -p no:cacheprovider "$@"
