#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite:
#   - as root on Debian, the packages for the real sshd, registry, builder and XFS tools;
#   - the package with its `test` extra, into a virtual environment of the script's own
#     (no system site-packages, kept in .venv-test/ and reused), so nothing installed by hand
#     elsewhere can hide a missing install step.
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
  # the services above are required, not optional: a missing one fails the suite instead of skipping it
  export LEVIATHAN_TESTS_REQUIRE_SERVICES=1
fi
# llama.cpp for the tests against the real llama-server: built once per pinned version, then reused.
# Without a cached build, it is built beside the suite at the lowest CPU priority; the tests that
# need it run last and wait for it (tests/support/llama_cpp.py).
if [ -z "${LEVIATHAN_LLAMA_CPP_BIN:-}" ] && [ -z "${LEVIATHAN_LLAMA_CPP_BUILD:-}" ]; then
  if cached="$(bash scripts/llama_cpp.sh --cached)"; then
    export LEVIATHAN_LLAMA_CPP_BIN="$cached"
  else
    LEVIATHAN_LLAMA_CPP_BUILD="$(mktemp -d "${TMPDIR:-/tmp}/leviathan-llama-build.XXXXXX")"
    export LEVIATHAN_LLAMA_CPP_BUILD
    (
      status=0
      nice -n 19 bash scripts/llama_cpp.sh >"$LEVIATHAN_LLAMA_CPP_BUILD/out" \
        2>"$LEVIATHAN_LLAMA_CPP_BUILD/log" || status=$?
      echo "$status" >"$LEVIATHAN_LLAMA_CPP_BUILD/status"
    ) </dev/null >/dev/null 2>&1 & # holds no pipe of the caller open
    echo "building llama.cpp in the background (log: $LEVIATHAN_LLAMA_CPP_BUILD/log); the tests that need it run last"
  fi
fi

venv="${LEVIATHAN_TEST_VENV:-$PWD/.venv-test}"
if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
  echo "creating the test environment in $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"

export PATH="$venv/bin:$PATH"
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
